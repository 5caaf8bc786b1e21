"""Bus connection, settings, streams, events and request/reply over a real nats-server."""

from __future__ import annotations

import asyncio
import gc
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from pydantic import SecretStr

import gridpilot.bus
from gridpilot.bus import IDEMPOTENCY_KEY, Bus, BusSettings, error_class
from gridpilot.bus.headers import outgoing_headers, parse_traceparent, trace_id_from
from gridpilot.bus.streams import job_subjects
from gridpilot.contracts import (
    GridUpdated,
    Message,
    ScopeCommand,
    ScopeReply,
    SessionUpdated,
    subjects,
)
from gridpilot.embedded import NatsServer, free_port
from gridpilot.errors import (
    BusUnavailable,
    ConfigError,
    GridpilotError,
    InvalidInput,
    LeaseHeld,
    OperatorTookOver,
    UnsafeCommand,
)
from gridpilot.logs import current_context, log_context

STREAM_BYTES = 32 * 1024 * 1024  # the fixture server stores at most 256 MB
STATE = subjects.scope_command("krios-1", "state")
MOVE = subjects.scope_command("krios-1", "move_stage")


def small(url: str) -> BusSettings:
    return BusSettings(url=url, events_max_bytes=STREAM_BYTES, jobs_max_bytes=STREAM_BYTES)


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(small(nats_url), name="test")
    await bus.ensure_streams()
    yield bus
    await bus.close()


def command(verb: str = "state") -> ScopeCommand:
    return ScopeCommand(session_id="s1", verb=verb)


def reply_to(payload: bytes) -> ScopeReply:
    cmd = ScopeCommand.model_validate_json(payload)
    return ScopeReply(command_id=cmd.command_id, verb=cmd.verb, ok=True)


