"""The SerialEM driver against the conformance model: the whole command set through the
gateway, each of SerialEM's conventions the driver once got wrong, SerialEM's errors, the
operator's STOP, and one thread for every SerialEM call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from scipy import ndimage

from gridpilot.errors import ScopeError
from gridpilot.storage import ObjectStore
from gridpilot_sim import GridSpec, SquareFractions, apply_affine
from gridpilot_sim.instrument.cassette import CassetteSlot
from gridpilot_sim.instrument.imperfections import ImperfectionProfile
from gridpilot_sim.instrument.microscope import TwinMicroscope
from gridpilot_sim.instrument.presets import TwinOptics
from gridpilot_sim.instrument.render_scope import world_for
from gridpilot_sim.instrument.timing import TimingModel
from scope_gateway.config import GatewaySettings
from scope_gateway.fake_serialem import FakeSerialEM
from scope_gateway.serialem_driver import SerialEMDriver, SerialEMOptions

_ALL_GOOD = SquareFractions(small=0, dry=0, contaminated=0, cracked=0, partial=0, broken=0)


class RecordingFake(FakeSerialEM):
    """The model, noting which thread made each call and with which arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.threads: set[str] = set()
        self.sent: list[tuple[str, tuple[Any, ...]]] = []

    def _call(self, name: str, keys: str, args: tuple[Any, ...],
              body: Callable[[tuple[Any, ...]], Any]) -> Any:
        self.threads.add(threading.current_thread().name)
        self.sent.append((name, args))
        return super()._call(name, keys, args, body)

    def args_of(self, name: str) -> list[tuple[Any, ...]]:
        return [args for sent, args in self.sent if sent == name]


def _twin(**kwargs: Any) -> TwinMicroscope:
    return TwinMicroscope(seed=5, timing=TimingModel.instant(),
                          optics=kwargs.pop("optics", TwinOptics.tiny()), **kwargs)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[RecordingFake]:
    sem = RecordingFake(_twin(), directory=tmp_path / "serialem")
    try:
        yield sem
    finally:
        sem.close()


def _settings(make_settings: Callable[..., GatewaySettings], tmp_path: Path) -> GatewaySettings:
    frames = tmp_path / "frames"
    return make_settings(driver="serialem", serialem_frames_folder=str(frames),
                         serialem_frames_local=frames, serialem_save_copies=True,
                         serialem_directory=str(tmp_path / "serialem"))


