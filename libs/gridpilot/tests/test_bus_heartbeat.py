"""``heartbeat_until_done``: a handler's long work keeps its job marked in progress until it ends."""

from __future__ import annotations

import asyncio

import pytest

from gridpilot.bus import heartbeat_until_done


async def test_heartbeats_are_sent_while_the_work_runs_and_stop_when_it_ends() -> None:
    """The work ends on the third heartbeat; no fourth one is sent after it."""
    release = asyncio.Event()
    beats: list[int] = []

    async def heartbeat() -> None:
        beats.append(len(beats) + 1)
        if len(beats) == 3:
            release.set()

    async def work() -> str:
        await release.wait()
        return "done"

    task = asyncio.ensure_future(work())
    await heartbeat_until_done(task, heartbeat, every_s=0.01)
    assert task.done() and task.result() == "done"
    assert beats == [1, 2, 3]


async def test_the_work_s_exception_is_left_for_the_caller() -> None:
    async def work() -> None:
        raise ValueError("bad frames")

    task = asyncio.ensure_future(work())
    await heartbeat_until_done(task, None, every_s=0.01)
    with pytest.raises(ValueError, match="bad frames"):
        task.result()


async def test_a_failing_heartbeat_propagates() -> None:
    async def heartbeat() -> None:
        raise ConnectionError("bus gone")

    task = asyncio.ensure_future(asyncio.sleep(10.0))
    try:
        with pytest.raises(ConnectionError, match="bus gone"):
            await heartbeat_until_done(task, heartbeat, every_s=0.01)
    finally:
        task.cancel()
