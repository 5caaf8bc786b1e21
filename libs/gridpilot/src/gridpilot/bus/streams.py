"""The JetStream streams and the durable job consumers, created or updated idempotently.

- ``EVENTS`` (``evt.>``): limits retention, a replayable log of every result and state change;
  the oldest events go first when it is full.
- ``JOBS`` (``job.<kind>`` for each known kind, :func:`job_subjects`): work-queue retention,
  one durable pull consumer per (service, kind); a full queue refuses new jobs
  (``discard=new``) rather than dropping queued ones. A job on a subject no kind names
  (``job.foo.bar``) is refused by the server (no stream stores it), so it cannot sit in the
  queue with nobody to consume it.
- ``DEADLETTER`` (``$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.>``): limits retention; the
  server's advisories that a job consumer gave up on a job after ``max_deliver`` deliveries,
  kept so that they survive every worker being down (see :mod:`gridpilot.bus.deadletter`).
  Each job consumer has a durable consumer of the same name on it, filtered on its own
  advisories.

``EVENTS`` and ``JOBS`` de-duplicate on ``Nats-Msg-Id`` within ``duplicate_window_s``.

>>> consumer_name("preprocess", "preprocess.movie")
'preprocess-preprocess-movie'
>>> max_deliveries_subject("preprocess-preprocess-movie")
'$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JOBS.preprocess-preprocess-movie'
"""

from __future__ import annotations

import logging
from typing import Final

from nats.js import JetStreamContext, api
from nats.js.errors import APIError, NotFoundError

from gridpilot.contracts import subjects
from gridpilot.errors import ConfigError

from .settings import BusSettings

__all__ = [
    "DEADLETTER_MAX_DELIVER",
    "DEADLETTER_STREAM",
    "MAX_DELIVERIES_ADVISORY",
    "consumer_name",
    "deadletter_stream_config",
    "ensure_deadletter_consumer",
    "ensure_job_consumer",
    "ensure_streams",
    "events_stream_config",
    "job_subjects",
    "jobs_stream_config",
    "max_deliveries_subject",
]

logger = logging.getLogger(__name__)

#: The stream that keeps the job consumers' max-deliveries advisories.
DEADLETTER_STREAM: Final[str] = "DEADLETTER"
#: The subject prefix of the advisory JetStream publishes (core NATS, fire-and-forget) when a
#: consumer stops redelivering a message; ``.<stream>.<consumer>`` follows.
MAX_DELIVERIES_ADVISORY: Final[str] = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
#: Seconds a replica may take over one advisory before another replica gets it; handling it is
#: three JetStream requests, each bounded by ``request_timeout_s``.
_DEADLETTER_ACK_WAIT_S: Final[float] = 30.0
#: Deliveries of one advisory before the server gives it up: its handler retries a bus failure
#: every few seconds (about ten minutes of trouble), and no advisory is handled for ever.
DEADLETTER_MAX_DELIVER: Final[int] = 120

#: JetStream's error code for "stream name already in use with a different configuration".
_STREAM_CONFIG_DIFFERS: Final[int] = 10058
#: JetStream's error code for "insufficient storage resources available".
_INSUFFICIENT_STORAGE: Final[int] = 10047
#: The setting that sizes each stream, for error messages.
_SIZE_SETTING: Final[dict[str, str]] = {
    subjects.EVENTS_STREAM: "GRIDPILOT_BUS_EVENTS_MAX_BYTES",
    subjects.JOBS_STREAM: "GRIDPILOT_BUS_JOBS_MAX_BYTES",
    DEADLETTER_STREAM: "GRIDPILOT_BUS_DEADLETTER_MAX_BYTES",
}


def events_stream_config(settings: BusSettings) -> api.StreamConfig:
    """The configuration of ``EVENTS``: limits retention over ``evt.>``."""
    return api.StreamConfig(
        name=subjects.EVENTS_STREAM,
        description="gridpilot events: results and state changes, replayable",
        subjects=[subjects.EVENTS_SUBJECTS],
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.OLD,
        max_bytes=settings.events_max_bytes,
        max_age=settings.events_max_age_s or None,
        duplicate_window=settings.duplicate_window_s,
        storage=_storage(settings),
    )


def job_subjects() -> list[str]:
    """The subjects ``JOBS`` stores: ``job.<kind>`` for every known job kind, and no other."""
    return [subjects.job_subject(kind) for kind in subjects.JOB_KINDS]


def jobs_stream_config(settings: BusSettings) -> api.StreamConfig:
    """The configuration of ``JOBS``: work-queue retention over the known job subjects."""
    return api.StreamConfig(
        name=subjects.JOBS_STREAM,
        description="gridpilot jobs: one durable pull consumer per service and job kind",
        subjects=job_subjects(),
        retention=api.RetentionPolicy.WORK_QUEUE,
        discard=api.DiscardPolicy.NEW,
        max_bytes=settings.jobs_max_bytes,
        duplicate_window=settings.duplicate_window_s,
        storage=_storage(settings),
    )


