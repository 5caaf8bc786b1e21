"""The flow's checkpoint honours the control state kept in memory, loaded from the database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa

from orchestrator.control import AbortRequested, Control, ControlState, Skip, StopRequested
from orchestrator.db import migrate, open_engine, session_scope
from orchestrator.models import Grid, Hole, Microscope, Session, Square


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    engine = open_engine(f"sqlite:///{tmp_path / 'o.db'}")
    migrate(engine)
    with session_scope(engine) as db:
        db.add(Microscope(id="krios-1", name="Krios"))
        db.flush()
        db.add(Session(id="s1", name="screen", group="lab", owner="ana", microscope_id="krios-1",
                       params={}, protocol={"name": "SPA"}, request="pause"))
        db.flush()
        db.add(Grid(id="g1", session_id="s1", position=1, name="a"))
        db.add(Grid(id="g2", session_id="s1", position=2, name="b", status="skipped"))
        db.flush()
        db.add(Square(id="q1", session_id="s1", grid_id="g1", number=1, box_px={"v": [0, 0, 1, 1]},
                      label="good", score=0.9, stage_x_um=0, stage_y_um=0, area_um2=900.0,
                      status="skipped"))
        db.flush()
        for n, status in ((1, "queued"), (2, "skipped")):
            db.add(Hole(id=f"h{n}", session_id="s1", grid_id="g1", square_id="q1", number=n,
                        x_px=1, y_px=1, radius_px=3, score=1, mean_intensity=0.5, stage_x_um=0,
                        stage_y_um=0, status=status))
    return engine


def test_the_state_loads_the_standing_request_and_every_skip_of_the_session(
        engine: sa.Engine) -> None:
    state = ControlState.load(engine, "s1")
    assert state.request == "pause" and state.skipped == {"g2", "q1", "h2"}
    assert ControlState.load(engine, "no-such-session").request == "abort"
    state.status_changed("q1", "queued")
    state.status_changed("h1", "skipped")
    assert state.skipped == {"g2", "h1", "h2"}


async def test_the_checkpoint_waits_while_paused_and_goes_on_when_resumed(
        engine: sa.Engine) -> None:
    states: list[tuple[str, str]] = []

    async def record(state: str, message: str) -> None:
        states.append((state, message))

    control = Control(ControlState.load(engine, "s1"), set_state=record)
    waiting = asyncio.create_task(control.checkpoint())
    while not states:
        await asyncio.sleep(0.01)
    assert not waiting.done() and states == [("paused", "paused by the user")]
    control.state.request = None  # what the resume route writes
    await asyncio.wait_for(waiting, 10.0)
    assert states[-1] == ("running", "resumed")


@pytest.mark.parametrize(("request_", "error"), [("stop", StopRequested),
                                                 ("abort", AbortRequested)])
async def test_stop_and_abort_win_over_a_skip(request_: str, error: type[Exception]) -> None:
    async def ignore(state: str, message: str) -> None:
        raise AssertionError("no state change expected")

    control = Control(ControlState(request_, {"q1"}), set_state=ignore, square_id="q1")
    with pytest.raises(error):
        await control.checkpoint()


async def test_a_skip_names_the_level_the_flow_is_at(engine: sa.Engine) -> None:
    async def ignore(state: str, message: str) -> None:
        raise AssertionError("no state change expected")

    state = ControlState.load(engine, "s1")
    state.request = None
    for control, level, entity in (
            (Control(state, ignore, grid_id="g2", square_id="q1"), "grid", "g2"),
            (Control(state, ignore, grid_id="g1", square_id="q1"), "square", "q1"),
            (Control(state, ignore, grid_id="g1", hole_ids=["h2", "h1"]), "target", "h2")):
        with pytest.raises(Skip) as caught:
            await control.checkpoint()
        assert (caught.value.level, caught.value.entity_id) == (level, entity)
    await Control(state, ignore, grid_id="g1", hole_ids=["h1", "h2"]).checkpoint()  # no skip
