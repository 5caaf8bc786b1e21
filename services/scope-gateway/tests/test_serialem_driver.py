"""The SerialEM driver against fake_serialem: the whole command set, SerialEM's errors, the
operator's STOP, and one thread for every SerialEM call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from gridpilot.errors import OperatorTookOver, ScopeError, TransientError
from gridpilot.storage import ObjectStore, keys
from gridpilot_sim.instrument.imperfections import ImperfectionProfile
from gridpilot_sim.instrument.microscope import TwinMicroscope
from gridpilot_sim.instrument.presets import TwinOptics
from gridpilot_sim.instrument.timing import TimingModel
from scope_gateway.app import create_app
from scope_gateway.config import GatewaySettings
from scope_gateway.fake_serialem import FakeSerialEM, SEMerror, SEMexited, SEMmoduleError
from scope_gateway.serialem_driver import SerialEMDriver, translate_serialem_errors


class ThreadRecordingFake(FakeSerialEM):
    """The fake, noting which thread made each call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads: set[str] = set()

    def _call(self, name: str, spec: str, args: tuple[Any, ...], body: Callable[[], Any]) -> Any:
        self.threads.add(threading.current_thread().name)
        return super()._call(name, spec, args, body)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[ThreadRecordingFake]:
    twin = TwinMicroscope(seed=5, timing=TimingModel.instant(), optics=TwinOptics.tiny())
    sem = ThreadRecordingFake(twin, directory=tmp_path / "serialem")
    try:
        yield sem
    finally:
        sem.close()


@pytest.fixture
async def client(make_settings: Callable[..., GatewaySettings], fake: FakeSerialEM,
                 tmp_path: Path, helpers: Any) -> AsyncIterator[httpx.AsyncClient]:
    frames = tmp_path / "frames"
    settings = make_settings(driver="serialem", serialem_frames_folder=str(frames),
                             serialem_frames_local=frames, serialem_save_copies=True,
                             serialem_directory=str(tmp_path / "serialem"))
    async with helpers.serving(create_app(settings, serialem_module=fake)) as http:
        assert (await http.post("/v1/lease", json={"session_id": "s1"})).status_code == 200
        yield http


async def _ok(http: httpx.AsyncClient, helpers: Any, verb: str, **params: Any) -> dict[str, Any]:
    reply = await helpers.command(http, verb, **params)
    assert reply.status_code == 200, reply.json()
    result: dict[str, Any] = reply.json()["result"]
    return result


def test_the_fake_checks_argument_types_like_the_compiled_module(fake: FakeSerialEM) -> None:
    with pytest.raises(TypeError, match="must be an integer, not float"):
        fake.LoadCartridge(1.0)
    with pytest.raises(TypeError, match="must be str, not int"):
        fake.GoToLowDoseArea(1)
    with pytest.raises(TypeError, match="must be a real number, not str"):
        fake.MoveStageTo("10", 0.0)
    with pytest.raises(TypeError, match="takes 2 to 3 arguments"):
        fake.MoveStageTo(1.0)
    with pytest.raises(TypeError):
        fake.TiltTo(angle=3.0)  # type: ignore[call-arg]  # the module takes no keywords
    fake.MoveStageTo(10, 20)  # an int where a float is wanted is fine
    assert fake.ReportStageXYZ() == (10.0, 20.0, 0.0)
    assert all(isinstance(v, float) for v in fake.ReportStageXYZ())


def test_the_fake_is_busy_while_another_call_runs(tmp_path: Path) -> None:
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
        with pytest.raises(SEMmoduleError, match="busy"):
            sem.ReportStageXYZ()
    finally:
        sem.press_stop()
        worker.join()
        sem.close()
    assert isinstance(outcome[0], SEMexited)