def deadletter_stream_config(settings: BusSettings) -> api.StreamConfig:
    """The configuration of ``DEADLETTER``: limits retention over the ``JOBS`` advisories."""
    return api.StreamConfig(
        name=DEADLETTER_STREAM,
        description="gridpilot dead letters: jobs that no worker acknowledged in max_deliver "
                    "deliveries, as the server's advisories",
        subjects=[f"{MAX_DELIVERIES_ADVISORY}.{subjects.JOBS_STREAM}.>"],
        retention=api.RetentionPolicy.LIMITS,
        discard=api.DiscardPolicy.OLD,
        max_bytes=settings.deadletter_max_bytes,
        storage=_storage(settings),
    )


def max_deliveries_subject(consumer: str) -> str:
    """The subject of the max-deliveries advisories of the job consumer ``consumer``."""
    return f"{MAX_DELIVERIES_ADVISORY}.{subjects.JOBS_STREAM}.{consumer}"


def _storage(settings: BusSettings) -> api.StorageType:
    return api.StorageType.MEMORY if settings.storage == "memory" else api.StorageType.FILE


async def ensure_streams(js: JetStreamContext, settings: BusSettings) -> None:
    """Create ``EVENTS``, ``JOBS`` and ``DEADLETTER``, or update them to the configured limits.

    Raises:
        ConfigError: an existing stream cannot be changed to this configuration (its
            retention differs, for example); the message says which stream and why.
    """
    for config in (events_stream_config(settings), jobs_stream_config(settings),
                   deadletter_stream_config(settings)):
        await _create_or_update(js, config)


async def _create_or_update(js: JetStreamContext, config: api.StreamConfig) -> None:
    try:
        await js.add_stream(config)
        logger.debug("stream %s ready", config.name)
        return
    except APIError as exc:
        if exc.err_code != _STREAM_CONFIG_DIFFERS:
            raise _stream_error(config, exc, "cannot create") from exc
    try:
        await js.update_stream(config)
    except APIError as exc:
        raise _stream_error(config, exc, "cannot update") from exc
    logger.info("stream %s updated to the configured limits", config.name)


def _stream_error(config: api.StreamConfig, exc: APIError, what: str) -> ConfigError:
    name = config.name or "?"
    if exc.err_code == _INSUFFICIENT_STORAGE:
        return ConfigError(
            f"{what} stream {name}: the server cannot reserve its {config.max_bytes} bytes "
            f"({exc.description}); lower {_SIZE_SETTING.get(name, 'its size')} or raise the "
            "server's JetStream max_file_store")
    return ConfigError(f"{what} stream {name} with gridpilot's configuration: {exc.description}")


def consumer_name(service: str, kind: str) -> str:
    """The durable consumer shared by every replica of ``service`` for jobs of ``kind``."""
    return f"{subjects.validate_token(service, 'service')}-{kind.replace('.', '-')}"


async def ensure_job_consumer(js: JetStreamContext, *, service: str, kind: str, max_deliver: int,
                              ack_wait_s: float, max_ack_pending: int | None = None) -> str:
    """Create or update the durable pull consumer of ``service`` for ``job.<kind>``.

    JetStream creates the consumer or, when it exists, updates it, so a new replica with a new
    ``ack_wait`` takes effect on the next start.

    Returns:
        The consumer's name.

    Raises:
        ConfigError: the server refuses the consumer (an overlapping filter on ``JOBS``, or
            ``JOBS`` does not exist).
    """
    name = consumer_name(service, kind)
    config = api.ConsumerConfig(
        name=name,
        durable_name=name,
        description=f"{service} jobs of kind {kind}",
        filter_subject=subjects.job_subject(kind),
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
    )
    try:
        await js.add_consumer(subjects.JOBS_STREAM, config)
    except NotFoundError as exc:
        raise ConfigError(f"stream {subjects.JOBS_STREAM} does not exist; call "
                          "Bus.ensure_streams() at start-up") from exc
    except APIError as exc:
        raise ConfigError(f"cannot create consumer {name} on {subjects.JOBS_STREAM}: "
                          f"{exc.description}") from exc
    return name


async def ensure_deadletter_consumer(js: JetStreamContext, settings: BusSettings,
                                     consumer: str) -> None:
    """Create or update the durable consumer of ``DEADLETTER`` for the job consumer ``consumer``.

    It has the job consumer's name, is shared by every replica, starts at the oldest stored
    advisory, and redelivers an advisory up to ``DEADLETTER_MAX_DELIVER`` times (it is acked
    once handled; a handler that fails the same way every time cannot loop for ever).
    ``DEADLETTER`` is created first when it does not exist (streams made by an older release).

    Raises:
        ConfigError: the server refuses the stream or the consumer.
    """
    config = api.ConsumerConfig(
        name=consumer,
        durable_name=consumer,
        description=f"dead letters of the job consumer {consumer}",
        filter_subject=max_deliveries_subject(consumer),
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=max(_DEADLETTER_ACK_WAIT_S, 4 * settings.request_timeout_s),
        max_deliver=DEADLETTER_MAX_DELIVER,
    )
    try:
        try:
            await js.add_consumer(DEADLETTER_STREAM, config)
        except NotFoundError:
            await _create_or_update(js, deadletter_stream_config(settings))
            await js.add_consumer(DEADLETTER_STREAM, config)
    except APIError as exc:
        raise ConfigError(f"cannot create consumer {consumer} on {DEADLETTER_STREAM}: "
                          f"{exc.description}") from exc
