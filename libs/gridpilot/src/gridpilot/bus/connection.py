"""The bus connection every service holds: publish events, submit jobs, request/reply, watch.

::

    bus = await Bus.connect(BusSettings(), name="orchestrator")
    await bus.ensure_streams()
    await bus.submit_job(PreprocessMovieJob(...))
    event = await bus.wait_for_event(subjects.result_subject(subjects.PREPROCESS_MOVIE),
                                     lambda e: e.parse(MoviePreprocessed).job_id == job_id,
                                     timeout_s=60)
    await bus.close()

Every message published carries a ``traceparent`` header continuing the current log context's
trace. Failures of the bus itself surface as :class:`~gridpilot.errors.BusUnavailable` (a
``TransientError``) with a message that names the subject and never the credentials.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, TypeVar

from nats.aio.client import Client as NATS
from nats.errors import (
    ConnectionClosedError,
    ConnectionDrainingError,
    ConnectionReconnectingError,
    NoServersError,
)
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.errors import APIError, NoStreamResponseError
from pydantic import BaseModel

from gridpilot.contracts import JobRequest, Message, subjects
from gridpilot.errors import BusUnavailable, ConfigError, InvalidInput, redact

from . import events as _events
from . import rpc as _rpc
from .headers import outgoing_headers
from .settings import BusSettings
from .streams import ensure_streams, job_subjects

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Bus"]

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

_EVENTS_PREFIX: Final[str] = subjects.EVENTS_SUBJECTS.removesuffix(">")
_JOBS_PREFIX: Final[str] = subjects.JOBS_SUBJECTS.removesuffix(">")
_JOB_SUBJECTS: Final[frozenset[str]] = frozenset(job_subjects())
#: Seconds between reconnection attempts once connected (initial attempts use their own pause).
_RECONNECT_WAIT_S: Final[float] = 2.0
_CONNECT_PAUSE_S: Final[float] = 0.5
#: The whole first connection (socket, TLS handshake, INFO/CONNECT) gets this many connect_timeouts.
_CONNECT_TIMEOUT_FACTOR: Final[float] = 3.0
#: Seconds to wait for a failed client to close before leaving it to the garbage collector.
_DISCARD_TIMEOUT_S: Final[float] = 2.0
#: Seconds of stored events ``wait_for_event`` searches before waiting for new ones.
_WAIT_LOOKBACK_S: Final[float] = 300.0


class Bus:
    """A NATS JetStream connection with gridpilot's conventions; made by :meth:`connect`."""

    def __init__(self, nc: NATS, settings: BusSettings, name: str,
                 connection_events: _ConnectionEvents | None = None) -> None:
        self.settings = settings
        self.name = name
        self._nc = nc
        self._js: JetStreamContext = nc.jetstream(timeout=settings.request_timeout_s)
        self._workers: set[Worker] = set()
        self._event_subs: set[_events.EventSubscription] = set()
        self._responders: set[_rpc.Responder] = set()
        self._connection_events = connection_events
        if connection_events is not None:
            connection_events.on_reconnected = self._reconnected

    # ---- connection -----------------------------------------------------------------------------
    @classmethod
    async def connect(cls, settings: BusSettings, *, name: str) -> Bus:
        """Connect with the configured credentials and TLS; reconnect for ever once connected.

        Args:
            settings: where and how to connect.
            name: this client's name as the server shows it (the service name).

        Raises:
            BusUnavailable: the server cannot be reached, or it refused the credentials.
            ConfigError: the TLS files or the credentials file cannot be used.
        """
        where = f"the bus at {settings.safe_url} as {name}"
        options = dict(
            servers=settings.servers, name=name, tls=settings.ssl_context(),
            connect_timeout=settings.connect_timeout_s, drain_timeout=settings.drain_timeout_s,
            # The first connection fails fast (our own loop retries it, with pauses); the
            # reconnection policy for later losses is set once connected.
            allow_reconnect=False, max_reconnect_attempts=1, reconnect_time_wait=0,
            **settings.auth_options(),
        )
        last: BaseException | None = None
        for attempt in range(1, settings.connect_attempts + 1):
            nc = NATS()
            events = _ConnectionEvents(where)
            try:
                # nats-py's connect_timeout covers opening the socket, not a TLS handshake that
                # fails (an untrusted certificate left it waiting for ever): bound the whole call.
                await _bounded(
                    nc.connect(error_cb=events.error, disconnected_cb=events.disconnected,
                               reconnected_cb=events.reconnected, **options),
                    settings.connect_timeout_s * _CONNECT_TIMEOUT_FACTOR)
            except ModuleNotFoundError as exc:
                raise ConfigError(f"GRIDPILOT_BUS_CREDS_FILE needs the {exc.name} package, which "
                                  "is not installed") from None
            except (OSError, NatsError, TimeoutError) as exc:
                await _discard(nc)
                last = _root_cause(exc, events.errors)
                if _is_auth_failure(last):
                    raise BusUnavailable(f"{where} refused the credentials "
                                         f"({_describe(last)})") from None
                if attempt < settings.connect_attempts:
                    await asyncio.sleep(_CONNECT_PAUSE_S * attempt)
                continue
            events.connected = True
            nc.options["allow_reconnect"] = True
            nc.options["max_reconnect_attempts"] = -1
            nc.options["reconnect_time_wait"] = _RECONNECT_WAIT_S
            logger.info("connected to %s", where)
            return cls(nc, settings, name, events)
        raise BusUnavailable(f"cannot connect to {where} after {settings.connect_attempts} "
                             f"attempt(s): {_describe(last)}")

    @property
    def connected(self) -> bool:
        """Whether the connection is up now (false while reconnecting or after close)."""
        return bool(self._nc.is_connected)

    @property
    def nc(self) -> NATS:
        """The nats-py client, for what this class does not wrap."""
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context of :attr:`nc`."""
        return self._js

    async def ensure_streams(self) -> None:
        """Create or update ``EVENTS``, ``JOBS`` and ``DEADLETTER`` (see :mod:`gridpilot.bus.streams`)."""
        await ensure_streams(self._js, self.settings)

    async def close(self) -> None:
        """Stop this bus's workers, responders and event readers, then drain and close."""
        for worker in list(self._workers):
            await worker.stop(drain=True)
        for sub in list(self._event_subs):
            await sub.close()
        for responder in list(self._responders):
            await responder.stop()
        if self._connection_events is not None:
            self._connection_events.closing = True
        if self._nc.is_closed:
            return
        try:
            await self._nc.drain()
        except (ConnectionClosedError, ConnectionReconnectingError):
            await self._nc.close()

    # ---- publishing -----------------------------------------------------------------------------
    async def publish_raw(self, subject: str, data: bytes,
                          headers: dict[str, str]) -> tuple[int, bool]:
        """JetStream-publish bytes; returns the stream sequence and whether it was a duplicate.

        Raises:
            InvalidInput: ``subject`` is under ``job.`` but names no known job kind (nobody
                would ever consume it).
            BusUnavailable: no stream took it in time, the stream is full, or the bus is down.
        """
        if subject.startswith(_JOBS_PREFIX) and subject not in _JOB_SUBJECTS:
            raise InvalidInput(f"{subject} is not a job subject; known kinds: "
                               f"{', '.join(subjects.JOB_KINDS)}", subject=subject)
        try:
            ack = await self._js.publish(subject, data, headers=headers)
        except NoStreamResponseError:
            raise BusUnavailable(f"no stream stores {subject}; are the streams created?",
                                 subject=subject) from None
        except NatsTimeoutError:
            wait_s = self.settings.request_timeout_s
            raise BusUnavailable(f"the bus did not confirm {subject} within {wait_s:g} s",
                                 subject=subject) from None
        except APIError as exc:
            raise BusUnavailable(f"the bus refused {subject}: {exc.description}",
                                 subject=subject) from None
        except (ConnectionClosedError, ConnectionDrainingError) as exc:
            raise BusUnavailable(f"cannot publish {subject}: {exc}", subject=subject) from None
        return ack.seq, bool(ack.duplicate)

    async def publish_event(self, subject: str, msg: Message, *, msg_id: str | None = None) -> int:
        """Publish an event on ``subject`` (under ``evt.``) to ``EVENTS``.

        Args:
            subject: the event subject, from :mod:`gridpilot.contracts.subjects`.
            msg: the event.
            msg_id: de-duplication id; a repeat within the duplicate window is dropped.

        Returns:
            The event's stream sequence (the first one's, for a duplicate).
        """
        if not subject.startswith(_EVENTS_PREFIX):
            raise ValueError(f"event subject {subject!r} is not under {subjects.EVENTS_SUBJECTS}")
        seq, _ = await self.publish_raw(subject, msg.model_dump_json().encode(),
                                        outgoing_headers(msg_id=msg_id))
        return seq

    async def submit_job(self, job: JobRequest) -> bool:
        """Queue ``job`` on ``job.<kind>`` with its ``job_id`` as ``Nats-Msg-Id``.

        Returns:
            False when the server dropped it as a duplicate of a job already submitted.
        """
        subject = subjects.job_subject(job.kind)
        _, duplicate = await self.publish_raw(subject, job.model_dump_json().encode(),
                                              outgoing_headers(msg_id=job.job_id))
        if duplicate:
            logger.info("job %s on %s was already submitted", job.job_id, subject)
        return not duplicate

    # ---- request / reply ------------------------------------------------------------------------
    async def request(self, subject: str, msg: Message, reply_type: type[T], *,
                      timeout_s: float = 10.0, idempotency_key: str | None = None) -> T:
        """Send a request and wait for its reply (see :func:`gridpilot.bus.rpc.request`).

        Raises:
            BusUnavailable: no responder, no reply in ``timeout_s``, or the bus is down.
            GridpilotError: the responder failed; the subclass matches its error code.
        """
        return await _rpc.request(self._nc, subject, msg, reply_type, timeout_s=timeout_s,
                                  idempotency_key=idempotency_key)

    async def serve(self, subject: str, handler: _rpc.Handler | _rpc.SubjectHandler, *,
                    queue: str, concurrency: int = 1) -> _rpc.Responder:
        """Answer requests on ``subject`` in queue group ``queue`` (one replica answers each).

        ``handler(payload, headers)`` returns the reply message; a handler with a third
        parameter is also given the subject the request came on, which is how a responder on
        a wildcard subject (``scope.krios-1.*``) tells them apart. A ``GridpilotError`` it
        raises is sent back as an error reply, any other exception as an internal error.
        Requests are answered one at a time unless ``concurrency`` is larger. When this
        returns, the server routes requests here (no "no responders" for a request sent next,
        from any connection to the same server).
        """
        responder = await _rpc.serve(self._nc, subject, handler, queue=queue,
                                     concurrency=concurrency)
        self._responders.add(responder)
        return responder

    # ---- events ---------------------------------------------------------------------------------
    async def events(self, subject_filter: str = subjects.EVENTS_SUBJECTS, *,
                     deliver_all: bool = False) -> _events.EventSubscription:
        """Watch events on ``subject_filter``: new ones, or all stored ones with ``deliver_all``.

        The subscription is in place when this returns; iterate it with ``async for`` and close
        it (``async with await bus.events(...) as events``).
        """
        sub = await _events.open_events(self._js, subject_filter, deliver_all=deliver_all,
                                        on_close=self._event_subs.discard)
        self._event_subs.add(sub)
        return sub

    async def wait_for_event(self, subject_filter: str,
                             predicate: Callable[[_events.EventMsg], bool], *, timeout_s: float,
                             lookback_s: float | None = _WAIT_LOOKBACK_S) -> _events.EventMsg:
        """The first event on ``subject_filter`` matching ``predicate``.

        Events stored in the last ``lookback_s`` seconds are searched first, so an event
        published just before the call (a job's result that beat us) is found; ``math.inf``
        searches the whole stream, None only events from now on.

        Raises:
            TimeoutError: nothing matched within ``timeout_s`` seconds.
        """
        return await _events.wait_for_event(self._js, subject_filter, predicate,
                                            timeout_s=timeout_s, lookback_s=lookback_s)

    # ---- bookkeeping for Worker -----------------------------------------------------------------
    def _reconnected(self) -> None:
        # A restarted server has forgotten the workers' pull requests: ask again now rather
        # than when they would have expired.
        for worker in self._workers:
            worker._reconnected()

    def _add_worker(self, worker: Worker) -> None:
        self._workers.add(worker)

    def _remove_worker(self, worker: Worker) -> None:
        self._workers.discard(worker)