@pytest.fixture
async def client(make_settings: Callable[..., GatewaySettings], fake: FakeSerialEM,
                 tmp_path: Path, helpers: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with helpers.serving_serialem(_settings(make_settings, tmp_path), fake) as http:
        yield http


async def test_the_serialem_driver_runs_the_whole_command_set(
        client: httpx.AsyncClient, fake: RecordingFake, store: ObjectStore,
        helpers: Any) -> None:
    assert fake.calls[0] == "ConnectToSEM" and fake.connected_to == ("127.0.0.1", 48888)
    assert (await helpers.ok(client, "load_grid", slot=2, grid_id="g2"))["slot"] == 2
    assert fake.args_of("LoadCartridge") == [(2,)] and fake.valves_open
    assert fake.calls.index("SetColumnOrGunValve") < fake.calls.index("LoadCartridge")
    atlas = await helpers.ok(client, "atlas", tiles_x=2, tiles_y=1)
    assert len(atlas["tile_keys"]) == 2 and atlas["atlas"]["kind"] == "atlas"
    assert fake.args_of("ReadMontagePiece") == [(1, 1, 0, "C"), (2, 1, 0, "C")]
    moved = await helpers.ok(client, "move_stage", x_um=-40.0, y_um=25.0)
    assert (moved["stage"]["x_um"], moved["stage"]["y_um"]) == (-40.0, 25.0)
    assert (await helpers.ok(client, "tilt", angle_deg=10.0))["stage"]["tilt_deg"] == 10.0
    await helpers.ok(client, "tilt", angle_deg=0.0)
    euc = await helpers.ok(client, "eucentric_height", mode="rough")
    assert euc["z_um"] == pytest.approx(fake.twin.z_eucentric_um(-40.0, 25.0))
    focus = await helpers.ok(client, "autofocus", target_defocus_um=-1.2)
    assert focus["target_defocus_um"] == -1.2 and fake.twin.defocus_um() == pytest.approx(-1.2)
    drift = await helpers.ok(client, "drift_wait", threshold_a_per_s=2.0)
    assert drift["settled"] is True and drift["waited_s"] > 0
    shift = await helpers.ok(client, "image_shift", dx_um=1.5, dy_um=-0.5)
    assert shift["image_shift_um"] == pytest.approx([1.5, -0.5])
    absolute = await helpers.ok(client, "image_shift", dx_um=0.0, dy_um=0.0, absolute=True)
    assert absolute["image_shift_um"] == pytest.approx([0.0, 0.0])
    for preset in ("search", "view"):
        image = (await helpers.ok(client, "acquire", preset=preset))["image"]
        array, meta = await store.get_array(image["key"])
        assert array.shape == (64, 64)
        assert meta.pixel_size_a == pytest.approx(fake.twin.optics.preset(preset).pixel_size_a)
    movie = (await helpers.ok(client, "acquire", preset="record", frames=4,
                       exposure_time_s=2.0))["image"]
    frames, meta = await store.get_array(movie["key"])
    assert frames.shape == (4, 64, 64) and movie["frame_count"] == 4
    assert meta.pixel_size_a == pytest.approx(1.0) and movie["magnification"] == 105000
    assert movie["dose_e_per_a2"] == pytest.approx(50.0 * 2.0 / 2.5)  # ImageConditions
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
    assert fake.message_boxes == 0 and fake.scripts_started == 1


async def test_the_atlas_transform_puts_every_square_within_3_um_of_truth(
        make_settings: Callable[..., GatewaySettings], tmp_path: Path, store: ObjectStore,
        helpers: Any) -> None:
    cassette = {1: CassetteSlot(GridSpec(mesh=200, square_fractions=_ALL_GOOD), 3, "good")}
    twin = _twin(optics=TwinOptics.sized(atlas_tile_px=384, search_px=64, view_px=64,
                                         record_px=64), cassette=cassette)
    sem = FakeSerialEM(twin, directory=tmp_path / "serialem")
    try:
        async with helpers.serving_serialem(_settings(make_settings, tmp_path), sem) as http:
            await helpers.ok(http, "load_grid", slot=1, grid_id="g1")
            await helpers.ok(http, "move_stage", x_um=60.0, y_um=-30.0)
            atlas = (await helpers.ok(http, "atlas", tiles_x=2, tiles_y=1))["atlas"]
            image, _ = await store.get_array(atlas["key"])
        raw = sem.BufImageToStageMatrix("B", 1)
    finally:
        sem.close()
    centres = np.array([s.centre_um for s in world_for(cassette[1]).squares()])
    bright = image > 0.5 * (np.percentile(image, 5) + np.percentile(image, 95))
    labels, n = ndimage.label(bright)
    sizes = ndimage.sum(bright, labels, index=np.arange(1, n + 1))
    errors, errors_as_centre = [], []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if 0 in (sl[0].start, sl[1].start) or sl[0].stop == image.shape[0] or \
                sl[1].stop == image.shape[1] or sizes[k - 1] < 0.5 * np.median(sizes):
            continue  # cut by the border, or a speck
        row, col = ndimage.center_of_mass(labels == k)
        x, y = apply_affine(atlas["image_to_stage"], col, row)
        errors.append(float(np.hypot(*(centres - [x, y]).T).min()))
        # what the old driver did: (dx, dy) taken as the image centre
        h, w = image.shape
        old = ((raw[0], raw[1], raw[4] - raw[0] * (w - 1) / 2 - raw[1] * (h - 1) / 2),
               (raw[2], raw[3], raw[5] - raw[2] * (w - 1) / 2 - raw[3] * (h - 1) / 2))
        errors_as_centre.append(float(np.hypot(*(centres - apply_affine(old, col, row)).T).min()))
    assert len(errors) >= 6 and max(errors) < 3.0, errors
    assert min(errors_as_centre) > 3.0  # the half-field error this test exists to catch


async def test_image_shift_is_read_in_microns_on_the_specimen_not_in_is_units(
        client: httpx.AsyncClient, fake: FakeSerialEM, helpers: Any) -> None:
    await helpers.ok(client, "load_grid", slot=1, grid_id="g1")
    shift = (await helpers.ok(client, "image_shift", dx_um=2.0, dy_um=1.0))["image_shift_um"]
    units = fake.ReportImageShift()
    assert shift == pytest.approx([2.0, 1.0]) and fake.twin.state().image_shift_um == (2.0, 1.0)
    assert len(units) == 6 and units[:2] != pytest.approx((2.0, 1.0), abs=0.05)
    state = (await client.get("/v1/state")).json()
    assert state["image_shift_um"] == pytest.approx([2.0, 1.0])


async def test_reset_image_shift_and_change_focus_go_through_serialem(
        client: httpx.AsyncClient, fake: RecordingFake, helpers: Any) -> None:
    await helpers.ok(client, "load_grid", slot=1, grid_id="g1")
    await helpers.ok(client, "move_stage", x_um=30.0, y_um=10.0)
    await helpers.ok(client, "image_shift", dx_um=1.0, dy_um=-0.5)
    stage = (await helpers.ok(client, "reset_image_shift"))["stage"]
    assert (stage["x_um"], stage["y_um"]) == pytest.approx((31.0, 9.5))
    assert fake.twin.state().image_shift_um == (0.0, 0.0) and "ResetImageShift" in fake.calls
    focus = fake.twin.state().focus_um
    await helpers.ok(client, "change_focus", delta_um=-0.8)
    assert fake.args_of("ChangeFocus") == [(-0.8,)]
    assert fake.twin.state().focus_um == pytest.approx(focus - 0.8)


async def test_without_an_image_shift_calibration_the_shift_fails_and_nothing_moves(
        client: httpx.AsyncClient, fake: FakeSerialEM, helpers: Any) -> None:
    await helpers.ok(client, "load_grid", slot=1, grid_id="g1")
    fake.is_calibrated = False
    assert len(fake.ReportImageShift()) == 2 and fake.ReportSpecimenShift() is None
    refused = await helpers.command(client, "image_shift", dx_um=1.0, dy_um=0.0, absolute=True)
    assert refused.status_code == 502 and "calibration" in refused.json()["message"]
    assert "ImageShiftByMicrons" not in fake.calls
    assert (await client.get("/v1/state")).status_code == 200  # state reads still work
    moved = await helpers.ok(client, "move_stage", x_um=4.0, y_um=0.0)
    assert moved["stage"]["x_um"] == 4.0


async def test_an_image_shift_serialem_skips_over_its_limit_fails_clearly(
        client: httpx.AsyncClient, fake: FakeSerialEM, helpers: Any) -> None:
    await helpers.ok(client, "load_grid", slot=1, grid_id="g1")
    refused = await helpers.command(client, "image_shift", dx_um=18.0, dy_um=0.0)
    assert refused.status_code == 502 and "image-shift limit" in refused.json()["message"]
    assert fake.twin.state().image_shift_um == (0.0, 0.0)
    assert (await client.get("/readyz")).status_code == 200


async def test_drift_wait_reads_get_wait_task_drift_and_asks_for_no_error_on_timeout(
        tmp_path: Path) -> None:
    twin = _twin(imperfections=ImperfectionProfile(drift_after_move_a_per_s=30.0,
                                                   drift_settle_time_s=1e6))
    sem = RecordingFake(twin, directory=tmp_path)
    driver = SerialEMDriver(module=sem)
    try:
        await driver.connect()
        await driver.load_grid(1)
        outcome = await driver.drift_wait(1.0, 40.0)
    finally:
        await driver.close()
        sem.close()
    (args,) = sem.args_of("DriftWaitTask")
    assert args[:2] == (1.0, "A") and args[4] == -1  # -1: report, do not raise, on timeout
    assert sem.calls.index("GetWaitTaskDrift") > sem.calls.index("DriftWaitTask")
    assert not outcome.settled and outcome.drift_a_per_s > 1.0 and outcome.waited_s >= 40.0


@pytest.mark.parametrize("camera", ["k3", "falcon", "de"])
async def test_a_single_frame_record_turns_frame_saving_off_on_every_camera(
        camera: str, tmp_path: Path) -> None:
    sem = RecordingFake(_twin(), camera=camera, directory=tmp_path)
    driver = SerialEMDriver(SerialEMOptions(camera=camera, frames_folder=str(tmp_path / "f"),  # type: ignore[arg-type]
                                            frames_local=tmp_path / "f"), module=sem)
    try:
        await driver.connect()
        await driver.load_grid(1)
        movie = await driver.acquire("record", 3, None, 1.5)
        single = await driver.acquire("record", 1, None, 1.5)
    finally:
        await driver.close()
        sem.close()
    assert movie.frame_count == 3 and single.frame_count == 1
    assert len(list((tmp_path / "f").glob("*.mrc"))) == 1  # no frames for the single shot
    assert sem.args_of("SetDoseFracParams")[-1] == ("R", 0, 0)


async def test_a_serialem_error_mid_acquisition_fails_the_step_and_the_gateway_stays_healthy(
        client: httpx.AsyncClient, fake: FakeSerialEM, helpers: Any) -> None:
    await helpers.ok(client, "load_grid", slot=1, grid_id="g1")
    fake.inject_error("Record", "Camera: timeout waiting for frames")
    failed = await helpers.command(client, "acquire", preset="record", frames=2)
    assert failed.status_code == 502 and failed.json()["error"] == "scope_error"
    assert "Camera: timeout waiting for frames" in failed.json()["message"]
    assert (await client.get("/readyz")).status_code == 200
    assert (await client.get("/v1/state")).json()["paused_by_operator"] is False
    image = (await helpers.ok(client, "acquire", preset="record", frames=2))["image"]
    assert image["frame_count"] == 2 and fake.message_boxes == 0


async def test_commands_arriving_together_never_overlap_inside_serialem(
        client: httpx.AsyncClient, fake: RecordingFake, helpers: Any) -> None:
    await helpers.ok(client, "load_grid", slot=1, grid_id="g1")
    replies = await asyncio.gather(
        *(helpers.command(client, "move_stage", x_um=float(10 * i), y_um=0.0) for i in range(4)),
        *(client.get("/v1/state") for _ in range(4)),
        helpers.command(client, "acquire", preset="view"),
    )
    assert all(r.status_code == 200 for r in replies)
    assert len(fake.threads) == 1
    assert np.isfinite(fake.twin.clock_s)


async def test_a_failed_autofocus_is_a_scope_error_with_serialem_status(tmp_path: Path) -> None:
    twin = _twin(imperfections=ImperfectionProfile(autofocus_failure_probability=1.0))
    sem = FakeSerialEM(twin, directory=tmp_path)
    driver = SerialEMDriver(module=sem)
    try:
        await driver.connect()
        await driver.load_grid(1)
        with pytest.raises(ScopeError, match="ReportAutoFocus status -1"):
            await driver.autofocus(-1.5)
        assert (await driver.state()).target_defocus_um == -1.5
    finally:
        await driver.close()
        sem.close()
    assert sem.calls[-2:] == ["SetColumnOrGunValve", "Exit"]


async def test_refine_zlp_runs_serialems_refinement_and_fails_without_a_filter(
        client: httpx.AsyncClient, fake: RecordingFake, helpers: Any) -> None:
    await helpers.ok(client, "load_grid", slot=1, grid_id="g1")
    await helpers.ok(client, "refine_zlp")
    assert fake.args_of("RefineZLP") == [(0,)] and fake.zlp_refined == 1
    fake.energy_filter = False
    failed = await helpers.command(client, "refine_zlp")
    assert failed.status_code == 502 and "energy filter" in failed.json()["message"]
    assert fake.zlp_refined == 1
