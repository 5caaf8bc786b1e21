"""Connecting to SerialEM both ways, the operator's STOP and lost sockets by fault injection,
the two autoloaders behind one verb, and the driver's calls beyond today's verbs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gridpilot.errors import OperatorTookOver, ScopeError, TransientError
from gridpilot_sim import GridSpec
from gridpilot_sim.instrument.cassette import CassetteSlot
from gridpilot_sim.instrument.microscope import TwinMicroscope
from gridpilot_sim.instrument.presets import TwinOptics
from gridpilot_sim.instrument.timing import TimingModel
from scope_gateway.config import GatewaySettings
from scope_gateway.fake_serialem import FakeSerialEM, SEMerror, SEMexited, SEMmoduleError
from scope_gateway.fake_serialem_loader import Vendor
from scope_gateway.serialem_driver import SerialEMDriver, SerialEMOptions
from scope_gateway.serialem_session import translate_serialem_errors

_SETTINGS = ["NoMessageBoxOnError", "AllowFileOverwrite", "SetDirectory", "SetFolderForFrames",
             "OpenNavigator"]
#: Slots 2, 5 and 7 only: a JEOL inventory index is then never the slot number.
_CASSETTE = {slot: CassetteSlot(GridSpec(), 10 + slot, f"grid-{slot}") for slot in (2, 5, 7)}


def _fake(tmp_path: Path, **kwargs: Any) -> FakeSerialEM:
    twin = TwinMicroscope(seed=4, timing=TimingModel.instant(), optics=TwinOptics.tiny(),
                          cassette=_CASSETTE)
    return FakeSerialEM(twin, directory=tmp_path / "serialem", **kwargs)


def _settings(make_settings: Callable[..., GatewaySettings], tmp_path: Path,
              **overrides: Any) -> GatewaySettings:
    return make_settings(**{"driver": "serialem", "serialem_directory": "D:/gridpilot",
                            "serialem_frames_folder": str(tmp_path / "frames"),
                            "serialem_frames_local": tmp_path / "frames", **overrides})


async def test_an_external_gateway_connects_to_the_configured_socket_first(
        make_settings: Callable[..., GatewaySettings], tmp_path: Path, helpers: Any) -> None:
    sem = _fake(tmp_path)
    try:
        settings = _settings(make_settings, tmp_path, serialem_host="10.0.0.7",
                             serialem_port=48890)
        async with helpers.serving_serialem(settings, sem) as http:
            await helpers.ok(http, "load_grid", slot=5, grid_id="g5")
    finally:
        sem.close()
    assert sem.calls[:1 + len(_SETTINGS)] == ["ConnectToSEM", *_SETTINGS]
    assert sem.connected_to == ("10.0.0.7", 48890) and sem.scripts_started == 1


async def test_an_embedded_gateway_uses_serialem_s_own_connection(
        make_settings: Callable[..., GatewaySettings], tmp_path: Path, helpers: Any) -> None:
    sem = _fake(tmp_path, embedded=True)
    try:
        async with helpers.serving_serialem(
                _settings(make_settings, tmp_path, serialem_mode="embedded"), sem) as http:
            await helpers.ok(http, "load_grid", slot=5, grid_id="g5")
            assert (await helpers.ok(http, "move_stage", x_um=5.0, y_um=1.0))["stage"]["x_um"] == 5.0
    finally:
        sem.close()
    assert "ConnectToSEM" not in sem.calls and sem.connected_to == ("127.0.0.1", 48889)


async def test_after_a_stop_nothing_is_sent_until_resume_and_the_settings_are_sent_again(
        make_settings: Callable[..., GatewaySettings], tmp_path: Path, helpers: Any) -> None:
    sem = _fake(tmp_path)
    try:
        async with helpers.serving_serialem(_settings(make_settings, tmp_path), sem) as http:
            await helpers.ok(http, "load_grid", slot=5, grid_id="g5")
            sem.inject_error("MoveStageTo", "User STOP", kind="exited")
            stopped = await helpers.command(http, "move_stage", command_id="m1", x_um=5.0, y_um=5.0)
            assert stopped.status_code == 409 and stopped.json()["error"] == "operator_took_over"
            sent = len(sem.calls)
            assert (await http.get("/v1/state")).json()["paused_by_operator"] is True
            again = await helpers.command(http, "move_stage", command_id="m1", x_um=5.0, y_um=5.0)
            assert again.status_code == 409 and again.json()["repeated"] is True
            refused = await helpers.command(http, "acquire", preset="search")
            assert refused.status_code == 409 and "resume" in refused.json()["message"]
            await helpers.ok(http, "resume")
            assert len(sem.calls) == sent  # the operator keeps control: not even state reads
            moved = await helpers.ok(http, "move_stage", x_um=5.0, y_um=5.0)
            assert moved["stage"]["x_um"] == 5.0
            assert sem.calls[sent:sent + len(_SETTINGS) + 2] == [*_SETTINGS, "AreDewarsFilling",
                                                          "MoveStageTo"]
            assert sem.no_message_box and sem.allow_overwrite and sem.scripts_started == 2
            sem.press_stop()  # between commands: the next call sees it
            after = await helpers.command(http, "move_stage", x_um=9.0, y_um=9.0)
            assert after.status_code == 409 and sem.calls.count("MoveStageTo") == 2
    finally:
        sem.close()


async def test_a_lost_socket_is_transient_and_the_retry_reconnects_with_the_settings(
        make_settings: Callable[..., GatewaySettings], tmp_path: Path, helpers: Any) -> None:
    sem = _fake(tmp_path)
    try:
        settings = _settings(make_settings, tmp_path, serialem_host="10.0.0.7",
                             serialem_port=48890)
        async with helpers.serving_serialem(settings, sem) as http:
            await helpers.ok(http, "load_grid", slot=5, grid_id="g5")
            sem.drop_connection(refuse_reconnects=1)
            lost = await helpers.command(http, "move_stage", command_id="m2", x_um=3.0, y_um=0.0)
            assert lost.status_code == 503 and "10.0.0.7 on port 48890" in lost.json()["message"]
            retry = await helpers.ok(http, "move_stage", x_um=3.0, y_um=0.0)
            assert retry["stage"]["x_um"] == 3.0
            sem.inject_error("Search", "PySEMSocket: recv error 10054", kind="socket")
            assert (await helpers.command(http, "acquire", preset="search")).status_code == 503
            await helpers.ok(http, "acquire", preset="search")
    finally:
        sem.close()
    assert sem.connected_to == ("10.0.0.7", 48890) and sem.calls.count("ConnectToSEM") == 1
    assert sem.scripts_started == 3 and sem.no_message_box and sem.message_boxes == 0


@pytest.mark.parametrize("vendor", ["thermo", "jeol"])
async def test_load_grid_is_one_verb_on_both_autoloaders(
        vendor: Vendor, make_settings: Callable[..., GatewaySettings], tmp_path: Path,
        helpers: Any) -> None:
    sem = _fake(tmp_path, vendor=vendor)
    try:
        async with helpers.serving_serialem(
                _settings(make_settings, tmp_path, serialem_autoloader=vendor), sem) as http:
            assert (await helpers.ok(http, "load_grid", slot=5, grid_id="g5"))["slot"] == 5
            assert sem.twin.state().slot == 5 and sem.valves_open
            await helpers.ok(http, "load_grid", slot=5, grid_id="g5")  # already there
            await helpers.ok(http, "load_grid", slot=7, grid_id="g7")
            empty = await helpers.command(http, "load_grid", slot=9, grid_id="g9")
            assert empty.status_code == 409 and "slot 9 is empty" in empty.json()["message"]
    finally:
        sem.close()
    # Thermo loads slot numbers; JEOL inventory indices (slots 2, 5, 7 are 1, 2, 3: the
    # model refuses LoadCartridge(5) or (7) on JEOL as out of range)
    assert sem.calls.count("LoadCartridge") == 2
    assert ("LongOperation" in sem.calls) == (vendor == "jeol")
    assert sem.twin.state().slot == 7


@pytest.mark.parametrize("vendor", ["thermo", "jeol"])
async def test_the_driver_unloads_on_both_autoloaders(vendor: Vendor, tmp_path: Path) -> None:
    sem = _fake(tmp_path, vendor=vendor)
    driver = SerialEMDriver(SerialEMOptions(autoloader=vendor), module=sem)
    try:
        await driver.connect()
        await driver.load_grid(2)
        assert await driver.loaded_slot() == 2
        assert await driver.unload_grid() == 2
        assert await driver.loaded_slot() is None and await driver.unload_grid() is None
    finally:
        await driver.close()
        sem.close()


async def test_the_driver_s_calls_beyond_the_verbs(tmp_path: Path) -> None:
    sem = _fake(tmp_path)
    driver = SerialEMDriver(module=sem)
    try:
        await driver.connect()
        await driver.load_grid(5)
        await driver.move_stage(20.0, -10.0, None)
        await driver.image_shift(1.0, 0.5, absolute=False)
        stage = await driver.reset_image_shift()
        assert (stage.x_um, stage.y_um) == pytest.approx((21.0, -9.5))
        assert sem.twin.state().image_shift_um == (0.0, 0.0)
        await driver.acquire("view", 1, None, None)
        await driver.image_shift(1.0, 0.0, absolute=False)
        await driver.acquire("view", 1, None, None)  # the same area, 1 µm (4 px) off
        shift = await driver.center_on("B")
        assert shift == pytest.approx((-1.0, 0.0), abs=0.3)  # AlignTo: to the nearest pixel
        assert sem.twin.state().image_shift_um == pytest.approx((0.0, 0.0), abs=0.3)
        before = sem.twin.state().focus_um
        assert await driver.change_focus(-0.4) == pytest.approx(before - 0.4)
        await driver.go_to_imaging_state("Hole")
        with pytest.raises(ScopeError, match="GoToImagingState code 1"):
            await driver.go_to_imaging_state("Cryo-ET")
        await driver.set_optics(magnification=2250, spot_size=7, percent_c2=42.0)
        assert (sem.area, sem.spot_size, sem.percent_c2) == ("search", 7, 42.0)
        with pytest.raises(ScopeError, match="not near enough"):
            await driver.set_optics(magnification=777)
        assert await driver.multiple_records(4, 1.5, centre=True) == 5
        assert sem.twin.state().image_shift_um == pytest.approx((0.0, 0.0), abs=0.05)
    finally:
        await driver.close()
        sem.close()


def test_serialem_errors_are_translated_in_one_place(tmp_path: Path) -> None:
    sem = _fake(tmp_path)
    cases: list[tuple[BaseException, type[BaseException], str]] = [
        (SEMerror("Camera timed out"), ScopeError, "Camera timed out"),
        (SEMexited("User STOP"), OperatorTookOver, "operator took over"),
        (SEMmoduleError("SerialEM is busy and not ready to run a script"), TransientError, "busy"),
        (SEMmoduleError("Unexpected reply"), ScopeError, "Python module"),
        (TypeError("'float' object cannot be interpreted as an integer"), ScopeError, "gateway bug"),
    ]
    for cause in (SEMexited("User STOP"), SEMmoduleError("PySEMSocket: recv error 10054")):
        wrapped = SystemError("<class 'serialem.bufferImage'> returned a result with an "
                              "exception set")
        wrapped.__cause__ = cause
        cases.append((wrapped, OperatorTookOver if isinstance(cause, SEMexited)
                      else TransientError, str(cause)[:10]))
    try:
        for raised, expected, text in cases:
            with pytest.raises(expected, match=text), translate_serialem_errors(sem, "a test"):
                raise raised
        with pytest.raises(SystemError), translate_serialem_errors(sem, "a test"):
            raise SystemError("something else")
    finally:
        sem.close()
    assert not issubclass(OperatorTookOver, TransientError)
