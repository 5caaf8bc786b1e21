"""Base classes every message derives from, and the validated types they share.

Every message is a frozen pydantic v2 model with a ``schema_version``.

Rolling upgrades: a consumer accepts a message from a newer producer that adds an optional
field. Unknown fields are **ignored on receive** (``model_validate``/``model_validate_json``,
HTTP bodies) with one log line per message type and field set, and **refused when our own code
constructs** a message with keyword arguments, so a typo in a producer still fails where it is
written. A breaking change bumps the class's ``schema_version``; a message of any other version
is refused with a sentence that says which side must be upgraded.

Object keys in messages are :class:`ObjectKey`: checked by :func:`gridpilot.storage.keys.validate_key`,
and a job may only name keys under its own session's prefix (``sessions/<session_id>/``) or the
model registry's (``models/``). A job without a ``session_id`` (a one-off HTTP request, a
bench) belongs to no session and is not confined.

>>> job = JobRequest.model_validate({"session_id": "s1", "newer_field": 1})
>>> job.session_id
's1'
>>> try:
...     JobRequest(session_id="s1", newer_field=1)
... except ValidationError as exc:
...     print(exc.errors()[0]["type"], exc.errors()[0]["loc"])
extra_forbidden ('newer_field',)
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, core_schema

from gridpilot.errors import InvalidInput
from gridpilot.storage import keys

__all__ = [
    "MODEL_REGISTRY_PREFIX",
    "Id",
    "JobRequest",
    "JobResult",
    "Message",
    "ObjectKey",
    "Record",
    "new_id",
    "utcnow",
]

logger = logging.getLogger(__name__)

#: Identifiers travel in subjects and object keys, so they are restricted to a safe alphabet.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
#: Every job may read the model registry (``storage.keys.model_key``).
MODEL_REGISTRY_PREFIX: Final[str] = "models/"
#: (message type, unknown fields) already logged; bounded so a hostile producer cannot grow it.
_LOGGED_UNKNOWN: set[tuple[str, frozenset[str]]] = set()
_MAX_LOGGED_UNKNOWN: Final[int] = 256


class ObjectKey(str):
    """An object key checked by :func:`gridpilot.storage.keys.validate_key`.

    >>> ObjectKey("sessions/s1/grids/g1/exposures/e1/movie.mrc")
    'sessions/s1/grids/g1/exposures/e1/movie.mrc'
    >>> ObjectKey("sessions/../etc/passwd")
    Traceback (most recent call last):
    ...
    gridpilot.errors.InvalidInput: object key 'sessions/../etc/passwd' has a '..' segment
    """

    __slots__ = ()

    def __new__(cls, value: str) -> ObjectKey:
        return super().__new__(cls, keys.validate_key(value))

    @classmethod
    def _validate(cls, value: str) -> ObjectKey:
        try:
            return cls(value)
        except InvalidInput as exc:  # pydantic reports ValueError as a validation error
            raise ValueError(exc.message) from exc

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler,
                                     ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls._validate,
            core_schema.str_schema(min_length=1, max_length=keys.MAX_KEY_BYTES),
            serialization=core_schema.plain_serializer_function_ser_schema(str),
        )


def new_id(prefix: str = "") -> str:
    """A new random identifier, optionally prefixed (``job_3f2a…``)."""
    return f"{prefix}{uuid.uuid4().hex[:20]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def _log_unknown_fields(model: type[BaseModel], data: Any) -> None:
    if not isinstance(data, dict):
        return
    fields = model.__pydantic_fields__  # the class's own dict: ``model_fields`` is a slow property
    if data.keys() <= fields.keys():  # the usual case, one set comparison in C
        return
    unknown = frozenset(k for k in data if isinstance(k, str) and k not in fields)
    if not unknown:
        return
    seen = (model.__name__, unknown)
    if seen not in _LOGGED_UNKNOWN and len(_LOGGED_UNKNOWN) < _MAX_LOGGED_UNKNOWN:
        _LOGGED_UNKNOWN.add(seen)
        logger.info("%s: ignoring field(s) %s this version does not know (a newer producer?)",
                    model.__name__, ", ".join(sorted(unknown)[:8]))


def _refuse_unknown_kwargs(model: type[BaseModel], data: dict[str, Any]) -> None:
    unknown = [k for k in data if k not in model.model_fields]
    if unknown:
        errors = [InitErrorDetails(type="extra_forbidden", loc=(k,), input=data[k])
                  for k in unknown]
        raise ValidationError.from_exception_data(model.__name__, errors)


class _Strict(BaseModel):
    """Ignore unknown fields when validating received data; refuse them in keyword construction."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    def __init__(self, /, **data: Any) -> None:
        _refuse_unknown_kwargs(type(self), data)
        super().__init__(**data)

    # Validation of received data (model_validate, model_validate_json, FastAPI bodies) must not
    # go through this __init__: pydantic calls a model's own __init__ from its validator unless
    # it is marked as the base one, as pydantic's RootModel marks its own.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]

    @model_validator(mode="before")
    @classmethod
    def _note_unknown_fields(cls, data: Any) -> Any:
        _log_unknown_fields(cls, data)
        return data


class Message(_Strict):
    """A message on the bus or over HTTP."""

    #: Version of this message's schema; a subclass bumps its default on an incompatible change.
    schema_version: int = Field(1, description="must equal this schema's version (its default)")
    #: What the message is for, shown in the AsyncAPI document.
    summary: ClassVar[str] = ""

    @field_validator("schema_version", mode="before")
    @classmethod
    def _same_schema_version(cls, value: Any) -> Any:
        current = cls.model_fields["schema_version"].default
        if value == current and not isinstance(value, bool):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value > current:
            raise ValueError(
                f"{cls.__name__} schema_version {value} is newer than this consumer's "
                f"{current}: a breaking change; upgrade the consumer")
        raise ValueError(f"{cls.__name__} schema_version {value!r} is not {current}: the "
                         "producer is older or broken; upgrade the producer")


class JobRequest(Message):
    """A unit of work on ``job.<kind>``; ``job_id`` is also its ``Nats-Msg-Id``.

    Every :class:`ObjectKey` a job of a session names must lie under ``sessions/<session_id>/``
    or ``models/``; a job without a session is not confined.
    """

    #: A job's numbers are finite: JSON's 1e999 parses as inf and would pass any ``gt=0``.
    model_config = ConfigDict(allow_inf_nan=False)

    kind: ClassVar[str] = ""
    job_id: Id = Field(default_factory=lambda: new_id("job_"))
    session_id: Id | None = None
    grid_id: Id | None = None
    submitted_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _keys_in_own_session(self) -> JobRequest:
        if self.session_id is None:
            return self
        own = keys.session_prefix(self.session_id)
        for name in type(self).model_fields:
            for key in _object_keys(getattr(self, name)):
                if not key.startswith((own, MODEL_REGISTRY_PREFIX)):
                    raise ValueError(f"{name} {key!r} is outside the job's session ({own!r}) "
                                     f"and the model registry ({MODEL_REGISTRY_PREFIX!r})")
        return self


def _object_keys(value: object) -> list[ObjectKey]:
    if isinstance(value, ObjectKey):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, ObjectKey)]
    return []


class JobResult(Message):
    """The outcome of a job, published on ``evt.result.<kind>`` before the job is acked."""

    kind: ClassVar[str] = ""
    job_id: Id
    session_id: Id | None = None
    grid_id: Id | None = None
    service: str = ""
    elapsed_s: float = 0.0
    finished_at: datetime = Field(default_factory=utcnow)


class Record(_Strict):
    """A frozen value inside a message (a detection, a fit): not a message of its own."""
