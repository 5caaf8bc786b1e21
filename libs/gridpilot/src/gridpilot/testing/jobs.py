"""Helpers for tests of jobs over a real bus: wait for server-side state, read stored events.

Acks, deletes and events land asynchronously on the server, so a test polls the state it
asserts on (never sleeps for it)::

    async def emptied() -> bool:
        return await jobs_stored(bus) == 0

    await eventually(emptied, "the job left JOBS")
    [failed] = await stored_failures(bus)
    results = await stored_events(bus, "evt.result.detect.>")
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from gridpilot.bus import Bus, EventMsg
from gridpilot.contracts import JobFailed, subjects

__all__ = ["eventually", "jobs_stored", "stored_events", "stored_failures"]

_WAIT_S: Final[float] = 20.0
_POLL_S: Final[float] = 0.05
#: Seconds without a new event after which every stored event has been read.
_QUIET_S: Final[float] = 0.3


async def eventually(check: Callable[[], Awaitable[bool]], what: str,
                     timeout_s: float = _WAIT_S) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await check():
                await asyncio.sleep(_POLL_S)
    except TimeoutError:
        raise AssertionError(f"not within {timeout_s:g} s: {what}") from None


async def stored_events(bus: Bus, subject_filter: str, *,
                        quiet_s: float = _QUIET_S) -> list[EventMsg]:
    """Every event stored in ``EVENTS`` on ``subject_filter`` so far, oldest first.

    Args:
        quiet_s: seconds without a new event after which the stored ones are taken as read.
    """
    found: list[EventMsg] = []
    async with await bus.events(subject_filter, deliver_all=True) as events:
        while True:
            try:
                found.append(await events.next(timeout_s=quiet_s))
            except TimeoutError:
                return found


async def stored_failures(bus: Bus) -> list[JobFailed]:
    """Every ``evt.job.failed`` stored in ``EVENTS`` so far, oldest first."""
    return [e.parse(JobFailed) for e in await stored_events(bus, subjects.EVT_JOB_FAILED)]


async def jobs_stored(bus: Bus) -> int:
    """How many jobs ``JOBS`` holds now."""
    return (await bus.js.stream_info(subjects.JOBS_STREAM)).state.messages
