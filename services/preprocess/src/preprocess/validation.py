"""Input checks of the preprocess pipeline: every rejection names the offending value.

>>> check_scalars(pixel_size_a=0.0, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07,
...               dose_per_frame_e_per_a2=1.0)
Traceback (most recent call last):
...
gridpilot.errors.InvalidInput: pixel_size_a input should be greater than 0.1, got 0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from gridpilot.contracts import ExposureOptics, PreprocessParams
from gridpilot.errors import InvalidInput
from gridpilot.optics import electron_wavelength_a

from .spectra import alignment_grid

__all__ = [
    "MIN_SIDE_PX",
    "check_frames",
    "check_gain",
    "check_memory",
    "check_scalars",
    "estimate_memory_bytes",
]

#: Smallest frame side that leaves room for a CTF tile and a patch grid.
MIN_SIDE_PX: Final[int] = 128
# What the pipeline allocates (pipeline._CHUNK_FRAMES, pipeline._KEEP_SPECTRA_BYTES,
# patchmotion._MIN_PATCH_PX, ctf._MAX_NYQUIST_FRACTION), for the memory estimate.
_CHUNK_FRAMES: Final[int] = 8
_KEEP_SPECTRA_LIMIT_BYTES: Final[int] = 512 * 1024 * 1024
_MIN_PATCH_PX: Final[int] = 64
_NYQUIST_FRACTION: Final[float] = 0.95
#: (trials, bins) float64 arrays alive at once in the defocus search.
_TRIAL_ARRAYS: Final[int] = 8
#: Frames are scanned for NaN in blocks of this many pixels (bounded temporary memory).
_SCAN_BLOCK_PX: Final[int] = 1 << 24


def check_scalars(
    *, pixel_size_a: float, voltage_kv: float, cs_mm: float, amplitude_contrast: float, dose_per_frame_e_per_a2: float
) -> None:
    """Raise :class:`InvalidInput` for an optics or dose value outside its physical range.

    The ranges are those of :class:`gridpilot.contracts.ExposureOptics`, the one copy.
    """
    values = {"pixel_size_a": pixel_size_a, "voltage_kv": voltage_kv, "cs_mm": cs_mm,
              "amplitude_contrast": amplitude_contrast, "dose_per_frame_e_per_a2": dose_per_frame_e_per_a2}
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value)):
            raise InvalidInput(f"{name} must be a finite number, got {value}", field=name)
    try:
        ExposureOptics(**values)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        name = str(err["loc"][0])
        raise InvalidInput(f"{name} {err['msg'][0].lower()}{err['msg'][1:]}, got {values[name]}", field=name) from None


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


# ---- memory -------------------------------------------------------------------------------------
def estimate_memory_bytes(
    *, n_frames: int, shape: tuple[int, int], itemsize: int, pixel_size_a: float, voltage_kv: float,
    params: PreprocessParams,
) -> int:
    """Upper estimate of the memory :func:`preprocess.pipeline.preprocess_movie` needs, bytes.

    Parameters
    ----------
    n_frames : frames in the movie
    shape : (H, W) of a frame, px
    itemsize : bytes per stored pixel (1 for uint8 TIFF, 2 for int16, 4 for float32 MRC)
    pixel_size_a : pixel size, Å
    voltage_kv : acceleration voltage, kV
    params : the job's science parameters

    Returns
    -------
    int
        Bytes: the frames as stored, plus the float32 and Fourier working copies of alignment
        and dose weighting, the local-motion patch stacks, and the CTF defocus trial table.

    Notes
    -----
    Each term follows the allocation it bounds: frames are summed and Fourier-transformed in
    chunks of 8; the full spectra are kept when they fit 512 MB; the patch grid cuts
    (rows × columns) patches of at least 64 px from the ≤ 384-px alignment box of every frame;
    the CTF search scores one trial per π/4 of ring phase at the band's edge,
    (defocus_max − defocus_min) · 4 λ k² trials over tile / 2 radial bins. The coefficients
    were checked against tracemalloc peaks (``tests/test_limits.py``).

    >>> p = PreprocessParams()
    >>> round(estimate_memory_bytes(n_frames=24, shape=(1024, 1024), itemsize=4, pixel_size_a=1.0,
    ...                             voltage_kv=300.0, params=p) / 2**20)
    603
    """
    n, (h, w) = n_frames, shape
    hw, half = h * w, h * (w // 2 + 1)
    chunk = min(_CHUNK_FRAMES, n)
    total = n * hw * itemsize                      # the frames as stored
    total += hw * (8 * 3 + 2)                      # frame sum, its deviations, defect masks
    total += chunk * (hw * 4 + half * 8 * 3)       # float32 chunk, its spectrum and FFT scratch
    if n * half * 8 <= _KEEP_SPECTRA_LIMIT_BYTES:
        total += n * half * 8                      # full spectra kept for the sums
    box = alignment_grid(shape, pixel_size_a, params.align_b_factor_a2).box
    total += n * box[0] * (box[1] // 2 + 1) * 8 * 3  # cropped spectra, shifted copies
    total += half * 16 * 4 + hw * 4 * 8            # sums (plain, weighted, halves), images
    ny, nx = params.patches
    if ny * nx > 1 and n >= 3:
        ph, pw = (max(2 * b // (k + 1), _MIN_PATCH_PX) for b, k in zip(box, (ny, nx), strict=True))
        total += ny * nx * n * ph * pw * 4 * 4     # patch stacks, their spectra and crops
    k_hi = min(1.0 / params.ctf_max_res_a, _NYQUIST_FRACTION * 0.5 / pixel_size_a)
    step_a = 1.0 / (4.0 * electron_wavelength_a(voltage_kv) * k_hi**2)
    trials = (params.defocus_max_a - params.defocus_min_a) / step_a + 2
    tile = min(params.tile_size_px, h - h % 2, w - w % 2)
    total += int(trials * (tile // 2) * 8 * _TRIAL_ARRAYS)  # ring models, windows, correlations
    return int(total)


def check_memory(estimate_bytes: int, limit_bytes: int, *, what: str) -> None:
    """Refuse a job whose estimated memory need exceeds the configured limit.

    Raises:
        InvalidInput: ``estimate_bytes > limit_bytes``; the message gives both numbers.
    """
    if estimate_bytes > limit_bytes:
        raise InvalidInput(
            f"{what} needs about {estimate_bytes / 2**20:,.0f} MB, more than this service's "
            f"limit of {limit_bytes / 2**20:,.0f} MB: use fewer frames, a smaller frame, fewer "
            "patches or a narrower defocus range",
            field="movie", estimate_mb=round(estimate_bytes / 2**20), limit_mb=round(limit_bytes / 2**20))
