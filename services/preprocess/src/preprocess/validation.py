"""Input checks of the preprocess pipeline: every rejection names the offending value.

>>> check_scalars(pixel_size_a=0.0, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07,
...               dose_per_frame_e_per_a2=1.0)
Traceback (most recent call last):
...
gridpilot.errors.InvalidInput: pixel_size_a must be in (0.1, 20] Å, got 0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot.errors import InvalidInput

__all__ = ["MIN_SIDE_PX", "check_frames", "check_gain", "check_scalars"]

#: Smallest frame side that leaves room for a CTF tile and a patch grid.
MIN_SIDE_PX: Final[int] = 128
# The ranges of gridpilot.contracts.PreprocessMovieJob.
_PIXEL_RANGE_A: Final[tuple[float, float]] = (0.1, 20.0)
_VOLTAGE_RANGE_KV: Final[tuple[float, float]] = (60.0, 400.0)
_CS_RANGE_MM: Final[tuple[float, float]] = (0.0, 10.0)
_MAX_DOSE_PER_FRAME: Final[float] = 20.0
#: Frames are scanned for NaN in blocks of this many pixels (bounded temporary memory).
_SCAN_BLOCK_PX: Final[int] = 1 << 24


def check_scalars(
    *, pixel_size_a: float, voltage_kv: float, cs_mm: float, amplitude_contrast: float, dose_per_frame_e_per_a2: float
) -> None:
    """Raise :class:`InvalidInput` for an optics or dose value outside its physical range."""
    checks = (
        ("pixel_size_a", pixel_size_a, _PIXEL_RANGE_A[0] < pixel_size_a <= _PIXEL_RANGE_A[1], "in (0.1, 20] Å"),
        ("voltage_kv", voltage_kv, _VOLTAGE_RANGE_KV[0] <= voltage_kv <= _VOLTAGE_RANGE_KV[1], "in [60, 400] kV"),
        ("cs_mm", cs_mm, _CS_RANGE_MM[0] <= cs_mm <= _CS_RANGE_MM[1], "in [0, 10] mm"),
        ("amplitude_contrast", amplitude_contrast, 0.0 <= amplitude_contrast < 1.0, "in [0, 1)"),
        (
            "dose_per_frame_e_per_a2", dose_per_frame_e_per_a2,
            0.0 < dose_per_frame_e_per_a2 <= _MAX_DOSE_PER_FRAME, "in (0, 20] e/Å²",
        ),
    )
    for name, value, ok, wanted in checks:
        if not (isinstance(value, int | float) and math.isfinite(value) and ok):
            raise InvalidInput(f"{name} must be {wanted}, got {value}", field=name)


def check_frames(
    frames: npt.NDArray[np.generic] | Sequence[npt.NDArray[np.generic]],
) -> npt.NDArray[np.generic] | list[npt.NDArray[np.generic]]:
    """Check a movie: (N, H, W) array, a sequence of (H, W) frames, or one (H, W) image.

    Returns an (N, H, W) array, or a list of (H, W) frames when given a sequence (not
    stacked, to avoid a copy). Raises :class:`InvalidInput` for mismatched shapes, a wrong
    number of dimensions, a non-numeric type, too few pixels, or NaN/Inf values.
    """
    if isinstance(frames, np.ndarray):
        if frames.ndim == 2:
            frames = frames[None]
        if frames.ndim != 3:
            raise InvalidInput(f"frames must be (N, H, W) or (H, W), got shape {frames.shape}", field="frames")
        stack: list[npt.NDArray[np.generic]] | npt.NDArray[np.generic] = frames
        shapes = {frames.shape[1:]}
        dtypes = {frames.dtype}
    else:
        stack = [np.asarray(f) for f in frames]
        if not stack:
            raise InvalidInput("frames is empty", field="frames")
        shapes = {f.shape for f in stack}
        dtypes = {f.dtype for f in stack}
        if len(shapes) > 1:
            raise InvalidInput(f"frames have different shapes: {sorted(shapes)}", field="frames")
        if stack[0].ndim != 2:
            raise InvalidInput(f"each frame must be 2D, got shape {stack[0].shape}", field="frames")
    if len(stack) == 0:
        raise InvalidInput("frames is empty", field="frames")
    for dt in dtypes:
        if not (np.issubdtype(dt, np.integer) or np.issubdtype(dt, np.floating)) or dt == np.bool_:
            raise InvalidInput(f"frames must be integer or float, got dtype {dt}", field="frames")
    (h, w), = shapes
    if min(h, w) < MIN_SIDE_PX:
        raise InvalidInput(f"frames of {h} × {w} px are too small: each side needs ≥ {MIN_SIDE_PX} px", field="frames")
    for i, frame in enumerate(stack):
        if np.issubdtype(frame.dtype, np.floating):
            flat = frame.reshape(-1)
            for start in range(0, flat.size, _SCAN_BLOCK_PX):
                if not np.isfinite(flat[start : start + _SCAN_BLOCK_PX]).all():
                    raise InvalidInput(f"frame {i} contains NaN or Inf values", field="frames")
    return stack


def check_gain(gain: npt.NDArray[np.generic] | None, shape: tuple[int, int]) -> npt.NDArray[np.float32] | None:
    """A gain reference must match the frames, be finite and positive where it matters."""
    if gain is None:
        return None
    g = np.asarray(gain)
    if g.shape != shape:
        raise InvalidInput(f"gain reference shape {g.shape} does not match the frames' {shape}", field="gain")
    g = g.astype(np.float32)
    if not np.isfinite(g).all():
        raise InvalidInput("gain reference contains NaN or Inf values", field="gain")
    if not float(g.mean()) > 0:
        raise InvalidInput(f"gain reference mean must be positive, got {float(g.mean()):.3g}", field="gain")
    return g
