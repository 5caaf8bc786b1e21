"""The fake against SerialEM's sources: one test per row of the command table, and the module
behaviour (arguments, reports, scripts, sockets, bufferImage) every row relies on."""

from __future__ import annotations

import asyncio
import functools
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gridpilot_sim.instrument.microscope import TwinAtlas, TwinImage, TwinMicroscope
from gridpilot_sim.instrument.presets import TwinOptics
from gridpilot_sim.instrument.timing import TimingModel
from scope_gateway.fake_serialem import FakeSerialEM, SEMerror, SEMexited, SEMmoduleError
from scope_gateway.fake_serialem_base import report
from scope_gateway.fake_serialem_loader import Vendor
from scope_gateway.serialem_commands import COMMANDS, SEMCommand

_GATEWAY = Path(__file__).resolve().parents[1]
_LOADER_ROWS = {"ReportSlotStatus", "ReportLoadedSlot", "LoadCartridge", "UnloadCartridge",
                "LongOperation"}
_WRONG: dict[str, Any] = {"s": 7, "d": "x", "i": 1.5}


def _twin() -> TwinMicroscope:
    return TwinMicroscope(seed=2, timing=TimingModel.instant(), optics=TwinOptics.tiny())


@functools.cache
def _rendered(what: str, frames: int = 1) -> Any:
    """One twin atlas (2×1) or image per kind, rendered once for every test here: rendering
    is the slow part, and these tests are about the module's interface, not the pixels."""
    twin = _twin()

    async def render() -> Any:
        await twin.load_grid(1)
        if what == "atlas":
            return await twin.atlas(2, 1)
        return await twin.acquire(what, frames=frames)  # type: ignore[arg-type]

    with ThreadPoolExecutor(max_workers=1) as pool:  # called inside the fake's event loop
        return pool.submit(asyncio.run, render()).result()


def _fake(tmp_path: Path, vendor: Vendor = "thermo", **kwargs: Any) -> FakeSerialEM:
    twin = _twin()

    async def atlas_once(tiles_x: int, tiles_y: int) -> TwinAtlas:
        assert (tiles_x, tiles_y) == (2, 1)
        rendered: TwinAtlas = _rendered("atlas")
        return rendered

    async def image_once(preset: str, *, frames: int = 1, **_: Any) -> TwinImage:
        rendered: TwinImage = _rendered(preset, frames)
        return rendered

    twin.atlas = atlas_once  # type: ignore[method-assign]
    twin.acquire = image_once  # type: ignore[method-assign]
    return FakeSerialEM(twin, vendor=vendor, directory=tmp_path / "serialem", **kwargs)


def _ready(tmp_path: Path, vendor: Vendor) -> FakeSerialEM:
    """A fake in the state a screening session reaches: every row's probe can run."""
    sem = _fake(tmp_path, vendor)
    if vendor == "jeol":
        sem.LongOperation("In")
    sem.LoadCartridge(1)
    sem.OpenNavigator()
    sem.OpenNewMontage(2, 1, "atlas.mrc")
    sem.Montage()
    sem.SetDoseFracParams("R", 1, 1, 0)
    sem.SetFrameTime("R", 0.5)
    sem.SetExposure("R", 1.0)
    sem.Record()
    sem.View()
    sem.View()
    return sem


def _shape(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, memoryview):
        return "image" if np.asarray(value).ndim == 2 else "?"
    values = value if isinstance(value, tuple) else (value,)
    return "".join("s" if isinstance(v, str) else "f" if type(v) is float else "?"
                   for v in values)


@pytest.fixture(params=["thermo", "jeol"])
def vendor(request: pytest.FixtureRequest) -> Vendor:
    chosen: Vendor = request.param
    return chosen


@pytest.mark.parametrize("row", list(COMMANDS.values()), ids=list(COMMANDS))
def test_each_command_takes_and_reports_what_serialem_says(row: SEMCommand, tmp_path: Path) -> None:
    for vendor in (("thermo", "jeol") if row.name in _LOADER_ROWS else ("thermo",)):
        sem = _ready(tmp_path / vendor, vendor)
        try:
            function = getattr(sem, row.name)
            assert _shape(function(*row.probe)) in row.reports, (row.name, vendor)
            for i, arg in enumerate(row.probe):
                wrong = (*row.probe[:i], _WRONG[row.keys[i].lower()], *row.probe[i + 1:])
                with pytest.raises(TypeError):
                    function(*wrong)
                assert arg is not None
            with pytest.raises(TypeError):
                function(*row.probe, *([1] * (len(row.keys) + 1 - len(row.probe))))
            if row.required:
                with pytest.raises(TypeError, match=r"at least|exactly"):
                    function(*row.probe[: row.required - 1])
            with pytest.raises(TypeError):
                function(*row.probe, keyword=1)
        finally:
            sem.close()