def test_serialem_errors_are_translated_in_one_place(fake: FakeSerialEM) -> None:
    cases: list[tuple[BaseException, type[BaseException], str]] = [
        (SEMerror("Camera timed out"), ScopeError, "Camera timed out"),
        (SEMexited("User STOP"), OperatorTookOver, "operator took over"),
        (SEMmoduleError("SerialEM is now busy"), TransientError, "busy"),
        (SEMmoduleError("Unexpected reply"), ScopeError, "Python module"),
    ]
    for raised, expected, text in cases:
        with pytest.raises(expected, match=text), translate_serialem_errors(fake, "a test"):
            raise raised
    assert not issubclass(OperatorTookOver, TransientError)


async def test_the_serialem_driver_runs_the_whole_command_set(
        client: httpx.AsyncClient, fake: ThreadRecordingFake, store: ObjectStore,
        helpers: Any) -> None:
    assert (await _ok(client, helpers, "load_grid", slot=2, grid_id="g2"))["slot"] == 2
    assert fake.calls.count("LoadCartridge") == 1
    assert fake.calls.index("SetColumnOrGunValve") < fake.calls.index("LoadCartridge")
    atlas = await _ok(client, helpers, "atlas", tiles_x=2, tiles_y=1)
    assert len(atlas["tile_keys"]) == 2 and atlas["atlas"]["kind"] == "atlas"
    moved = await _ok(client, helpers, "move_stage", x_um=-40.0, y_um=25.0)
    assert (moved["stage"]["x_um"], moved["stage"]["y_um"]) == (-40.0, 25.0)
    assert (await _ok(client, helpers, "tilt", angle_deg=10.0))["stage"]["tilt_deg"] == 10.0
    await _ok(client, helpers, "tilt", angle_deg=0.0)
    euc = await _ok(client, helpers, "eucentric_height", mode="rough")
    assert euc["z_um"] == pytest.approx(fake.twin.z_eucentric_um(-40.0, 25.0))
    focus = await _ok(client, helpers, "autofocus", target_defocus_um=-1.2)
    assert focus["target_defocus_um"] == -1.2 and fake.twin.defocus_um() == pytest.approx(-1.2)
    assert (await _ok(client, helpers, "drift_wait", threshold_a_per_s=2.0))["settled"] is True
    shift = await _ok(client, helpers, "image_shift", dx_um=1.5, dy_um=-0.5)
    assert shift["image_shift_um"] == [1.5, -0.5]
    absolute = await _ok(client, helpers, "image_shift", dx_um=0.0, dy_um=0.0, absolute=True)
    assert absolute["image_shift_um"] == [0.0, 0.0]
    for preset in ("search", "view"):
        image = (await _ok(client, helpers, "acquire", preset=preset))["image"]
        array, meta = await store.get_array(image["key"])
        assert array.shape == (64, 64) and "truth_key" not in image
        assert not await store.exists(keys.truth_key(image["key"]))  # a real scope has no truth
        assert meta.pixel_size_a == pytest.approx(fake.twin.optics.preset(preset).pixel_size_a)
    movie = (await _ok(client, helpers, "acquire", preset="record", frames=4,
                       exposure_time_s=2.0))["image"]
    frames, meta = await store.get_array(movie["key"])
    assert frames.shape == (4, 64, 64) and movie["frame_count"] == 4
    assert meta.pixel_size_a == pytest.approx(1.0) and movie["magnification"] == 105000
    col, row = 3.0, 7.0
    (a, b, c), (d, e, f) = movie["image_to_stage"]
    assert (a * col + b * row + c, d * col + e * row + f) == pytest.approx((
        -40.0 - 31.5e-4 + 3e-4, 25.0 + 31.5e-4 - 7e-4))
    copies = sorted(p.name for p in (fake.directory or Path("/nonexistent")).glob("*.mrc"))
    assert copies == ["gridpilot_record_00004.mrc", "gridpilot_search_00002.mrc",
                      "gridpilot_view_00003.mrc"]
    state = (await client.get("/v1/state")).json()
    assert state["driver"] == "serialem" and state["slot"] == 2
    assert len(fake.threads) == 1 and next(iter(fake.threads)).startswith("serialem")


