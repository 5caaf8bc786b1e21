"""Settings sentences, the command log and the lease book on their own (no servers)."""

from __future__ import annotations

import asyncio
import math

import pytest

from gridpilot.contracts import ScopeReply
from gridpilot.errors import ConfigError, Conflict, LeaseHeld, ScopeError, TransientError
from scope_gateway.command_log import CommandLog
from scope_gateway.config import GatewaySettings
from scope_gateway.lease import LeaseBook


def test_settings_come_from_the_environment_and_fail_with_a_sentence(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDPILOT_SCOPE_SCOPE_ID", "krios-2")
    monkeypatch.setenv("GRIDPILOT_SCOPE_SPEEDUP", "inf")
    monkeypatch.setenv("GRIDPILOT_SCOPE_IMPERFECTIONS", "realistic")
    settings = GatewaySettings()
    assert (settings.scope_id, settings.speedup, settings.imperfections) == (
        "krios-2", math.inf, "realistic")
    with pytest.raises(ConfigError, match="SCOPE_ID"):
        GatewaySettings(scope_id="krios.2")
    with pytest.raises(ConfigError, match="SPEEDUP must be > 0"):
        GatewaySettings(speedup=float("nan"))
    with pytest.raises(ConfigError, match="must be set together"):
        GatewaySettings(driver="serialem", serialem_frames_folder="X:\\frames")


def test_a_lease_expires_after_its_ttl_and_only_its_holder_renews_it() -> None:
    now = [100.0]
    book = LeaseBook("k1", clock=lambda: now[0])
    book.take("s1", ttl_s=10.0)
    with pytest.raises(LeaseHeld, match="leased to session s1"):
        book.take("s2", ttl_s=10.0)
    now[0] = 109.0
    book.renew("s1", ttl_s=10.0)
    now[0] = 118.0
    assert book.holder == "s1"
    now[0] = 119.5
    assert book.holder is None and book.seconds_left() == 0.0
    with pytest.raises(Conflict, match="take it first"):
        book.check("s1")
    assert book.expire_if_due() is True and book.expire_if_due() is False
    assert book.take("s2", ttl_s=5.0).holder == "s2"


async def test_the_command_log_forgets_transient_failures_and_keeps_final_ones() -> None:
    log = CommandLog(max_entries=16, ttl_s=60.0)
    runs: list[str] = []

    async def fail_with(error: Exception) -> ScopeReply:
        runs.append(type(error).__name__)
        raise error

    for _ in range(2):
        with pytest.raises(TransientError):
            await log.run("s", "c1", "move_stage", {}, lambda: fail_with(TransientError("lost")))
    for _ in range(2):
        with pytest.raises(ScopeError) as caught:
            await log.run("s", "c2", "acquire", {}, lambda: fail_with(ScopeError("camera")))
    assert caught.value.details == {"repeated": True}
    assert runs == ["TransientError", "TransientError", "ScopeError"]


async def test_the_command_log_is_bounded_and_forgets_after_its_ttl() -> None:
    now = [0.0]
    log = CommandLog(max_entries=2, ttl_s=10.0, clock=lambda: now[0])
    calls = 0

    async def reply() -> ScopeReply:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return ScopeReply(command_id="c", verb="state", ok=True)

    for cid in ("a", "b", "c"):
        await log.run("s", cid, "state", {}, reply)
    assert len(log) == 2
    await log.run("s", "a", "state", {}, reply)  # "a" was the oldest: forgotten, runs again
    assert calls == 4
    now[0] = 11.0
    await log.run("s", "c", "state", {}, reply)
    assert calls == 5
