"""Reading what SerialEM reports: values, the specimen image shift, images and their frames.

These run on the SerialEM thread inside a driver operation. The conventions, from the rows of
:data:`~scope_gateway.serialem_commands.COMMANDS`:

- one reported value comes back bare and several as a tuple (:func:`floats` takes either);
- ``ReportSpecimenShift`` reports µm on the specimen, or nothing without a calibration;
- ``BufImageToStageMatrix(buf, 1)`` maps *continuous* image coordinates with (0, 0) at the
  top-left corner of the image (NavHelper.cpp 3121-3148): pixel (col, row) is centred at
  (col + ½, row + ½), so the (col, row) → stage affine's offset is d + A·(½, ½);
- ``ImageProperties`` reports the pixel size in nm, ``ImageConditions`` the image's dose and
  magnification;
- ``ReportLastFrameFile`` reports (path, folder, name) on SerialEM's computer.

>>> floats(3.0, 1), floats((1.0, "x", 2.0), 1)
((3.0,), (1.0,))
>>> image_to_stage((2.0, 0.0, 0.0, -2.0, 100.0, 50.0))
((2.0, 0.0, 101.0), (0.0, -2.0, 49.0))
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from gridpilot.contracts import StagePosition
from gridpilot.errors import ScopeError
from gridpilot.storage.mrc import read_mrc

from .driver import Affine, Capture
from .serialem_session import SerialEMOptions

__all__ = ["capture", "floats", "image_to_stage", "specimen_shift", "values", "with_frames"]

logger = logging.getLogger(__name__)

_NM_TO_A: Final[float] = 10.0


def values(reported: Any) -> tuple[Any, ...]:
    """The reported values as a tuple (one value comes back bare)."""
    return tuple(reported) if isinstance(reported, tuple | list) else (reported,)


def floats(reported: Any, n: int) -> tuple[float, ...]:
    """The first ``n`` reported values as floats; a ScopeError when fewer came back."""
    got = values(reported)
    if len(got) < n:
        raise ScopeError(f"SerialEM reported {len(got)} values where {n} were expected")
    return tuple(float(v) for v in got[:n])


def specimen_shift(sem: Any) -> tuple[float, float]:
    """The image shift in µm on the specimen; a ScopeError when SerialEM has no calibration."""
    reported = sem.ReportSpecimenShift()
    if reported is None:
        raise ScopeError("SerialEM has no image-shift-to-specimen calibration at this "
                         "magnification (ReportSpecimenShift reported nothing)")
    x, y = floats(reported, 2)
    return x, y


def image_to_stage(matrix: tuple[float, ...]) -> Affine:
    """The (col, row, 1) → stage affine of ``BufImageToStageMatrix``'s six values."""
    a11, a12, a21, a22, dx, dy = matrix
    return (a11, a12, dx + 0.5 * (a11 + a12)), (a21, a22, dy + 0.5 * (a21 + a22))


def capture(sem: Any, buf: str, kind: Any, *, tile: tuple[int, int] | None = None) -> Capture:
    """The image in buffer ``buf`` with what SerialEM knows about it."""
    data: npt.NDArray[np.float32] = np.asarray(sem.bufferImage(buf), dtype=np.float32)
    _, _, _, exposure_s, pixel_nm, _ = floats(sem.ImageProperties(buf), 6)
    affine = image_to_stage(floats(sem.BufImageToStageMatrix(buf, 1), 6))
    dose, mag = floats(sem.ImageConditions(buf), 2)
    x, y, z = floats(sem.ReportStageXYZ(), 3)
    return Capture(
        kind=kind, data=data, pixel_size_a=pixel_nm * _NM_TO_A, magnification=int(mag),
        stage=StagePosition(x_um=x, y_um=y, z_um=z, tilt_deg=floats(sem.ReportTiltAngle(), 1)[0]),
        image_to_stage=affine, target_defocus_um=floats(sem.ReportTargetDefocus(), 1)[0],
        dose_e_per_a2=dose, exposure_time_s=exposure_s, tile=tile,
    )


def _local_path(options: SerialEMOptions, remote: str) -> Path | None:
    if not remote:
        return None
    o = options
    if o.frames_folder and o.frames_local is not None and remote.startswith(o.frames_folder):
        rest = remote[len(o.frames_folder):].replace("\\", "/").lstrip("/")
        return o.frames_local / rest
    return Path(remote)


def with_frames(sem: Any, options: SerialEMOptions, summed: Capture) -> Capture:
    """``summed`` with the frames of the last movie, when they are readable here."""
    remote = str(values(sem.ReportLastFrameFile())[0])
    local = _local_path(options, remote)
    if local is None or not local.is_file():
        logger.warning("frames saved by SerialEM at %s are not readable here; storing the "
                       "summed image (set GRIDPILOT_SCOPE_SERIALEM_FRAMES_LOCAL)", remote)
        return summed
    frames, _ = read_mrc(local)
    return Capture(**{**summed.__dict__, "data": np.asarray(frames, dtype=np.float32)})