async def test_a_serialem_error_mid_acquisition_fails_the_step_and_the_gateway_stays_healthy(
        client: httpx.AsyncClient, fake: FakeSerialEM, helpers: Any) -> None:
    await _ok(client, helpers, "load_grid", slot=1, grid_id="g1")
    fake.inject_error("Record", "Camera: timeout waiting for frames")
    failed = await helpers.command(client, "acquire", preset="record", frames=2)
    assert failed.status_code == 502 and failed.json()["error"] == "scope_error"
    assert "Camera: timeout waiting for frames" in failed.json()["message"]
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/v1/state")).json()["paused_by_operator"] is False
    image = (await _ok(client, helpers, "acquire", preset="record", frames=2))["image"]
    assert image["frame_count"] == 2


async def test_the_operator_pressing_stop_pauses_the_gateway_and_nothing_is_retried(
        client: httpx.AsyncClient, fake: FakeSerialEM, helpers: Any) -> None:
    await _ok(client, helpers, "load_grid", slot=1, grid_id="g1")
    fake.inject_error("MoveStageTo", "User STOP", kind="exited")
    stopped = await helpers.command(client, "move_stage", command_id="m1", x_um=5.0, y_um=5.0)
    assert stopped.status_code == 409 and stopped.json()["error"] == "operator_took_over"
    assert fake.calls.count("MoveStageTo") == 1
    assert (await client.get("/v1/state")).json()["paused_by_operator"] is True
    again = await helpers.command(client, "move_stage", command_id="m1", x_um=5.0, y_um=5.0)
    assert again.status_code == 409 and again.json()["repeated"] is True
    refused = await helpers.command(client, "acquire", preset="search")
    assert refused.status_code == 409 and "resume" in refused.json()["message"]
    assert fake.calls.count("MoveStageTo") == 1 and "Search" not in fake.calls
    await _ok(client, helpers, "resume")
    assert (await _ok(client, helpers, "move_stage", x_um=5.0, y_um=5.0))["stage"]["x_um"] == 5.0
    fake.press_stop()
    after_stop = await helpers.command(client, "move_stage", x_um=9.0, y_um=9.0)
    assert after_stop.status_code == 409 and after_stop.json()["error"] == "operator_took_over"
    assert fake.calls.count("MoveStageTo") == 2
    assert (await client.get("/v1/state")).json()["paused_by_operator"] is True


async def test_commands_arriving_together_never_overlap_inside_serialem(
        client: httpx.AsyncClient, fake: ThreadRecordingFake, helpers: Any) -> None:
    await _ok(client, helpers, "load_grid", slot=1, grid_id="g1")
    replies = await asyncio.gather(
        *(helpers.command(client, "move_stage", x_um=float(10 * i), y_um=0.0) for i in range(4)),
        *(client.get("/v1/state") for _ in range(4)),
        helpers.command(client, "acquire", preset="view"),
    )
    assert all(r.status_code == 200 for r in replies)
    assert len(fake.threads) == 1
    assert np.isfinite(fake.twin.clock_s)


async def test_a_failed_autofocus_is_a_scope_error_with_serialem_status(tmp_path: Path) -> None:
    twin = TwinMicroscope(timing=TimingModel.instant(), optics=TwinOptics.tiny(),
                          imperfections=ImperfectionProfile(autofocus_failure_probability=1.0))
    sem = FakeSerialEM(twin, directory=tmp_path)
    driver = SerialEMDriver(module=sem)
    try:
        await driver.connect()
        await driver.load_grid(1)
        with pytest.raises(ScopeError, match="ReportAutoFocus status 1"):
            await driver.autofocus(-1.5)
        assert (await driver.state()).target_defocus_um == -1.5
    finally:
        await driver.close()
        sem.close()
    assert sem.calls[-2:] == ["SetColumnOrGunValve", "Exit"]