# ---- settings ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "words"), [
    ({"user": "alice"}, "GRIDPILOT_BUS_PASSWORD is not"),
    ({"password": "pw"}, "GRIDPILOT_BUS_USER is not"),
    ({"token": "t", "user": "alice", "password": "pw"}, "choose the token or the user"),
    ({"tls_cert": "/etc/cert.pem"}, "GRIDPILOT_BUS_TLS_KEY is not"),
    ({"tls_key": "/etc/key.pem"}, "GRIDPILOT_BUS_TLS_CERT is not"),
    ({"tls_ca": "/nonexistent/ca.pem"}, "not a file"),
])
def test_inconsistent_bus_settings_fail_with_a_sentence(fields: dict[str, str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        BusSettings(**fields)  # type: ignore[arg-type]


def test_bus_settings_come_from_the_environment_and_hide_secrets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDPILOT_BUS_URL", "nats://a:4222, nats://b:4222")
    monkeypatch.setenv("GRIDPILOT_BUS_TOKEN", "env-s3cret")
    monkeypatch.setenv("GRIDPILOT_BUS_DUPLICATE_WINDOW_S", "30")
    settings = BusSettings()
    assert settings.servers == ["nats://a:4222", "nats://b:4222"]
    assert settings.duplicate_window_s == 30
    assert settings.auth_options() == {"token": "env-s3cret"}
    assert "env-s3cret" not in repr(settings)
    assert BusSettings(url="nats://bob:pw@h:4222").safe_url == "nats://***@h:4222"


# ---- connecting ----------------------------------------------------------------------------------
async def test_a_token_protected_server_accepts_the_token_and_refuses_a_wrong_one(
        tmp_path: Path) -> None:
    with NatsServer.start(tmp_path, token="right-t0ken", max_file="256MB") as server:
        settings = small(server.url).model_copy(update={"token": SecretStr("right-t0ken")})
        bus = await Bus.connect(settings, name="test")
        await bus.ensure_streams()
        assert bus.connected
        await bus.close()
        assert not bus.connected

        with pytest.raises(BusUnavailable) as refused:
            await Bus.connect(BusSettings(url=server.url, token=SecretStr("wr0ng-t0ken")),
                              name="test")
        assert "refused the credentials" in refused.value.message
        assert "wr0ng-t0ken" not in str(refused.value) and "right-t0ken" not in str(refused.value)
        # The refused client must leave no socket behind; a leak would warn (an error) here.
        gc.collect()


async def test_an_unreachable_server_raises_bus_unavailable_naming_it_without_secrets() -> None:
    url = f"nats://alice:pa55word@127.0.0.1:{free_port()}"
    settings = BusSettings(url=url, connect_attempts=2, connect_timeout_s=1.0)
    with pytest.raises(BusUnavailable) as unreachable:
        await Bus.connect(settings, name="orchestrator")
    message = unreachable.value.message
    assert "after 2 attempt(s)" in message and "as orchestrator" in message
    assert "pa55word" not in message and "alice" not in message


# ---- streams -------------------------------------------------------------------------------------
async def test_streams_have_the_right_retention_and_are_updated_idempotently(nats_url: str) -> None:
    bus = await Bus.connect(small(nats_url), name="test")
    try:
        await bus.ensure_streams()
        await bus.ensure_streams()
        events = (await bus.js.stream_info(subjects.EVENTS_STREAM)).config
        jobs = (await bus.js.stream_info(subjects.JOBS_STREAM)).config
        assert (events.retention, events.subjects) == ("limits", ["evt.>"])
        assert (jobs.retention, jobs.subjects, jobs.discard) == ("workqueue", job_subjects(), "new")
        assert events.duplicate_window == jobs.duplicate_window == 120.0
        assert events.max_bytes == STREAM_BYTES

        bigger = BusSettings(url=nats_url, events_max_bytes=48 * 1024 * 1024,
                             jobs_max_bytes=STREAM_BYTES, duplicate_window_s=60)
        await Bus(bus.nc, bigger, "test").ensure_streams()
        events = (await bus.js.stream_info(subjects.EVENTS_STREAM)).config
        assert (events.max_bytes, events.duplicate_window) == (48 * 1024 * 1024, 60.0)
    finally:
        await bus.close()


async def test_an_existing_jobs_stream_with_another_retention_is_reported_not_replaced(
        nats_url: str) -> None:
    bus = await Bus.connect(small(nats_url), name="test")
    try:
        await bus.js.add_stream(name=subjects.JOBS_STREAM, subjects=["job.>"])
        with pytest.raises(ConfigError, match="cannot update stream JOBS") as refused:
            await bus.ensure_streams()
        assert "retention" in refused.value.message
        assert (await bus.js.stream_info(subjects.JOBS_STREAM)).config.retention == "limits"
    finally:
        await bus.close()


async def test_submitting_a_job_before_the_streams_exist_is_a_clear_transient_error(
        nats_url: str) -> None:
    bus = await Bus.connect(BusSettings(url=nats_url, request_timeout_s=2.0), name="test")
    try:
        with pytest.raises(BusUnavailable, match=re.escape("no stream stores job.detect.holes")):
            await bus.publish_raw(subjects.job_subject(subjects.DETECT_HOLES), b"{}", {})
    finally:
        await bus.close()


# ---- events --------------------------------------------------------------------------------------
async def test_events_are_watched_live_or_replayed_from_the_start(bus: Bus) -> None:
    first = SessionUpdated(session_id="s1", state="running")
    await bus.publish_event(subjects.EVT_SESSION_UPDATED, first)
    async with await bus.events(subjects.EVT_SESSION_UPDATED) as live:
        await bus.publish_event(subjects.EVT_GRID_UPDATED,
                                GridUpdated(session_id="s1", grid_id="g1", state="atlas"))
        second_seq = await bus.publish_event(subjects.EVT_SESSION_UPDATED,
                                             SessionUpdated(session_id="s1", state="paused"))
        event = await live.next(5.0)
    assert event.parse(SessionUpdated).state == "paused"
    assert (event.subject, event.seq) == (subjects.EVT_SESSION_UPDATED, second_seq)

    async with await bus.events("evt.session.>", deliver_all=True) as replay:
        states = [(await replay.next(5.0)).parse(SessionUpdated).state for _ in range(2)]
    assert states == ["running", "paused"]


async def test_an_event_with_a_repeated_msg_id_is_stored_once(bus: Bus) -> None:
    event = SessionUpdated(session_id="s1", state="completed")
    first = await bus.publish_event(subjects.EVT_SESSION_UPDATED, event, msg_id="s1:completed")
    again = await bus.publish_event(subjects.EVT_SESSION_UPDATED, event, msg_id="s1:completed")
    assert first == again
    info = await bus.js.stream_info(subjects.EVENTS_STREAM)
    assert info.state.messages == 1


async def test_closing_the_bus_ends_open_event_iterations(bus: Bus) -> None:
    events = await bus.events()
    collected = []

    async def collect() -> None:
        async for event in events:
            collected.append(event.subject)

    reader = asyncio.create_task(collect())
    await bus.publish_event(subjects.EVT_SESSION_UPDATED, SessionUpdated(session_id="s1",
                                                                          state="running"))
    found = await bus.wait_for_event(subjects.EVT_SESSION_UPDATED, lambda e: True, timeout_s=5.0)
    assert found.trace_id is not None
    await bus.close()
    async with asyncio.timeout(5.0):
        await reader
    assert collected == [subjects.EVT_SESSION_UPDATED]


async def test_waiting_for_an_event_finds_one_that_came_just_before_the_call(bus: Bus) -> None:
    seq = await bus.publish_event(subjects.EVT_GRID_UPDATED,
                                  GridUpdated(session_id="s1", grid_id="g1", state="screening"))
    found = await bus.wait_for_event(subjects.EVT_GRID_UPDATED,
                                     lambda e: e.parse(GridUpdated).grid_id == "g1", timeout_s=5.0)
    assert found.seq == seq
    with pytest.raises(TimeoutError, match=re.escape("no event on evt.grid.updated matched")):
        await bus.wait_for_event(subjects.EVT_GRID_UPDATED, lambda e: True, timeout_s=0.2,
                                 lookback_s=None)


async def test_an_event_subject_outside_evt_is_refused(bus: Bus) -> None:
    with pytest.raises(ValueError, match="not under evt"):
        await bus.publish_event(STATE, SessionUpdated(session_id="s", state="running"))


# ---- request / reply -----------------------------------------------------------------------------
async def test_a_request_gets_its_typed_reply_with_trace_and_idempotency_headers(bus: Bus) -> None:
    seen: list[tuple[str | None, str | None]] = []

    async def handle(payload: bytes, headers: Mapping[str, str]) -> ScopeReply:
        seen.append((current_context()["trace_id"], headers.get(IDEMPOTENCY_KEY)))
        return reply_to(payload)

    await bus.serve(STATE, handle, queue="scope-gateway")
    cmd = command()
    with log_context(trace_id="0af7651916cd43dd8448eb211c80319c"):
        reply = await bus.request(STATE, cmd, ScopeReply, idempotency_key=cmd.command_id)
    assert (reply.command_id, reply.ok) == (cmd.command_id, True)
    assert seen == [("0af7651916cd43dd8448eb211c80319c", cmd.command_id)]


async def test_a_request_nobody_serves_raises_bus_unavailable_naming_the_subject(bus: Bus) -> None:
    expected = "no service answers requests on scope.krios-1.state"
    with pytest.raises(BusUnavailable, match=re.escape(expected)):
        await bus.request(STATE, command(), ScopeReply, timeout_s=2.0)


async def test_a_request_without_a_timely_reply_raises_bus_unavailable(bus: Bus) -> None:
    release = asyncio.Event()

    async def stuck(payload: bytes, headers: Mapping[str, str]) -> ScopeReply:
        await release.wait()
        return reply_to(payload)

    await bus.serve(STATE, stuck, queue="scope-gateway")
    try:
        with pytest.raises(BusUnavailable, match=r"no reply on scope.krios-1.state within 0.2 s"):
            await bus.request(STATE, command(), ScopeReply, timeout_s=0.2)
    finally:
        release.set()


@pytest.mark.parametrize("error", [
    UnsafeCommand("x_um=1200 is outside the stage limits (±990 µm)", field="x_um"),
    LeaseHeld("krios-1 is held by session s2", holder="s2"),
    OperatorTookOver("STOP was pressed in SerialEM"),
], ids=lambda e: type(e).__name__)
async def test_a_handler_error_is_raised_on_the_caller_side_as_the_same_class(
        bus: Bus, error: GridpilotError) -> None:
    async def refuse(payload: bytes, headers: Mapping[str, str]) -> ScopeReply:
        raise error

    await bus.serve(MOVE, refuse, queue="scope-gateway")
    with pytest.raises(type(error)) as raised:
        await bus.request(MOVE, command("move_stage"), ScopeReply)
    assert type(raised.value) is type(error)
    assert raised.value.message == error.message and raised.value.details == error.details


class _NeedsTtl(Message):
    """A request with a required field a ScopeCommand lacks (unknown fields are ignored)."""

    ttl_s: float


async def test_a_malformed_request_or_a_crashing_handler_is_answered_with_an_error(
        bus: Bus) -> None:
    async def strict(payload: bytes, headers: Mapping[str, str]) -> ScopeReply:
        _NeedsTtl.model_validate_json(payload)
        raise RuntimeError("bug in the gateway")

    await bus.serve(STATE, strict, queue="scope-gateway")
    expected = "invalid request on scope.krios-1.state: ttl_s: Field required"
    with pytest.raises(InvalidInput, match=re.escape(expected)):
        await bus.request(STATE, command(), ScopeReply)
    with pytest.raises(GridpilotError, match="internal error while answering") as crashed:
        await bus.request(STATE, _NeedsTtl(ttl_s=1.0), ScopeReply)
    assert type(crashed.value) is GridpilotError
    assert "bug in the gateway" not in crashed.value.message


async def test_requests_are_spread_over_a_queue_group(bus: Bus, nats_url: str) -> None:
    answered: list[str] = []
    other = await Bus.connect(BusSettings(url=nats_url), name="test-b")

    def handler_of(name: str):  # type: ignore[no-untyped-def]
        async def handle(payload: bytes, headers: Mapping[str, str]) -> ScopeReply:
            answered.append(name)
            return reply_to(payload)
        return handle

    try:
        await bus.serve(STATE, handler_of("a"), queue="scope-gateway")
        await other.serve(STATE, handler_of("b"), queue="scope-gateway", concurrency=4)
        for _ in range(40):
            await bus.request(STATE, command(), ScopeReply)
    finally:
        await other.close()
    assert len(answered) == 40 and set(answered) == {"a", "b"}


# ---- headers and exports -------------------------------------------------------------------------
async def test_a_wildcard_responder_is_told_the_subject_of_each_request(bus: Bus) -> None:
    seen: list[str] = []

    async def handle(payload: bytes, headers: Mapping[str, str], subject: str) -> ScopeReply:
        seen.append(subject)
        verb = subject.rsplit(".", 1)[-1]
        if verb != "state":
            raise UnsafeCommand(f"verb {verb!r} is not allowed", verb=verb)
        return reply_to(payload)

    await bus.serve("scope.krios-1.*", handle, queue="scope-gateway", concurrency=2)
    assert (await bus.request(STATE, command(), ScopeReply)).ok
    with pytest.raises(UnsafeCommand, match="'move_stage' is not allowed"):
        await bus.request(MOVE, command("move_stage"), ScopeReply)
    assert seen == [STATE, MOVE]


async def test_a_request_sent_as_soon_as_serve_returns_is_answered(bus: Bus,
                                                                   nats_url: str) -> None:
    """Regression: serve flushed once, and nats-py writes that PING ahead of a SUB its flusher
    has not sent yet, so a request from another connection right after serve sometimes got "no
    responders" (about 1 in 170 on a quiet machine)."""
    other = await Bus.connect(BusSettings(url=nats_url), name="test-b")
    try:
        for i in range(500):
            subject = subjects.scope_command(f"krios-{i}", "state")
            responder = await bus.serve(subject, lambda payload, headers: _answer(payload),
                                        queue="scope-gateway")
            assert (await other.request(subject, command(), ScopeReply)).ok
            await responder.stop()
    finally:
        await other.close()


async def _answer(payload: bytes) -> ScopeReply:
    return reply_to(payload)


def test_traceparent_headers_continue_the_trace_and_reject_garbage() -> None:
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = outgoing_headers(msg_id="job_1", trace_id=tid)
    assert headers["Nats-Msg-Id"] == "job_1" and parse_traceparent(headers["traceparent"]) == tid
    assert outgoing_headers()["traceparent"] != outgoing_headers()["traceparent"]
    for bad in ("", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "ff-" + tid + "-00f067aa0ba902b7-01",
                "00-xyz-00f067aa0ba902b7-01"):
        assert parse_traceparent(bad) is None
    assert len(trace_id_from({})) == 32
    assert trace_id_from({"traceparent": headers["traceparent"]}) == tid


def test_error_codes_map_back_to_their_classes() -> None:
    assert error_class("lease_held") is LeaseHeld
    assert error_class("bus_unavailable") is BusUnavailable
    assert error_class("no such code") is GridpilotError


def test_the_bus_package_exports_its_public_api() -> None:
    for name in ("Bus", "BusSettings", "Worker", "JobContext", "EventMsg", "EventSubscription",
                 "Responder", "job_metrics"):
        assert name in gridpilot.bus.__all__
    assert all(hasattr(gridpilot.bus, name) for name in gridpilot.bus.__all__)
