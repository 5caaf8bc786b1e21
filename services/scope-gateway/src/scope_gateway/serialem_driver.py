"""The SerialEM driver: the gateway's :class:`~scope_gateway.driver.Microscope` over SerialEM.

Every call into SerialEM's Python module goes through ONE worker thread (SerialEM runs one
operation at a time, and two overlapping calls fail with "busy"), and each driver operation
runs as one job on that thread, so its SerialEM calls are never interleaved with another's.
Errors are translated in one place, :func:`translate_serialem_errors`:

- ``SEMerror`` → :class:`~gridpilot.errors.ScopeError` with SerialEM's message (the step
  failed; the gateway stays healthy);
- ``SEMexited`` → :class:`~gridpilot.errors.OperatorTookOver` (the operator pressed STOP:
  pause, never retry);
- ``SEMmoduleError`` → :class:`~gridpilot.errors.TransientError` when SerialEM was busy or the
  socket failed, else :class:`~gridpilot.errors.ScopeError`.

The module is injected (``SerialEMDriver(module=fake)``) or imported as ``serialem`` on
connect. The autoloader sequence follows SmartScope: check the slot, close the column valves,
``LoadCartridge``, check again, open the valves. Abort takes effect between SerialEM calls: a
single running call (a Record) cannot be interrupted from outside SerialEM.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from gridpilot.contracts import StagePosition
from gridpilot.contracts.scope import Preset
from gridpilot.errors import ConfigError, OperatorTookOver, ScopeError, TransientError
from gridpilot.storage.mrc import read_mrc

from .driver import Affine, AtlasCapture, Capture, DriftOutcome, DriverName, InstrumentState

__all__ = ["SerialEMDriver", "SerialEMOptions", "translate_serialem_errors"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_NM_TO_A: Final[float] = 10.0
_TRANSIENT_WORDS: Final[tuple[str, ...]] = ("busy", "socket", "connect", "communicat", "timed out")
_EUCENTRIC_OPTION: Final[dict[str, int]] = {"rough": 1, "refine": 2, "both": 3}
_AREA: Final[dict[str, str]] = {"search": "S", "view": "V", "record": "R"}
_SHOT: Final[dict[str, str]] = {"search": "Search", "view": "View", "record": "Record"}
_SLOT_ON_STAGE: Final[int] = 0
_SLOT_EMPTY: Final[int] = -1
_DRIFT_INTERVAL_S: Final[float] = 10.0


@contextmanager
def translate_serialem_errors(module: Any, what: str) -> Iterator[None]:
    """Map the ``serialem`` module's exceptions to gridpilot's error tree (the one place).

    Args:
        module: the ``serialem`` module (its exception classes are looked up on it).
        what: the operation, named in the error message.
    """
    exited = getattr(module, "SEMexited", None)
    sem_error = getattr(module, "SEMerror", None)
    module_error = getattr(module, "SEMmoduleError", None)
    try:
        yield
    except Exception as exc:
        text = str(exc) or type(exc).__name__
        if exited is not None and isinstance(exc, exited):
            raise OperatorTookOver(f"SerialEM stopped during {what} ({text}): the operator took "
                                   "over; the session pauses until they hand back control",
                                   serialem_message=text) from None
        if sem_error is not None and isinstance(exc, sem_error):
            raise ScopeError(f"SerialEM failed {what}: {text}", serialem_message=text) from None
        if module_error is not None and isinstance(exc, module_error):
            if any(word in text.lower() for word in _TRANSIENT_WORDS):
                raise TransientError(f"SerialEM could not run {what} now: {text}",
                                     serialem_message=text) from None
            raise ScopeError(f"SerialEM's Python module failed {what}: {text}",
                             serialem_message=text) from None
        if isinstance(exc, ConnectionError | TimeoutError):
            raise TransientError(f"lost the connection to SerialEM during {what}: {text}") from None
        raise


@dataclass(frozen=True)
class SerialEMOptions:
    """Where SerialEM is and where its files go.

    Attributes:
        host, port: SerialEM's external-Python socket (``EnableExternalPython 1``; 48888).
        directory: SerialEM's working folder on its own computer (``SetDirectory``).
        frames_folder: where SerialEM saves movie frames (on its computer).
        frames_local: the same folder as mounted here, to read the frames back.
        save_copies: keep an MRC copy of every image in SerialEM's folder (``SaveToOtherFile``).
        record_exposure_s: exposure of a Record when the command does not give one.
    """

    host: str = "127.0.0.1"
    port: int = 48888
    directory: str | None = None
    frames_folder: str | None = None
    frames_local: Path | None = None
    save_copies: bool = False
    record_exposure_s: float = 2.5


class SerialEMDriver:
    """Drive SerialEM through its Python module, one call at a time."""

    name: DriverName = "serialem"

    def __init__(self, options: SerialEMOptions | None = None, *, module: Any = None) -> None:
        self.options = options or SerialEMOptions()
        self._sem = module
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serialem")
        self._cancel = threading.Event()
        self._busy = False
        self._connected = False
        self._shots = 0
        self._stopped: OperatorTookOver | None = None
        self._state = InstrumentState(slot=None, stage=StagePosition(x_um=0.0, y_um=0.0),
                                      image_shift_um=(0.0, 0.0), defocus_um=0.0,
                                      target_defocus_um=-2.0, preset="atlas")

    # ---- the single writer ---------------------------------------------------------------------
    async def _run(self, what: str, job: Callable[[Any], T]) -> T:
        """Run ``job(module)`` on the SerialEM thread, with errors translated.

        A STOP noticed while only reading the state is raised here, before the next operation
        sends anything to SerialEM.
        """
        if self._sem is None:
            raise TransientError("not connected to SerialEM")
        if self._stopped is not None:
            stopped, self._stopped = self._stopped, None
            raise stopped
        sem = self._sem

        def call() -> T:
            with translate_serialem_errors(sem, what):
                return job(sem)

        self._busy = True
        self._cancel.clear()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        finally:
            self._busy = False

    def _check_cancel(self, what: str) -> None:
        if self._cancel.is_set():
            raise ScopeError(f"{what} was aborted", aborted=True)

    # ---- lifecycle -----------------------------------------------------------------------------
    async def connect(self) -> None:
        if self._sem is None:
            try:
                self._sem = importlib.import_module("serialem")
            except ImportError as exc:
                raise ConfigError(
                    "the serialem module is not installed; copy it from SerialEM's PythonModules "
                    "folder or build it from mastcu/PythonModule, or use the twin driver") from exc
        o = self.options

        def job(sem: Any) -> None:
            sem.ConnectToSEM(o.port, o.host)
            sem.NoMessageBoxOnError(1)
            if o.directory:
                sem.SetDirectory(o.directory)
            sem.AllowFileOverwrite(1)
            if o.frames_folder:
                sem.SetFolderForFrames(o.frames_folder)
            sem.SetLowDoseMode(1)
            sem.Echo("gridpilot scope-gateway connected")

        await self._run("connect", job)
        self._connected = True
        await self._refresh()
        logger.info("connected to SerialEM at %s:%d", o.host, o.port)

    async def close(self) -> None:
        if self._connected:
            def job(sem: Any) -> None:
                sem.SetColumnOrGunValve(0)
                sem.Exit(1)
            try:
                await self._run("disconnect", job)
            except (ScopeError, TransientError) as exc:
                logger.warning("SerialEM did not close cleanly: %s", exc.message)
            self._connected = False
        self._executor.shutdown(wait=True)

    def connected(self) -> bool:
        return self._connected

    # ---- operations ----------------------------------------------------------------------------
    async def load_grid(self, slot: int) -> None:
        def job(sem: Any) -> None:
            status = int(_first(sem.ReportSlotStatus(slot)))
            if status == _SLOT_EMPTY:
                raise ScopeError(f"autoloader slot {slot} is empty or unreadable")
            if status == _SLOT_ON_STAGE:
                return
            self._wait_for_dewars(sem)
            sem.SetColumnOrGunValve(0)
            sem.LoadCartridge(slot)
            if int(_first(sem.ReportSlotStatus(slot))) != _SLOT_ON_STAGE:
                raise ScopeError(f"the cartridge of slot {slot} is not on the stage after "
                                 "LoadCartridge; the column valves stay closed")
            sem.SetColumnOrGunValve(1)

        await self._run(f"loading slot {slot}", job)
        await self._refresh(slot=slot)

    async def atlas(self, tiles_x: int, tiles_y: int) -> AtlasCapture:
        self._shots += 1
        name = f"gridpilot_atlas_{self._shots:04d}.mrc"

        def job(sem: Any) -> AtlasCapture:
            sem.SetLowDoseMode(0)
            sem.OpenNewMontage(tiles_x, tiles_y, name)
            try:
                sem.Montage()
                stitched = self._capture(sem, "A", "atlas")
                tiles = []
                for i in range(tiles_x * tiles_y):
                    self._check_cancel("atlas")
                    sem.ReadFile(i, "B")
                    tiles.append(self._capture(sem, "B", "atlas_tile", tile=(i % tiles_x,
                                                                             i // tiles_x)))
            finally:
                sem.CloseFile()
                sem.SetLowDoseMode(1)
            return AtlasCapture(atlas=stitched, tiles=tiles)

        capture = await self._run("the atlas montage", job)
        await self._refresh(preset="atlas")
        return capture

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
            z0 = float(sem.ReportStageXYZ()[2])
            sem.Eucentricity(_EUCENTRIC_OPTION[mode])
            return float(sem.ReportStageXYZ()[2]) - z0

        dz = await self._run("eucentric height", job)
        await self._refresh()
        return dz

    async def autofocus(self, target_defocus_um: float) -> float:
        def job(sem: Any) -> float:
            sem.SetTargetDefocus(float(target_defocus_um))
            sem.AutoFocus()
            measured, status = (float(v) for v in tuple(sem.ReportAutoFocus())[:2])
            if status != 0:
                raise ScopeError(f"autofocus failed (ReportAutoFocus status {status:g}); the "
                                 "focus was not changed", measured_defocus_um=measured)
            return measured

        measured = await self._run("autofocus", job)
        await self._refresh()
        return measured

    async def drift_wait(self, threshold_a_per_s: float, timeout_s: float) -> DriftOutcome:
        def job(sem: Any) -> DriftOutcome:
            rate, waited, settled = (float(v) for v in tuple(sem.DriftWaitTask(
                float(threshold_a_per_s), "A", float(timeout_s), _DRIFT_INTERVAL_S, 0, "F"))[:3])
            return DriftOutcome(rate, bool(settled), waited)

        return await self._run("the drift wait", job)

    async def image_shift(self, dx_um: float, dy_um: float, absolute: bool) -> tuple[float, float]:
        def job(sem: Any) -> tuple[float, float]:
            dx, dy = float(dx_um), float(dy_um)
            if absolute:
                x0, y0 = (float(v) for v in tuple(sem.ReportImageShift())[:2])
                dx, dy = dx - x0, dy - y0
            sem.ImageShiftByMicrons(dx, dy)
            x, y = (float(v) for v in tuple(sem.ReportImageShift())[:2])
            return x, y

        shift = await self._run("the image shift", job)
        await self._refresh()
        return shift

    async def acquire(self, preset: Literal["search", "view", "record"], frames: int,
                      dose_e_per_a2: float | None, exposure_time_s: float | None) -> Capture:
        self._shots += 1
        shot = self._shots

        def job(sem: Any) -> Capture:
            self._wait_for_dewars(sem)
            sem.GoToLowDoseArea(_AREA[preset])
            if preset == "record":
                exposure_s = float(exposure_time_s if exposure_time_s is not None
                                   else self.options.record_exposure_s)
                sem.SetExposure("R", exposure_s)
                if frames > 1:
                    sem.SetDoseFracParams("R", 1, 1, 0)
                    sem.SetFrameTime("R", exposure_s / frames)
                else:
                    sem.SetDoseFracParams("R", 0)
            self._check_cancel("acquire")
            getattr(sem, _SHOT[preset])()
            capture = self._capture(sem, "A", preset, dose_e_per_a2=dose_e_per_a2)
            if preset == "record" and frames > 1:
                capture = self._with_frames(sem, capture)
            if self.options.save_copies:
                sem.SaveToOtherFile("A", "MRC", "NONE", f"gridpilot_{preset}_{shot:05d}.mrc")
            return capture

        capture = await self._run(f"the {preset} acquisition", job)
        await self._refresh(preset=preset)
        return capture

    async def state(self) -> InstrumentState:
        if self._busy or not self._connected:
            return self._state
        return await self._refresh()

    async def abort(self) -> bool:
        if not self._busy:
            return False
        self._cancel.set()
        return True

    # ---- helpers (run on the SerialEM thread) --------------------------------------------------
    def _wait_for_dewars(self, sem: Any) -> None:
        while float(sem.AreDewarsFilling()) > 0:
            self._check_cancel("waiting for the dewars")
            logger.info("SerialEM reports the dewars filling; waiting")
            sem.Delay(_DRIFT_INTERVAL_S)

    def _capture(self, sem: Any, buf: str, kind: Any, *, tile: tuple[int, int] | None = None,
                 dose_e_per_a2: float | None = None) -> Capture:
        data: npt.NDArray[np.float32] = np.asarray(sem.bufferImage(buf), dtype=np.float32)
        props = tuple(sem.ImageProperties(buf))
        a11, a12, a21, a22, cx, cy = (float(v) for v in tuple(sem.BufImageToStageMatrix(buf, 1))[:6])
        h, w = data.shape[-2:]
        cc, cr = (w - 1) / 2.0, (h - 1) / 2.0
        affine: Affine = ((a11, a12, cx - a11 * cc - a12 * cr), (a21, a22, cy - a21 * cc - a22 * cr))
        x, y, z = (float(v) for v in tuple(sem.ReportStageXYZ())[:3])
        return Capture(
            kind=kind, data=data, pixel_size_a=float(props[4]) * _NM_TO_A,
            magnification=int(_first(sem.ReportMag())),
            stage=StagePosition(x_um=x, y_um=y, z_um=z, tilt_deg=float(sem.ReportTiltAngle())),
            image_to_stage=affine, target_defocus_um=float(sem.ReportTargetDefocus()),
            dose_e_per_a2=dose_e_per_a2, exposure_time_s=float(props[3]), tile=tile,
        )

    def _with_frames(self, sem: Any, capture: Capture) -> Capture:
        remote = str(sem.ReportLastFrameFile())
        local = self._local_path(remote)
        if local is None or not local.is_file():
            logger.warning("frames saved by SerialEM at %s are not readable here; storing the "
                           "summed image (set GRIDPILOT_SCOPE_SERIALEM_FRAMES_LOCAL)", remote)
            return capture
        frames, _ = read_mrc(local)
        return Capture(**{**capture.__dict__, "data": np.asarray(frames, dtype=np.float32)})

    def _local_path(self, remote: str) -> Path | None:
        if not remote:
            return None
        o = self.options
        if o.frames_folder and o.frames_local is not None and remote.startswith(o.frames_folder):
            rest = remote[len(o.frames_folder):].replace("\\", "/").lstrip("/")
            return o.frames_local / rest
        return Path(remote)

    async def _refresh(self, *, slot: int | None = None,
                       preset: Preset | None = None) -> InstrumentState:
        def job(sem: Any) -> InstrumentState:
            x, y, z = (float(v) for v in tuple(sem.ReportStageXYZ())[:3])
            isx, isy = (float(v) for v in tuple(sem.ReportImageShift())[:2])
            return InstrumentState(
                slot=slot if slot is not None else self._state.slot,
                stage=StagePosition(x_um=x, y_um=y, z_um=z, tilt_deg=float(sem.ReportTiltAngle())),
                image_shift_um=(isx, isy), defocus_um=float(sem.ReportDefocus()),
                target_defocus_um=float(sem.ReportTargetDefocus()),
                preset=preset if preset is not None else self._state.preset,
                dewars_filling=float(sem.AreDewarsFilling()) > 0,
            )

        try:
            self._state = await self._run("reading the state", job)
        except OperatorTookOver as exc:
            # Reading the state must not hide the STOP: the next operation raises it.
            self._stopped = exc
        return self._state


def _first(value: Any) -> float:
    """The first reported value (SerialEM returns one value or a tuple of them)."""
    if isinstance(value, tuple | list):
        return float(value[0])
    return float(value)