async def _bounded(coro: Coroutine[Any, Any, Any], timeout_s: float) -> None:
    """Await ``coro`` for at most ``timeout_s``, then give up on it without waiting for it.

    ``asyncio.wait_for`` waits for the cancelled call to finish, and a nats-py connect stuck in
    a failed TLS handshake never does; so cancel it and walk away.
    """
    task = asyncio.ensure_future(coro)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()
        raise TimeoutError(f"no answer within {timeout_s:g} s (TLS handshake or server)")
    task.result()


async def _discard(nc: NATS) -> None:
    """Close a client whose connection failed (nats-py leaves its socket open otherwise)."""
    try:
        await _bounded(nc.close(), _DISCARD_TIMEOUT_S)
    except Exception:  # it is already broken; closing is best effort
        logger.debug("closing a failed connection raised", exc_info=True)


def _root_cause(exc: BaseException, errors: list[BaseException]) -> BaseException:
    # NoServersError hides why each attempt failed; the error callback saw it.
    if isinstance(exc, NoServersError) and errors:
        return errors[-1]
    return exc


def _is_auth_failure(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "authorization" in text or "authentication" in text


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "no attempt was made"
    text = str(exc) or type(exc).__name__
    return redact(text.removeprefix("nats: ").strip("'"))


class _ConnectionEvents:
    """nats-py's callbacks: collected while connecting, logged once connected."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.connected = False
        self.closing = False
        self.errors: list[BaseException] = []
        self.on_reconnected: Callable[[], None] | None = None

    async def error(self, exc: Exception) -> None:
        if not self.connected:
            self.errors.append(exc)
            return
        logger.warning("bus connection error (%s): %s", self.where, _describe(exc))

    async def disconnected(self) -> None:
        if self.connected and not self.closing:
            logger.warning("disconnected from %s; reconnecting", self.where)

    async def reconnected(self) -> None:
        logger.info("reconnected to %s", self.where)
        if self.on_reconnected is not None:
            self.on_reconnected()
