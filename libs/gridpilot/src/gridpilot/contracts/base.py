"""Base classes every message derives from.

Every message is a frozen pydantic v2 model with a ``schema_version``; unknown fields are
refused so that a typo in a producer is caught by the consumer's validation, not ignored.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = ["Id", "JobRequest", "JobResult", "Message", "Record", "new_id", "utcnow"]

#: Identifiers travel in subjects and object keys, so they are restricted to a safe alphabet.
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def new_id(prefix: str = "") -> str:
    """A new random identifier, optionally prefixed (``job_3f2a…``)."""
    return f"{prefix}{uuid.uuid4().hex[:20]}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """A message on the bus or over HTTP."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Version of this message's schema; bump on an incompatible change.
    schema_version: Literal[1] = 1
    #: What the message is for, shown in the AsyncAPI document.
    summary: ClassVar[str] = ""


class JobRequest(Message):
    """A unit of work on ``job.<kind>``; ``job_id`` is also its ``Nats-Msg-Id``."""

    kind: ClassVar[str] = ""
    job_id: Id = Field(default_factory=lambda: new_id("job_"))
    session_id: Id | None = None
    grid_id: Id | None = None
    submitted_at: datetime = Field(default_factory=utcnow)


class JobResult(Message):
    """The outcome of a job, published on ``evt.result.<kind>`` before the job is acked."""

    kind: ClassVar[str] = ""
    job_id: Id
    session_id: Id | None = None
    grid_id: Id | None = None
    service: str = ""
    elapsed_s: float = 0.0
    finished_at: datetime = Field(default_factory=utcnow)


class Record(BaseModel):
    """A frozen value inside a message (a detection, a fit): not a message of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)
