"""A stand-in for SerialEM's Python module ``serialem``, backed by the twin microscope.

There is no ``serialem`` on PyPI and SerialEM only runs on Windows, so the SerialEM driver is
tested against this fake (SERIALEM.md, "Testing"). It keeps SerialEM's conventions: the same
function names and positional arguments, type-checked like the compiled module (an ``int``
argument refuses a ``float``, a ``str`` argument refuses a number, and keyword arguments are
refused), numbers returned as ``float`` and several values as a tuple, and the three
exceptions :class:`SEMerror`, :class:`SEMmoduleError` (also raised as "busy" when a second call
overlaps a running one) and :class:`SEMexited` (after the operator pressed STOP).

Fault injection: ``fake.inject_error("Record", "Camera timed out", times=1)`` makes the next
``Record`` raise ``SEMerror("Camera timed out")``; ``fake.press_stop()`` interrupts the running
operation (or the next call) with ``SEMexited``.

The reported values of commands whose exact output this fake defines are documented on each
method (``ImageProperties``, ``BufImageToStageMatrix``, ``ReportAutoFocus``,
``DriftWaitTask``, ``ReportImageShift``).

>>> from gridpilot_sim.instrument.microscope import TwinMicroscope
>>> from gridpilot_sim.instrument.presets import TwinOptics
>>> from gridpilot_sim.instrument.timing import TimingModel
>>> sem = FakeSerialEM(TwinMicroscope(timing=TimingModel.instant(), optics=TwinOptics.tiny()))
>>> sem.MoveStageTo(10, 20.5)
>>> sem.ReportStageXYZ()
(10.0, 20.5, 0.0)
>>> sem.TiltTo("5")
Traceback (most recent call last):
...
TypeError: TiltTo() argument 1 must be a real number, not str
>>> sem.close()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, TypeVar

import numpy as np
import numpy.typing as npt

from gridpilot.errors import ScopeError, TransientError
from gridpilot.storage.mrc import write_mrc
from gridpilot_sim.instrument.microscope import TwinAtlas, TwinImage, TwinMicroscope
from gridpilot_sim.instrument.presets import PresetName

__all__ = ["FakeSerialEM", "SEMerror", "SEMexited", "SEMmoduleError"]

T = TypeVar("T")

_AREAS: Final[dict[str, PresetName]] = {"S": "search", "V": "view", "R": "record",
                                        "F": "record", "T": "record", "P": "record"}
_EUCENTRIC_MODES: Final[dict[int, str]] = {1: "rough", -1: "rough", 2: "refine", 6: "refine",
                                           3: "both"}
_NM_PER_A: Final[float] = 0.1


class SEMerror(Exception):
    """An error in a SerialEM operation (the text is SerialEM's message)."""


class SEMmoduleError(Exception):
    """An error inside the Python module itself (socket, busy, bad state)."""


class SEMexited(Exception):
    """SerialEM ended the script: the operator pressed STOP, or ``Exit(0)``."""


_INJECTED: Final[dict[str, type[Exception]]] = {
    "error": SEMerror, "module": SEMmoduleError, "exited": SEMexited}


def _typecheck(name: str, spec: str, args: tuple[Any, ...]) -> None:
    """Check positional ``args`` against ``spec``: i=int, f=real, s=str; after '|' optional."""
    required, _, optional = spec.partition("|")
    kinds = required + optional
    if not len(required) <= len(args) <= len(kinds):
        raise TypeError(f"{name}() takes {len(required)} to {len(kinds)} arguments "
                        f"({len(args)} given)")
    for i, (kind, arg) in enumerate(zip(kinds, args, strict=False)):
        if kind == "i" and (isinstance(arg, float | str) or not hasattr(arg, "__index__")):
            raise TypeError(f"{name}() argument {i + 1} must be an integer, "
                            f"not {type(arg).__name__}")
        if kind == "f" and (isinstance(arg, str) or not hasattr(arg, "__float__")):
            raise TypeError(f"{name}() argument {i + 1} must be a real number, "
                            f"not {type(arg).__name__}")
        if kind == "s" and not isinstance(arg, str):
            raise TypeError(f"{name}() argument {i + 1} must be str, not {type(arg).__name__}")


class FakeSerialEM:
    """The ``serialem`` module's functions over a :class:`TwinMicroscope`.

    Args:
        twin: the instrument behind the fake.
        directory: SerialEM's current folder (``SetDirectory`` changes it): relative
            ``SaveToOtherFile`` names and frames without ``SetFolderForFrames`` go there.
    """

    SEMerror = SEMerror
    SEMmoduleError = SEMmoduleError
    SEMexited = SEMexited

    def __init__(self, twin: TwinMicroscope, *, directory: Path | None = None) -> None:
        self.twin = twin
        self.directory = directory
        self.calls: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._running: str | None = None
        self._guard = threading.Lock()
        self._injected: dict[str, list[tuple[str, str]]] = {}
        self._stop_pressed = False
        self._valves_open = True
        self._low_dose = 1
        self._area: PresetName = "search"
        self._buffers: dict[str, TwinImage] = {}
        self._montage: tuple[int, int, str] | None = None
        self._montage_tiles: list[TwinImage] = []
        self._exposure_s: dict[str, float] = {}
        self._frame_time_s: dict[str, float] = {}
        self._save_frames: dict[str, bool] = {}
        self._frames_folder: Path | None = None
        self._last_frame_file = ""
        self._last_autofocus: tuple[float, float] = (0.0, -1.0)
        self._frame_files = 0

    # ---- fault injection and lifecycle ---------------------------------------------------------
    def inject_error(self, command: str, message: str, times: int = 1, *,
                     kind: str = "error") -> None:
        """Make the next ``times`` calls of ``command`` raise ``SEMerror(message)``
        (``kind="module"``: ``SEMmoduleError``; ``kind="exited"``: ``SEMexited``, as when the
        operator presses STOP during that command)."""
        if kind not in _INJECTED:
            raise ValueError(f"kind must be one of {sorted(_INJECTED)}, got {kind!r}")
        self._injected.setdefault(command, []).extend([(kind, message)] * times)

    def press_stop(self) -> None:
        """The operator presses STOP: the running call (or the next one) raises SEMexited."""
        self._stop_pressed = True
        self.twin.abort()

    def close(self) -> None:
        """Close the fake's private event loop."""
        if not self._loop.is_closed():
            self._loop.close()

    def _call(self, name: str, spec: str, args: tuple[Any, ...], body: Callable[[], T]) -> T:
        _typecheck(name, spec, args)
        if not self._guard.acquire(blocking=False):
            raise SEMmoduleError(f"SerialEM is now busy with {self._running}; {name} was not run")
        self._running = name
        try:
            self.calls.append(name)
            if self._stop_pressed:
                self._stop_pressed = False
                raise SEMexited("User STOP")
            pending = self._injected.get(name)
            if pending:
                kind, message = pending.pop(0)
                raise _INJECTED[kind](message)
            return body()
        finally:
            self._running = None
            self._guard.release()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            return self._loop.run_until_complete(coro)
        except ScopeError as exc:
            if exc.details.get("aborted") and self._stop_pressed:
                self._stop_pressed = False
                raise SEMexited("User STOP") from None
            raise SEMerror(exc.message) from None
        except TransientError as exc:
            raise SEMmoduleError(f"Error communicating with SerialEM: {exc.message}") from None

    def _acquire(self, preset: PresetName, set_name: str) -> None:
        if not self._valves_open:
            raise SEMerror("The column valves are closed; open them before taking an image")
        optics = self.twin.optics.preset(preset)
        exposure_s = self._exposure_s.get(set_name, optics.exposure_time_s)
        frames = 1
        if self._save_frames.get(set_name) and set_name in self._frame_time_s:
            frames = max(1, round(exposure_s / self._frame_time_s[set_name]))
        dose = optics.dose_e_per_a2 * exposure_s / optics.exposure_time_s
        image = self._run(self.twin.acquire(preset, frames=frames, dose_e_per_a2=dose,
                                            exposure_time_s=exposure_s))
        self._buffers["A"] = image
        if frames > 1 and self._save_frames.get(set_name):
            self._write_frames(image)

    def _write_frames(self, image: TwinImage) -> None:
        folder = self._frames_folder or self.directory
        if folder is None:
            raise SEMerror("No folder is set for saving frames")
        folder.mkdir(parents=True, exist_ok=True)
        self._frame_files += 1
        path = folder / f"frames_{self._frame_files:05d}.mrc"
        write_mrc(path, image.data, image.pixel_size_a, None)
        self._last_frame_file = str(path)

    def _buffer(self, buf: str) -> TwinImage:
        image = self._buffers.get(buf.upper()[:1])
        if image is None:
            raise SEMerror(f"There is no image in buffer {buf}")
        return image

    @staticmethod
    def _sum(image: TwinImage) -> npt.NDArray[np.float32]:
        data = image.data
        return np.asarray(data.sum(axis=0) if data.ndim == 3 else data, dtype=np.float32)

    # ---- connection and housekeeping ------------------------------------------------------------
    def ConnectToSEM(self, *args: Any) -> None:
        self._call("ConnectToSEM", "|is", args, lambda: None)

    def Exit(self, *args: Any) -> None:
        def body() -> None:
            if args and args[0] == 0:
                raise SEMexited("Exit 0")
        self._call("Exit", "|i", args, body)

    def Echo(self, *args: Any) -> None:
        self._call("Echo", "s", args, lambda: None)

    def SetDirectory(self, *args: Any) -> None:
        def body() -> None:
            self.directory = Path(str(args[0]))
        self._call("SetDirectory", "s", args, body)

    def AllowFileOverwrite(self, *args: Any) -> None:
        self._call("AllowFileOverwrite", "i", args, lambda: None)

    def NoMessageBoxOnError(self, *args: Any) -> None:
        self._call("NoMessageBoxOnError", "|i", args, lambda: None)

    def Delay(self, *args: Any) -> None:
        self._call("Delay", "f|s", args, lambda: self._run(self.twin.idle(float(args[0]))))

    # ---- autoloader and vacuum ------------------------------------------------------------------
    def ReportSlotStatus(self, *args: Any) -> tuple[float, str]:
        """(status, name): 1 in the cassette, 0 on the stage, −1 empty."""
        def body() -> tuple[float, str]:
            slot = self.twin.cassette.get(int(args[0]))
            return float(self.twin.slot_status(int(args[0]))), slot.name if slot else ""
        return self._call("ReportSlotStatus", "i", args, body)

    def LoadCartridge(self, *args: Any) -> None:
        def body() -> None:
            if self._valves_open:
                raise SEMerror("The column valves must be closed before loading a cartridge")
            self._run(self.twin.load_grid(int(args[0])))
        self._call("LoadCartridge", "i", args, body)

    def SetColumnOrGunValve(self, *args: Any) -> None:
        def body() -> None:
            self._valves_open = bool(args[0])
        self._call("SetColumnOrGunValve", "i", args, body)

    def ReportColumnOrGunValve(self, *args: Any) -> float:
        return self._call("ReportColumnOrGunValve", "", args, lambda: float(self._valves_open))

    def AreDewarsFilling(self, *args: Any) -> float:
        return self._call("AreDewarsFilling", "", args, lambda: float(self.twin.dewars_filling))

    # ---- optics ---------------------------------------------------------------------------------
    def SetLowDoseMode(self, *args: Any) -> float:
        def body() -> float:
            previous, self._low_dose = self._low_dose, int(args[0])
            return float(previous)
        return self._call("SetLowDoseMode", "i", args, body)

    def GoToLowDoseArea(self, *args: Any) -> None:
        def body() -> None:
            area = _AREAS.get(str(args[0])[:1].upper())
            if area is None:
                raise SEMerror(f"Unknown low dose area {args[0]}")
            self._area = area
        self._call("GoToLowDoseArea", "s", args, body)

    def ReportMag(self, *args: Any) -> tuple[float, float]:
        """(nominal magnification, 0 = not STEM) of the current low-dose area."""
        return self._call("ReportMag", "", args, lambda: (
            float(self.twin.optics.preset(self._area).magnification), 0.0))

    def ReportCurrentPixelSize(self, *args: Any) -> float:
        """Pixel size (nm) of the current area, or of set ``V``/``S``/``R`` when given."""
        def body() -> float:
            area = _AREAS.get(str(args[0])[:1].upper(), self._area) if args else self._area
            return self.twin.optics.preset(area).pixel_size_a * _NM_PER_A
        return self._call("ReportCurrentPixelSize", "|s", args, body)

    # ---- stage ----------------------------------------------------------------------------------
    def MoveStageTo(self, *args: Any) -> None:
        z = float(args[2]) if len(args) > 2 else None
        self._call("MoveStageTo", "ff|f", args,
                   lambda: self._run(self.twin.move_stage(float(args[0]), float(args[1]), z)) and None)

    def ReportStageXYZ(self, *args: Any) -> tuple[float, float, float]:
        def body() -> tuple[float, float, float]:
            s = self.twin.state().stage
            return float(s.x_um), float(s.y_um), float(s.z_um)
        return self._call("ReportStageXYZ", "", args, body)

    def TiltTo(self, *args: Any) -> None:
        self._call("TiltTo", "f", args, lambda: self._run(self.twin.tilt(float(args[0]))) and None)

    def ReportTiltAngle(self, *args: Any) -> float:
        return self._call("ReportTiltAngle", "", args,
                          lambda: float(self.twin.state().stage.tilt_deg))

    def Eucentricity(self, *args: Any) -> None:
        def body() -> None:
            mode = _EUCENTRIC_MODES.get(int(args[0]) if args else 3)
            if mode is None:
                raise SEMerror(f"Eucentricity: {args[0]} is not a valid option")
            self._run(self.twin.eucentric_height(mode))  # type: ignore[arg-type]
        self._call("Eucentricity", "|ii", args, body)

    # ---- focus and drift ------------------------------------------------------------------------
    def SetTargetDefocus(self, *args: Any) -> None:
        def body() -> None:
            try:
                self.twin.set_target_defocus(float(args[0]))
            except ScopeError as exc:
                raise SEMerror(exc.message) from None
        self._call("SetTargetDefocus", "f", args, body)

    def ReportTargetDefocus(self, *args: Any) -> float:
        return self._call("ReportTargetDefocus", "", args,
                          lambda: float(self.twin.state().target_defocus_um))

    def SetDefocus(self, *args: Any) -> None:
        self._call("SetDefocus", "f", args, lambda: self.twin.set_focus(float(args[0])))

    def ReportDefocus(self, *args: Any) -> float:
        """The objective focus, µm (what SerialEM calls defocus)."""
        return self._call("ReportDefocus", "", args, lambda: float(self.twin.state().focus_um))

    def AutoFocus(self, *args: Any) -> None:
        def body() -> None:
            outcome = self._run(self.twin.autofocus())
            self._last_autofocus = (outcome.measured_defocus_um, 0.0 if outcome.ok else 1.0)
        self._call("AutoFocus", "|is", args, body)

    def ReportAutoFocus(self, *args: Any) -> tuple[float, float]:
        """(measured defocus µm, status): 0 OK, 1 failed, −1 no autofocus done yet."""
        return self._call("ReportAutoFocus", "", args, lambda: self._last_autofocus)

    def DriftWaitTask(self, *args: Any) -> tuple[float, float, float]:
        """(final drift in Å/s, seconds waited, 1 if below the threshold else 0); with a
        positive error flag (5th argument) a drift above the threshold is a SEMerror."""
        def body() -> tuple[float, float, float]:
            threshold = float(args[0])
            if len(args) > 1 and str(args[1]).lower().startswith("n"):
                threshold *= 10.0  # nm/s → Å/s
            max_s = float(args[2]) if len(args) > 2 else 60.0
            out = self._run(self.twin.drift_wait(threshold, max_s))
            if not out.settled and len(args) > 4 and int(args[4]) > 0:
                raise SEMerror(f"Drift did not fall below {args[0]} within {max_s:g} s")
            return out.drift_a_per_s, out.waited_s, float(out.settled)
        return self._call("DriftWaitTask", "f|sffisi", args, body)

    # ---- image shift ----------------------------------------------------------------------------
    def ImageShiftByMicrons(self, *args: Any) -> None:
        self._call("ImageShiftByMicrons", "ff|fi", args, lambda: self._run(
            self.twin.image_shift(float(args[0]), float(args[1]))) and None)

    def ReportImageShift(self, *args: Any) -> tuple[float, float]:
        """(x, y) image shift on the specimen, µm."""
        return self._call("ReportImageShift", "", args,
                          lambda: tuple(float(v) for v in self.twin.state().image_shift_um))  # type: ignore[return-value]

    # ---- acquisition and files ------------------------------------------------------------------
    def SetExposure(self, *args: Any) -> None:
        def body() -> None:
            self._exposure_s[str(args[0])[:1].upper()] = float(args[1])
        self._call("SetExposure", "sf|f", args, body)

    def SetFrameTime(self, *args: Any) -> None:
        def body() -> None:
            self._frame_time_s[str(args[0])[:1].upper()] = float(args[1])
        self._call("SetFrameTime", "sf", args, body)

    def SetDoseFracParams(self, *args: Any) -> None:
        def body() -> None:
            save = bool(args[1]) and (bool(args[2]) if len(args) > 2 else True)
            self._save_frames[str(args[0])[:1].upper()] = save
        self._call("SetDoseFracParams", "si|iiiii", args, body)

    def SetFolderForFrames(self, *args: Any) -> None:
        def body() -> None:
            self._frames_folder = Path(str(args[0]))
        self._call("SetFolderForFrames", "s", args, body)

    def ReportLastFrameFile(self, *args: Any) -> str:
        return self._call("ReportLastFrameFile", "", args, lambda: self._last_frame_file)

    def Search(self, *args: Any) -> None:
        self._call("Search", "", args, lambda: self._acquire("search", "S"))

    def View(self, *args: Any) -> None:
        self._call("View", "", args, lambda: self._acquire("view", "V"))

    def Preview(self, *args: Any) -> None:
        self._call("Preview", "", args, lambda: self._acquire("record", "P"))

    def Record(self, *args: Any) -> None:
        self._call("Record", "", args, lambda: self._acquire("record", "R"))

    def OpenNewMontage(self, *args: Any) -> None:
        def body() -> None:
            self._montage = (int(args[0]), int(args[1]), str(args[2]))
            self._montage_tiles = []
        self._call("OpenNewMontage", "iis", args, body)

    def Montage(self, *args: Any) -> None:
        def body() -> None:
            if self._montage is None:
                raise SEMerror("There is no montage file open")
            if not self._valves_open:
                raise SEMerror("The column valves are closed; open them before taking an image")
            atlas: TwinAtlas = self._run(self.twin.atlas(self._montage[0], self._montage[1]))
            self._buffers["A"] = atlas.stitched
            self._montage_tiles = list(atlas.tiles)
        self._call("Montage", "|i", args, body)

    def ReadFile(self, *args: Any) -> None:
        """Read piece ``#`` (0-based) of the open montage file into a buffer (default A)."""
        def body() -> None:
            index = int(args[0])
            if not 0 <= index < len(self._montage_tiles):
                raise SEMerror(f"Section {index} does not exist in the open file")
            self._buffers[str(args[1])[:1].upper() if len(args) > 1 else "A"] = (
                self._montage_tiles[index])
        self._call("ReadFile", "i|s", args, body)

    def CloseFile(self, *args: Any) -> None:
        def body() -> None:
            self._montage = None
        self._call("CloseFile", "", args, body)

    def SaveToOtherFile(self, *args: Any) -> None:
        def body() -> None:
            image = self._buffer(str(args[0]))
            if str(args[1]).upper() != "MRC":
                raise SEMerror(f"This fake saves MRC files only, not {args[1]}")
            path = Path(str(args[3]))
            if not path.is_absolute():
                if self.directory is None:
                    raise SEMerror(f"No directory is set for saving {path}")
                path = self.directory / path
            path.parent.mkdir(parents=True, exist_ok=True)
            write_mrc(path, self._sum(image), image.pixel_size_a, None)
        self._call("SaveToOtherFile", "ssss", args, body)

    def bufferImage(self, *args: Any) -> npt.NDArray[np.float32]:
        return self._call("bufferImage", "s", args, lambda: self._sum(self._buffer(str(args[0]))))

    def ImageProperties(self, *args: Any) -> tuple[float, float, float, float, float]:
        """(width, height, binning, exposure s, pixel size nm) of the image in a buffer."""
        def body() -> tuple[float, float, float, float, float]:
            image = self._buffer(str(args[0]) if args else "A")
            h, w = image.data.shape[-2:]
            return (float(w), float(h), 1.0, float(image.exposure_time_s),
                    image.pixel_size_a * _NM_PER_A)
        return self._call("ImageProperties", "|s", args, body)

    def BufImageToStageMatrix(self, *args: Any) -> tuple[float, ...]:
        """(a11, a12, a21, a22, x, y): stage µm per pixel from the image centre, and the stage
        position (µm) of the image centre."""
        def body() -> tuple[float, ...]:
            image = self._buffer(str(args[0]))
            (a11, a12, b1), (a21, a22, b2) = image.image_to_stage
            h, w = image.data.shape[-2:]
            cc, cr = (w - 1) / 2.0, (h - 1) / 2.0
            return (float(a11), float(a12), float(a21), float(a22),
                    float(a11 * cc + a12 * cr + b1), float(a21 * cc + a22 * cr + b2))
        return self._call("BufImageToStageMatrix", "s|i", args, body)