def test_every_row_cites_its_sources_and_the_fake_offers_no_command_beyond_the_table() -> None:
    for row in COMMANDS.values():
        assert re.search(r"(MML|SEMM):\d+", row.source), row.name
        assert set(row.keys) <= set("DISdis"), row.name
        assert all(set(shape) <= set("fs") or shape == "image" for shape in row.reports)
        assert len(row.probe) >= row.required
    offered = {n for n in dir(FakeSerialEM) if n[:1].isupper() or n == "bufferImage"}
    assert offered - {"SEMerror", "SEMexited", "SEMmoduleError"} == set(COMMANDS)


def test_the_driver_sends_only_commands_of_the_table() -> None:
    used: set[str] = set()
    for module in ("serialem_driver.py", "serialem_loader.py", "serialem_session.py",
                   "serialem_reading.py"):
        text = (_GATEWAY / "src" / "scope_gateway" / module).read_text()
        used |= set(re.findall(r"\bsem\.([A-Za-z0-9]+)\(", text))
        if "getattr(sem, _SHOT[" in text:  # the acquisition commands, by name
            used |= {"Search", "View", "Record"}
    assert used and used <= set(COMMANDS), used - set(COMMANDS)


def test_the_readme_lists_every_command_with_its_source() -> None:
    readme = (_GATEWAY / "README.md").read_text()
    for row in COMMANDS.values():
        assert re.search(rf"\| `{row.name}` \|[^\n]*{re.escape(row.source)}", readme), row.name


def test_arguments_are_checked_as_pyarg_parsetuple_does(tmp_path: Path) -> None:
    sem = _fake(tmp_path)
    try:
        with pytest.raises(TypeError, match="cannot be interpreted as an integer"):
            sem.LoadCartridge(1.0)
        with pytest.raises(TypeError, match="must be str, not int"):
            sem.GoToLowDoseArea(1)
        with pytest.raises(TypeError, match="must be real number, not str"):
            sem.MoveStageTo("10", 0.0)
        with pytest.raises(TypeError, match="takes at least 2 arguments"):
            sem.MoveStageTo(1.0)
        with pytest.raises(TypeError, match=r"exactly 0 arguments"):
            sem.Montage(1)  # no prescan from Python: Montage is a no-argument command
        sem.MoveStageTo(10, 20)  # an int where a float is wanted is fine
        assert sem.ReportStageXYZ() == (10.0, 20.0, 0.0)
        assert sem.ReportTiltAngle() == 0.0 and type(sem.ReportTiltAngle()) is float
    finally:
        sem.close()


def test_reports_are_none_one_bare_value_or_a_tuple() -> None:
    assert report(None) is None and report(()) is None
    assert report(3) == 3.0 and type(report(3)) is float
    assert report("path") == "path"
    assert report((1, "a")) == (1.0, "a")
    assert report(2, always_tuple=True) == (2.0,)


def test_a_failed_buffer_image_is_a_system_error_caused_by_the_module_error(tmp_path: Path) -> None:
    sem = _fake(tmp_path)
    try:
        with pytest.raises(SystemError) as raised:
            sem.bufferImage("A")
        assert isinstance(raised.value.__cause__, SEMmoduleError)
        assert "no image in SerialEM buffer A" in str(raised.value.__cause__)
        with pytest.raises(SystemError) as invalid:
            sem.bufferImage("AB")
        assert "not a valid buffer specification" in str(invalid.value.__cause__)
        sem.LoadCartridge(1)
        sem.View()
        sem.press_stop()
        with pytest.raises(SystemError) as stopped:
            sem.bufferImage("A")
        assert isinstance(stopped.value.__cause__, SEMexited)
        image = np.asarray(sem.bufferImage("A"))
        assert image.shape == (64, 64) and not image.flags.writeable
    finally:
        sem.close()


def test_a_new_script_after_stop_or_exit_resets_the_script_settings(tmp_path: Path) -> None:
    sem = _fake(tmp_path)
    try:
        sem.NoMessageBoxOnError(1)
        sem.AllowFileOverwrite(1)
        sem.SetExposure("R", 4.0)
        assert sem.scripts_started == 1 and sem.no_message_box and sem.allow_overwrite
        sem.press_stop()
        with pytest.raises(SEMexited, match="User STOP"):
            sem.ReportStageXYZ()
        sem.ReportStageXYZ()
        assert sem.scripts_started == 2 and not sem.no_message_box and not sem.allow_overwrite
        sem.Exit(1)  # quiet
        with pytest.raises(SEMexited, match="Normal exit"):
            sem.Exit()  # per MacroCommands.cpp:702-707, Exit() without 1 raises
        assert sem.scripts_started == 3
        with pytest.raises(SEMerror):
            sem.ReadFile(0)
        assert sem.message_boxes == 1  # no NoMessageBoxOnError in this script
    finally:
        sem.close()


