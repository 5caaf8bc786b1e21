"""The SerialEM driver: the gateway's :class:`~scope_gateway.driver.Microscope` over SerialEM.

Every command it sends, with what it reports and where that is documented, is a row of
:data:`~scope_gateway.serialem_commands.COMMANDS`; the connection, the single worker thread,
STOP and reconnection are :mod:`scope_gateway.serialem_session`; the autoloaders are
:mod:`scope_gateway.serialem_loader`; reading images and reports is
:mod:`scope_gateway.serialem_reading`. The conventions that matter on a real microscope:

- image shift is read in µm on the specimen with ``ReportSpecimenShift`` (``ReportImageShift``
  reports image-shift units), and ``ImageShiftByMicrons`` reports 1 — having done nothing —
  when the shift is over SerialEM's limit: that is a :class:`~gridpilot.errors.ScopeError`;
- ``BufImageToStageMatrix(buf, 1)`` maps continuous image coordinates with (0, 0) at the
  image's top-left corner: pixel (col, row) is at (col + ½, row + ½) (NavHelper.cpp 3121);
- after ``Montage`` the overview (the atlas) is in buffer B; tiles are read back with
  ``ReadMontagePiece(x, y, 0)`` (x, y from 1, y from the bottom row);
- ``DriftWaitTask`` reports nothing: its result comes from ``GetWaitTaskDrift`` (nm/s and a
  failure code), and the time it took from ``ReportClock``;
- frames are switched on and off with the frame-saving flag of ``SetDoseFracParams``, for
  K2/K3, Falcon and DE alike; ``ReportLastFrameFile`` reports (path, folder, name).

Abort takes effect between SerialEM calls: a single running call (a Record) cannot be
interrupted from outside SerialEM.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Final, Literal

from gridpilot.contracts import StagePosition
from gridpilot.contracts.scope import Preset
from gridpilot.errors import OperatorTookOver, ScopeError, TransientError

from .driver import AtlasCapture, Capture, DriftOutcome, DriverName, InstrumentState
from .serialem_loader import load_cartridge, loaded_slot, unload_cartridge
from .serialem_reading import capture, floats, specimen_shift, values, with_frames
from .serialem_session import SerialEMOptions, SerialEMSession, translate_serialem_errors

__all__ = ["SerialEMDriver", "SerialEMOptions", "translate_serialem_errors"]

logger = logging.getLogger(__name__)

_NM_TO_A: Final[float] = 10.0
_EUCENTRIC_OPTION: Final[dict[str, int]] = {"rough": 1, "refine": 2, "both": 3}
_AREA: Final[dict[str, str]] = {"search": "S", "view": "V", "record": "R"}
_SHOT: Final[dict[str, str]] = {"search": "Search", "view": "View", "record": "Record"}
_DRIFT_INTERVAL_S: Final[float] = 10.0
_DRIFT_NO_ERROR: Final[int] = -1
_DRIFT_TOO_LONG: Final[int] = 1
_STAGE_MONTAGE: Final[int] = 1
#: The frame-saving value of SetDoseFracParams #S per camera (DE: 16 = save summed frames).
_SAVE_FRAMES: Final[dict[str, int]] = {"k3": 1, "falcon": 1, "de": 16}
_TILE_BUFFER: Final[str] = "C"


class SerialEMDriver:
    """Drive SerialEM through its Python module, one call at a time."""

    name: DriverName = "serialem"

    def __init__(self, options: SerialEMOptions | None = None, *, module: Any = None) -> None:
        self.options = options or SerialEMOptions()
        self.session = SerialEMSession(self.options, module)
        self._cancel = threading.Event()
        self._connected = False
        self._shots = 0
        self._state = InstrumentState(slot=None, stage=StagePosition(x_um=0.0, y_um=0.0),
                                      image_shift_um=(0.0, 0.0), defocus_um=0.0,
                                      target_defocus_um=-2.0, preset="atlas")

    async def _run(self, what: str, job: Any) -> Any:
        self._cancel.clear()
        return await self.session.run(what, job)

    def _check_cancel(self, what: str) -> None:
        if self._cancel.is_set():
            raise ScopeError(f"{what} was aborted", aborted=True)

    # ---- lifecycle -----------------------------------------------------------------------------
    async def connect(self) -> None:
        self.session.import_module()
        o = self.options

        def job(sem: Any) -> None:
            sem.SetLowDoseMode(1)
            if o.autoloader == "jeol":
                sem.LongOperation("In")
            sem.Echo("gridpilot scope-gateway connected")

        await self._run("connect", job)
        self._connected = True
        await self._refresh()
        logger.info("connected to SerialEM (%s) at %s:%d", o.mode, o.host, o.port)

    async def close(self) -> None:
        if self._connected and not self.session.hands_off:
            def job(sem: Any) -> None:
                sem.SetColumnOrGunValve(0)
                sem.Exit(1)
            try:
                await self._run("disconnect", job)
            except (ScopeError, TransientError, OperatorTookOver) as exc:
                logger.warning("SerialEM did not close cleanly: %s", exc.message)
        self._connected = False
        self.session.shutdown()

    def connected(self) -> bool:
        return self._connected

    # ---- grids ---------------------------------------------------------------------------------
    async def load_grid(self, slot: int) -> None:
        await self._run(f"loading slot {slot}", lambda sem: load_cartridge(
            sem, slot, self.options.autoloader, self._wait_for_dewars))
        await self._refresh(slot=slot)

    async def unload_grid(self) -> int | None:
        """Return the grid on the stage to the cassette; the slot it came from, or None."""
        slot: int | None = await self._run("unloading the grid", lambda sem: unload_cartridge(
            sem, self.options.autoloader))
        self._state = InstrumentState(**{**self._state.__dict__, "slot": None})
        return slot

    async def loaded_slot(self) -> int | None:
        """The slot whose grid is on the stage, as the autoloader reports it."""
        slot: int | None = await self._run("reading the loaded slot", lambda sem: loaded_slot(
            sem, self.options.autoloader))
        return slot

    # ---- atlas ---------------------------------------------------------------------------------
    async def atlas(self, tiles_x: int, tiles_y: int) -> AtlasCapture:
        self._shots += 1
        name = f"gridpilot_atlas_{self._shots:04d}.mrc"

        def job(sem: Any) -> AtlasCapture:
            if self.options.atlas_imaging_state:
                self._imaging_state(sem, self.options.atlas_imaging_state)
            previous = int(float(values(sem.SetLowDoseMode(0))[0]))
            sem.OpenNewMontage(tiles_x, tiles_y, name)
            try:
                sem.SetMontageParams(_STAGE_MONTAGE)
                pieces = int(float(values(sem.ReportNumMontagePieces())[0]))
                if pieces != tiles_x * tiles_y:
                    raise ScopeError(f"SerialEM will take {pieces} montage pieces, not "
                                     f"{tiles_x}×{tiles_y}")
                sem.Montage()
                overview = capture(sem, "B", "atlas")
                tiles = []
                for ix in range(1, tiles_x + 1):
                    for iy in range(1, tiles_y + 1):
                        self._check_cancel("atlas")
                        sem.ReadMontagePiece(ix, iy, 0, _TILE_BUFFER)
                        tiles.append(capture(sem, _TILE_BUFFER, "atlas_tile",
                                                   tile=(ix - 1, tiles_y - iy)))
            finally:
                sem.CloseFile()
                sem.SetLowDoseMode(previous)
            return AtlasCapture(atlas=overview, tiles=sorted(tiles, key=lambda t: (t.tile or (0, 0))[::-1]))

        montage: AtlasCapture = await self._run("the atlas montage", job)
        await self._refresh(preset="atlas")
        return montage

    # ---- stage, height, focus, drift -----------------------------------------------------------
    async def move_stage(self, x_um: float, y_um: float, z_um: float | None) -> StagePosition:
        def job(sem: Any) -> None:
            self._wait_for_dewars(sem)
            if z_um is None:
                sem.MoveStageTo(float(x_um), float(y_um))
            else:
                sem.MoveStageTo(float(x_um), float(y_um), float(z_um))

        await self._run("the stage move", job)
        return (await self._refresh()).stage

    async def tilt(self, angle_deg: float) -> StagePosition:
        await self._run("the tilt", lambda sem: sem.TiltTo(float(angle_deg)))
        return (await self._refresh()).stage

    async def eucentric_height(self, mode: Literal["rough", "refine", "both"]) -> float:
        def job(sem: Any) -> float:
            z0 = floats(sem.ReportStageXYZ(), 3)[2]
            sem.Eucentricity(_EUCENTRIC_OPTION[mode])
            return floats(sem.ReportStageXYZ(), 3)[2] - z0

        dz: float = await self._run("eucentric height", job)
        await self._refresh()
        return dz

    async def autofocus(self, target_defocus_um: float) -> float:
        def job(sem: Any) -> float:
            sem.SetTargetDefocus(float(target_defocus_um))
            sem.AutoFocus()
            measured, status = floats(sem.ReportAutoFocus(), 2)
            if status != 0:
                raise ScopeError(f"autofocus failed (ReportAutoFocus status {status:g}); the "
                                 "focus was not changed", measured_defocus_um=measured)
            return measured

        measured: float = await self._run("autofocus", job)
        await self._refresh()
        return measured

    async def change_focus(self, delta_um: float) -> float:
        """Change the objective focus by ``delta_um`` (``ChangeFocus``); the focus after it."""
        def job(sem: Any) -> float:
            sem.ChangeFocus(float(delta_um))
            return floats(sem.ReportDefocus(), 1)[0]

        focus: float = await self._run("the focus change", job)
        await self._refresh()
        return focus

    async def refine_zlp(self) -> None:
        """Refine the zero-loss peak now (``RefineZLP 0``: whatever time passed since the last)."""
        await self._run("the zero-loss peak refinement", lambda sem: sem.RefineZLP(0))

    async def drift_wait(self, threshold_a_per_s: float, timeout_s: float) -> DriftOutcome:
        def job(sem: Any) -> DriftOutcome:
            start_s = floats(sem.ReportClock(), 1)[0]
            sem.DriftWaitTask(float(threshold_a_per_s), "A", float(timeout_s),
                              _DRIFT_INTERVAL_S, _DRIFT_NO_ERROR, "F")
            rate_nm_s, failed = floats(sem.GetWaitTaskDrift(), 2)
            waited_s = floats(sem.ReportClock(), 1)[0] - start_s
            if failed not in (0, _DRIFT_TOO_LONG):
                raise ScopeError(f"the drift measurement failed (GetWaitTaskDrift code "
                                 f"{failed:g})", drift_nm_per_s=rate_nm_s)
            return DriftOutcome(rate_nm_s * _NM_TO_A, failed == 0, waited_s)

        outcome: DriftOutcome = await self._run("the drift wait", job)
        return outcome

    # ---- image shift ---------------------------------------------------------------------------
    async def image_shift(self, dx_um: float, dy_um: float, absolute: bool) -> tuple[float, float]:
        def job(sem: Any) -> tuple[float, float]:
            dx, dy = float(dx_um), float(dy_um)
            if absolute:
                x0, y0 = specimen_shift(sem)
                dx, dy = dx - x0, dy - y0
            if float(values(sem.ImageShiftByMicrons(dx, dy))[0]) != 0:
                raise ScopeError(f"SerialEM refused an image shift by ({dx:.2f}, {dy:.2f}) µm: "
                                 "it would exceed its image-shift limit; nothing moved",
                                 dx_um=dx, dy_um=dy)
            return specimen_shift(sem)

        shift: tuple[float, float] = await self._run("the image shift", job)
        await self._refresh()
        return shift

    async def reset_image_shift(self) -> StagePosition:
        """Zero the image shift and move the stage to keep the same area (``ResetImageShift``)."""
        await self._run("resetting the image shift", lambda sem: sem.ResetImageShift())
        return (await self._refresh()).stage

    async def center_on(self, reference: str = "B", *, move: bool = True) -> tuple[float, float]:
        """Align buffer A to ``reference`` (``AlignTo``) and, with ``move``, shift the image so
        the area matches it (centring on a hole); returns the shift on the specimen, µm."""
        def job(sem: Any) -> tuple[float, float]:
            sem.AlignTo(reference, 0 if move else 1)
            values = floats(sem.ReportAlignShift(), 6)
            return values[4] / 1e3, values[5] / 1e3

        shift: tuple[float, float] = await self._run("the alignment", job)
        await self._refresh()
        return shift

    # ---- optics --------------------------------------------------------------------------------
    async def go_to_imaging_state(self, name: str) -> None:
        """Set a named Imaging State (``GoToImagingState``; its failure code checked)."""
        await self._run(f"imaging state {name!r}", lambda sem: self._imaging_state(sem, name))

    async def set_optics(self, *, magnification: float | None = None,
                         spot_size: int | None = None, percent_c2: float | None = None) -> None:
        """Set magnification (``SetMag``), spot size and C2 (``SetPercentC2``) directly."""
        def job(sem: Any) -> None:
            if magnification is not None:
                sem.SetMag(float(magnification))
            if spot_size is not None:
                sem.SetSpotSize(int(spot_size))
            if percent_c2 is not None:
                sem.SetPercentC2(float(percent_c2))

        await self._run("the optics", job)

    # ---- acquisition ---------------------------------------------------------------------------
    async def acquire(self, preset: Literal["search", "view", "record"], frames: int,
                      dose_e_per_a2: float | None, exposure_time_s: float | None) -> Capture:
        self._shots += 1
        shot = self._shots

        def job(sem: Any) -> Capture:
            self._wait_for_dewars(sem)
            sem.GoToLowDoseArea(_AREA[preset])
            if preset == "record":
                self._prepare_record(sem, frames, exposure_time_s)
            self._check_cancel("acquire")
            getattr(sem, _SHOT[preset])()
            image = capture(sem, "A", preset)
            if preset == "record" and frames > 1:
                image = with_frames(sem, self.options, image)
            if self.options.save_copies:
                sem.SaveToOtherFile("A", "MRC", "NONE", f"gridpilot_{preset}_{shot:05d}.mrc")
            return image

        taken: Capture = await self._run(f"the {preset} acquisition", job)
        await self._refresh(preset=preset)
        return taken

    async def multiple_records(self, shots: int, radius_um: float, *,
                               centre: bool = False) -> int:
        """Several Records around the hole by image shift (``MultipleRecords``); their count."""
        def job(sem: Any) -> int:
            sem.GoToLowDoseArea("R")
            return int(floats(sem.MultipleRecords(int(shots), 1 if centre else 0,
                                                   float(radius_um)), 1)[0])

        count: int = await self._run("multiple records", job)
        await self._refresh(preset="record")
        return count

    async def state(self) -> InstrumentState:
        if self.session.busy or not self._connected or self.session.hands_off:
            return self._state
        return await self._refresh()

    async def abort(self) -> bool:
        if not self.session.busy:
            return False
        self._cancel.set()
        return True

    # ---- helpers (run on the SerialEM thread) --------------------------------------------------
    def _wait_for_dewars(self, sem: Any) -> None:
        while floats(sem.AreDewarsFilling(), 1)[0] > 0:
            self._check_cancel("waiting for the dewars")
            logger.info("SerialEM reports the dewars filling; waiting")
            sem.Delay(_DRIFT_INTERVAL_S)

    def _imaging_state(self, sem: Any, name: str) -> None:
        code = floats(sem.GoToImagingState(name), 1)[0]
        if code != 0:
            raise ScopeError(f"SerialEM could not set the imaging state {name!r} "
                             f"(GoToImagingState code {code:g})", imaging_state=name)

    def _prepare_record(self, sem: Any, frames: int, exposure_time_s: float | None) -> None:
        o = self.options
        if o.refine_zlp_interval_min is not None:
            sem.RefineZLP(float(o.refine_zlp_interval_min))
        exposure_s = float(exposure_time_s if exposure_time_s is not None
                           else o.record_exposure_s)
        sem.SetExposure("R", exposure_s)
        if frames > 1:
            sem.SetDoseFracParams("R", 1, _SAVE_FRAMES[o.camera], 0)
            sem.SetFrameTime("R", exposure_s / frames)
        else:
            sem.SetDoseFracParams("R", 0, 0)

    def _shift_for_state(self, sem: Any) -> tuple[float, float]:
        """The specimen image shift, or the last known one where SerialEM has no calibration
        (a state read must not fail; an image-shift command does)."""
        reported = sem.ReportSpecimenShift()
        if reported is None:
            return self._state.image_shift_um
        x, y = floats(reported, 2)
        return x, y

    async def _refresh(self, *, slot: int | None = None,
                       preset: Preset | None = None) -> InstrumentState:
        def job(sem: Any) -> InstrumentState:
            x, y, z = floats(sem.ReportStageXYZ(), 3)
            return InstrumentState(
                slot=slot if slot is not None else self._state.slot,
                stage=StagePosition(x_um=x, y_um=y, z_um=z,
                                    tilt_deg=floats(sem.ReportTiltAngle(), 1)[0]),
                image_shift_um=self._shift_for_state(sem),
                defocus_um=floats(sem.ReportDefocus(), 1)[0],
                target_defocus_um=floats(sem.ReportTargetDefocus(), 1)[0],
                preset=preset if preset is not None else self._state.preset,
                dewars_filling=floats(sem.AreDewarsFilling(), 1)[0] > 0,
            )

        try:
            self._state = await self.session.run("reading the state", job, operation=False)
        except OperatorTookOver as exc:
            # Reading the state must not hide the STOP: the next operation raises it.
            self.session.note_stop(exc)
        return self._state

