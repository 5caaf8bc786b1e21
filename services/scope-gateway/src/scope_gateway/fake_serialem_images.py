"""The fake's camera, buffers, montage, Navigator and alignment commands, over the twin.

- Buffers roll: a new image goes to A and pushes A → B → C → D. ``Montage`` leaves a piece in
  A and the overview in B (EMmontageController.cpp:3085).
- ``BufImageToStageMatrix`` reports SerialEM's image→stage transform: continuous image
  coordinates with Y down, (0, 0) the top-left corner of the image and its centre at
  (w/2, h/2) (NavHelper.cpp 3121-3148), so pixel (col, row) sits at (col + ½, row + ½). It
  needs the Navigator open.
- Frames are saved when the parameter set says so *for the camera*: K2/K3 need dose
  fractionation and frame saving on; Falcon only frame saving; DE the flags 16 or 32
  (script_commands.htm:1396).
- ``bufferImage`` is a type; a failure while constructing it surfaces as ``SystemError`` whose
  cause is SEMmoduleError or SEMexited (SerialEMModule.cpp 140-153).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from gridpilot.storage.mrc import write_mrc
from gridpilot_sim.instrument.microscope import TwinImage
from gridpilot_sim.instrument.presets import PresetName

from .fake_serialem_base import (
    Args,
    FakeBase,
    SEMerror,
    SEMexited,
    SEMmoduleError,
    command,
    parse_args,
)
from .serialem_commands import COMMANDS

__all__ = ["Camera", "ImageCommands"]

Camera = Literal["k3", "falcon", "de"]

_ROLLING: Final[str] = "ABCD"
#: SerialEM's parameter-set numbers (View 0 … Search 5), as ImageProperties reports them.
_CONSET: Final[dict[str, int]] = {"V": 0, "F": 1, "T": 2, "R": 3, "P": 4, "S": 5}
_SHOT_PRESET: Final[dict[str, PresetName]] = {"V": "view", "R": "record", "P": "record",
                                              "S": "search"}
_DE_SAVE_FLAGS: Final[int] = 16 | 32
_NM_PER_A: Final[float] = 0.1
_BUFFER_TYPE_ERROR: Final[str] = ("<class 'serialem.bufferImage'> returned a result with an "
                                  "exception set")
#: The Multiple Record Setup dialog (shots around the centre, centre shot, radius µm).
_MULTISHOT_DIALOG: Final[tuple[int, int, float]] = (4, 0, 1.0)


@dataclass(frozen=True)
class _CameraSet:
    exposure_s: float | None = None
    frame_time_s: float | None = None
    dose_frac: bool = False
    save_frames: int = 0


@dataclass
class _Montage:
    tiles_x: int
    tiles_y: int
    name: str
    pieces: tuple[TwinImage, ...] = ()
    overview: TwinImage | None = None
    param_set: int = 1


class ImageCommands(FakeBase):
    """Acquisition, buffers, montage, Navigator and alignment."""

    def __init__(self, *args: Any, camera: Camera = "k3", directory: Path | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.camera: Camera = camera
        self.directory = directory
        self.navigator_open = False
        self.buffers: dict[str, tuple[TwinImage, int]] = {}
        self.frames_folder: Path | None = None
        self._sets: dict[str, _CameraSet] = {}
        self._montage: _Montage | None = None
        self._montage_param_set = 1
        self._last_frames: Path | None = None
        self._frame_files = 0
        self._align_px = (0.0, 0.0, (0.0, 0.0))

    def _on_new_script(self) -> None:
        super()._on_new_script()
        self._sets = {}  # a script's camera changes are restored when it ends

    # ---- helpers --------------------------------------------------------------------------------
    def _set(self, name: str) -> tuple[str, _CameraSet]:
        letter = name[:1].upper()
        if letter not in _CONSET:
            raise SEMerror(f"{name} is not a valid parameter set")
        return letter, self._sets.get(letter, _CameraSet())

    def _buffer(self, buf: str) -> tuple[TwinImage, int]:
        letter = buf[:1].upper()
        if len(buf) != 1 or not "A" <= letter <= "T":
            raise SEMerror(f"{buf} is not a valid buffer letter")
        if letter not in self.buffers:
            raise SEMerror(f"There is no image in buffer {letter}")
        return self.buffers[letter]

    def _push(self, image: TwinImage, conset: int) -> None:
        for older, newer in zip(reversed(_ROLLING[1:]), reversed(_ROLLING[:-1]), strict=True):
            if newer in self.buffers:
                self.buffers[older] = self.buffers[newer]
        self.buffers["A"] = (image, conset)

    def _saves_frames(self, cam: _CameraSet) -> bool:
        if self.camera == "k3":
            return cam.dose_frac and cam.save_frames != 0
        if self.camera == "de":
            return bool(cam.save_frames & _DE_SAVE_FLAGS)
        return cam.save_frames != 0

    def _shot(self, letter: str) -> None:
        preset = _SHOT_PRESET[letter]
        optics = self.twin.optics.preset(preset)
        _, cam = self._set(letter)
        exposure_s = cam.exposure_s or optics.exposure_time_s
        saving = self._saves_frames(cam)
        frames = max(1, round(exposure_s / cam.frame_time_s)) if saving and cam.frame_time_s else 1
        dose = optics.dose_e_per_a2 * exposure_s / optics.exposure_time_s
        image = self._run(self.twin.acquire(preset, frames=frames, dose_e_per_a2=dose,
                                            exposure_time_s=exposure_s))
        if saving:
            self._write_frames(image)
        self._push(replace(image, data=_summed(image)), _CONSET[letter])

    def _write_frames(self, image: TwinImage) -> None:
        folder = self.frames_folder or self.directory
        if folder is None:
            raise SEMerror("No folder is set for saving frames")
        folder.mkdir(parents=True, exist_ok=True)
        self._frame_files += 1
        path = folder / f"frames_{self._frame_files:05d}.mrc"
        frames = image.data if image.data.ndim == 3 else image.data[None]
        write_mrc(path, frames, image.pixel_size_a, None)
        self._last_frames = path

    def _in_directory(self, name: str) -> Path:
        path = Path(name)
        if path.is_absolute():
            return path
        if self.directory is None:
            raise SEMerror(f"No directory is set for {name}")
        return self.directory / path

    # ---- camera parameters and frames ----------------------------------------------------------
    @command
    def SetExposure(self, a: Args) -> None:
        letter, cam = self._set(a[0])
        self._sets[letter] = replace(cam, exposure_s=a[1])

    @command
    def SetFrameTime(self, a: Args) -> float:
        letter, cam = self._set(a[0])
        self._sets[letter] = replace(cam, frame_time_s=a[1])
        return float(a[1])

    @command
    def SetDoseFracParams(self, a: Args) -> None:
        letter, cam = self._set(a[0])
        cam = replace(cam, dose_frac=a[1] != 0)
        if a[2] is not None:
            cam = replace(cam, save_frames=a[2])
        self._sets[letter] = cam

    @command
    def SetFolderForFrames(self, a: Args) -> None:
        self.frames_folder = Path(a[0])

    @command
    def ReportLastFrameFile(self, a: Args) -> tuple[str, str, str]:
        if self._last_frames is None:
            raise SEMerror("There is no last frame file name available for: ReportLastFrameFile")
        folder, name = os.path.split(str(self._last_frames))
        return str(self._last_frames), folder, name

    # ---- acquisition ----------------------------------------------------------------------------
    @command
    def Search(self, a: Args) -> None:
        self._shot("S")

    @command
    def View(self, a: Args) -> None:
        self._shot("V")

    @command
    def Preview(self, a: Args) -> None:
        self._shot("P")

    @command
    def Record(self, a: Args) -> None:
        self._shot("R")

    @command
    def MultipleRecords(self, a: Args) -> float:
        n, centre, radius_um = (v if v is not None and v > -9 else d
                                for v, d in zip(a[:3], _MULTISHOT_DIALOG, strict=True))
        x0, y0 = self.twin.state().image_shift_um
        offsets = [(radius_um * math.cos(2 * math.pi * k / n), radius_um * math.sin(2 * math.pi * k / n))
                   for k in range(int(n))]
        if centre:
            offsets = [(0.0, 0.0), *offsets] if centre < 0 else [*offsets, (0.0, 0.0)]
        try:
            for dx, dy in offsets:
                self._run(self.twin.image_shift(x0 + dx, y0 + dy, absolute=True))
                self._shot("R")
        finally:
            self._run(self.twin.image_shift(x0, y0, absolute=True))
        return float(len(offsets))

    # ---- montage and files ----------------------------------------------------------------------
    @command
    def OpenNewMontage(self, a: Args) -> None:
        if a[0] < 1 or a[1] < 1:
            raise SEMerror("OpenNewMontage needs the number of pieces in X and Y")
        name = str(self._in_directory(a[2])) if self.directory is not None else a[2]
        self._montage = _Montage(a[0], a[1], name, param_set=self._montage_param_set)

    @command
    def ParamSetToUseForMontage(self, a: Args) -> None:
        if abs(a[0]) not in (1, 2, 3):
            raise SEMerror(f"ParamSetToUseForMontage: {a[0]} must be 1, 2 or 3 (or negative)")
        self._montage_param_set = a[0] if a[0] > 0 else 1

    @command
    def SetMontageParams(self, a: Args) -> None:
        if self._montage is None:
            raise SEMerror("SetMontageParams needs an open montage file")

    @command
    def ReportNumMontagePieces(self, a: Args) -> float:
        m = self._montage
        return float(m.tiles_x * m.tiles_y) if m is not None else 1.0

    @command
    def Montage(self, a: Args) -> None:
        m = self._montage
        if m is None:
            raise SEMerror("The script contains a montage statement and montaging is not "
                           "activated")
        atlas = self._run(self.twin.atlas(m.tiles_x, m.tiles_y))
        m.pieces, m.overview = atlas.tiles, atlas.stitched
        self._push(m.pieces[len(m.pieces) // 2], _CONSET["S"])
        self.buffers["B"] = (m.overview, -1)

    @command
    def ReadFile(self, a: Args) -> None:
        m = self._montage
        if m is None or m.overview is None:
            raise SEMerror("Script stopped because of error reading from file")
        if a[0] != 0:
            raise SEMerror(f"Section {a[0]} does not exist in the montage file")
        self.buffers["B"] = (m.overview, -1)

    @command
    def ReadMontagePiece(self, a: Args) -> None:
        m = self._montage
        if m is None or not m.pieces:
            raise SEMerror("The current file is not a montage for line: ReadMontagePiece")
        x, y, z = a[:3]
        if not (1 <= x <= m.tiles_x and 1 <= y <= m.tiles_y and z == 0):
            raise SEMerror("Could not find piece in file for line: ReadMontagePiece")
        want = (x - 1, m.tiles_y - y)
        piece = next(p for p in m.pieces if p.tile == want)
        self.buffers[(a[3] or "B")[:1].upper()] = (piece, -1)

    @command
    def CloseFile(self, a: Args) -> None:
        if self._montage is None:
            raise SEMerror("There is no open file to close")
        self._montage = None

    @command
    def SaveToOtherFile(self, a: Args) -> None:
        image, _ = self._buffer(a[0])
        if a[1].upper() != "MRC":
            raise SEMerror(f"This model saves MRC files only, not {a[1]}")
        path = self._in_directory(a[3])
        if path.exists() and not self.allow_overwrite:
            raise SEMerror(f"File {path} exists and overwriting is not allowed")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mrc(path, image.data, image.pixel_size_a, None)

    # ---- navigator, buffers and alignment -------------------------------------------------------
    @command
    def OpenNavigator(self, a: Args) -> None:
        if a[0] is not None and self.navigator_open:
            raise SEMerror("The Navigator must not be open for line: OpenNavigator")
        self.navigator_open = True

    @command
    def BufImageToStageMatrix(self, a: Args) -> tuple[float, ...]:
        if not self.navigator_open:
            raise SEMerror("The Navigator must be open to execute line: BufImageToStageMatrix")
        image, _ = self._buffer(a[0])
        (a11, a12, b1), (a21, a22, b2) = image.image_to_stage
        # the twin's (col, row) is SerialEM's (x - ½, y - ½): d = b - A·(½, ½)
        return (a11, a12, a21, a22, b1 - 0.5 * (a11 + a12), b2 - 0.5 * (a21 + a22))

    @command
    def ImageProperties(self, a: Args) -> tuple[float, ...]:
        image, conset = self._buffer(a[0] or "A")
        h, w = image.data.shape[-2:]
        return (w, h, 1.0, image.exposure_time_s, image.pixel_size_a * _NM_PER_A, conset)

    @command
    def ImageConditions(self, a: Args) -> tuple[float, float]:
        image, _ = self._buffer(a[0])
        return image.dose_e_per_a2, float(image.magnification)

    @command
    def AlignTo(self, a: Args) -> float:
        moving, _ = self._buffer("A")
        reference, _ = self._buffer(a[0])
        if moving.data.shape != reference.data.shape:
            raise SEMerror("The images to align are not the same size")
        sx, sy = _phase_shift_px(moving.data, reference.data)
        (a11, a12, _), (a21, a22, _) = moving.image_to_stage
        shift_um = (a11 * sx + a12 * sy, a21 * sx + a22 * sy)
        self._align_px = (sx, sy, shift_um)
        if not a[1]:
            x, y = self.twin.state().image_shift_um
            self._run(self.twin.image_shift(x + shift_um[0], y + shift_um[1], absolute=True))
        return 0.0

    @command
    def ReportAlignShift(self, a: Args) -> tuple[float, ...]:
        sx, sy, (ux, uy) = self._align_px
        return sx, -sy, abs(ux) * 1e3, abs(uy) * 1e3, ux * 1e3, uy * 1e3

    def bufferImage(self, *args: Any) -> memoryview:
        """The buffer's pixels through the buffer protocol (``numpy.asarray`` reads them)."""
        self.calls.append("bufferImage")
        (buf,) = _parse_buffer_args(args)
        try:
            if len(buf) != 1 or not "A" <= buf <= "T":
                raise SEMmoduleError(f'"{buf}" is not a valid buffer specification')
            if self._stop_pressed:
                self._stop_pressed = False
                self._end_script()
                raise SEMexited("User STOP")
            if buf not in self.buffers:
                raise SEMmoduleError(f"There is no image in SerialEM buffer {buf} "
                                     f"({ord(buf) - ord('A')} 0)")
        except (SEMmoduleError, SEMexited) as exc:
            raise SystemError(_BUFFER_TYPE_ERROR) from exc
        data = np.ascontiguousarray(self.buffers[buf][0].data, dtype=np.float32)
        data.setflags(write=False)
        return data.data


def _parse_buffer_args(args: Args) -> Args:
    return parse_args("bufferImage", COMMANDS["bufferImage"].keys, args)[:1]


def _summed(image: TwinImage) -> npt.NDArray[np.float32]:
    data = image.data
    return np.asarray(data.sum(axis=0) if data.ndim == 3 else data, dtype=np.float32)


def _phase_shift_px(moving: npt.NDArray[np.float32],
                    reference: npt.NDArray[np.float32]) -> tuple[float, float]:
    """(dx, dy) pixels that ``moving`` is displaced by relative to ``reference`` (windowed
    phase correlation, to the nearest pixel)."""
    window = np.outer(np.hanning(moving.shape[0]), np.hanning(moving.shape[1]))
    f = (np.fft.fft2((moving - moving.mean()) * window)
         * np.conj(np.fft.fft2((reference - reference.mean()) * window)))
    corr = np.fft.ifft2(f / np.maximum(np.abs(f), 1e-12)).real
    row, col = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    return (float(col - w if col > w // 2 else col), float(row - h if row > h // 2 else row))