def test_a_stop_interrupts_the_running_call_and_overlapping_calls_are_refused(
        tmp_path: Path) -> None:
    twin = TwinMicroscope(timing=TimingModel(speedup=1.0), optics=TwinOptics.tiny())
    sem = FakeSerialEM(twin, directory=tmp_path)
    outcome: list[BaseException] = []

    def delay() -> None:
        try:
            sem.Delay(600.0)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=delay)
    worker.start()
    try:
        deadline = time.monotonic() + 10.0
        while twin.state().busy_with != "idle" and time.monotonic() < deadline:
            time.sleep(0.005)  # polls a condition; the call runs for 600 s unless stopped
        with pytest.raises(SEMmoduleError, match="one operation at a time"):
            sem.ReportStageXYZ()
    finally:
        sem.press_stop()
        worker.join()
        sem.close()
    assert isinstance(outcome[0], SEMexited) and str(outcome[0]) == "User STOP"


def test_connect_to_sem_sets_the_address_on_the_first_use_only(tmp_path: Path) -> None:
    sem = _fake(tmp_path)
    try:
        sem.ReportClock()  # the first call opens the default socket
        sem.ConnectToSEM(48890, "10.1.2.3")
        assert sem.connected_to == ("127.0.0.1", 48888)
        with pytest.raises(SEMmoduleError, match="port number must be positive"):
            sem.ConnectToSEM(-1)
    finally:
        sem.close()
    inside = _fake(tmp_path, embedded=True)
    try:
        inside.ConnectToSEM(48888, "10.1.2.3")
        assert inside.connected_to == ("127.0.0.1", 48889)
    finally:
        inside.close()


def test_a_lost_socket_reconnects_on_the_next_call_and_starts_a_new_script(
        tmp_path: Path) -> None:
    sem = _fake(tmp_path)
    try:
        sem.ConnectToSEM(48890, "10.1.2.3")
        sem.NoMessageBoxOnError(1)
        sem.drop_connection(refuse_reconnects=1)
        with pytest.raises(SEMmoduleError, match=re.escape(
                "Error connecting to Server socket at IP 10.1.2.3 on port 48890")):
            sem.ReportStageXYZ()
        assert sem.ReportStageXYZ() == (0.0, 0.0, 0.0)
        assert sem.scripts_started == 2 and not sem.no_message_box
        sem.set_busy(True)
        sem.drop_connection()
        with pytest.raises(SEMmoduleError, match="busy and not ready"):
            sem.ReportStageXYZ()
    finally:
        sem.close()


@pytest.fixture
def thermo(tmp_path: Path) -> Iterator[FakeSerialEM]:
    sem = _fake(tmp_path)
    yield sem
    sem.close()


def test_image_to_stage_needs_the_navigator_and_starts_at_the_image_corner(
        thermo: FakeSerialEM) -> None:
    thermo.LoadCartridge(1)
    thermo.View()
    with pytest.raises(SEMerror, match="Navigator must be open"):
        thermo.BufImageToStageMatrix("A", 1)
    thermo.OpenNavigator()
    a11, a12, a21, a22, dx, dy = thermo.BufImageToStageMatrix("A", 1)
    h, w = np.asarray(thermo.bufferImage("A")).shape
    centre = (a11 * w / 2 + a12 * h / 2 + dx, a21 * w / 2 + a22 * h / 2 + dy)
    stage = thermo.ReportStageXYZ()
    assert centre == pytest.approx(stage[:2])  # (w/2, h/2) is the image centre
    with pytest.raises(SEMerror, match="must not be open"):
        thermo.OpenNavigator("grid.nav")


def test_thermo_slot_status_is_zero_for_the_slot_on_the_stage(thermo: FakeSerialEM) -> None:
    assert thermo.ReportSlotStatus(2)[0] == 1.0 and thermo.ReportLoadedSlot() == (0.0, 0.0)
    thermo.LoadCartridge(2)
    assert thermo.ReportSlotStatus(2)[0] == 0.0 and thermo.ReportLoadedSlot() == (2.0, 0.0)
    assert thermo.ReportSlotStatus(9) == (0.0, "")  # an empty slot
    with pytest.raises(SEMerror):
        thermo.ReportSlotStatus(13)


def test_jeol_needs_an_inventory_and_reports_six_values(tmp_path: Path) -> None:
    sem = _fake(tmp_path, "jeol")
    try:
        with pytest.raises(SEMerror, match="inventory"):
            sem.ReportSlotStatus(1)
        sem.LongOperation("In")
        entry = sem.ReportSlotStatus(2)
        assert len(entry) == 6 and entry[1:3] == (1.0, 2.0) and isinstance(entry[5], str)
        assert sem.ReportSlotStatus(99) == -1.0
        sem.LoadCartridge(2)
        assert sem.ReportSlotStatus(2)[1] == 3.0 and sem.ReportLoadedSlot() == (1.0, 102.0)
        with pytest.raises(SEMerror, match="already in the stage"):
            sem.LoadCartridge(2)
    finally:
        sem.close()
