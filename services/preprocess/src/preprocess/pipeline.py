"""One movie in, its quality figures and products out: the function the service wraps.

gain → defect pixels → global alignment → local (patch) alignment → plain and dose-weighted
sums → CTF → ice → diagnostic PNG. Frames are streamed in small chunks, so a 4k movie never
needs its float32 copy or all its full-size spectra in memory at once.

>>> import numpy as np
>>> from gridpilot.contracts import PreprocessParams
>>> frames = np.random.default_rng(0).poisson(1.0, (4, 256, 256)).astype(np.float32)
>>> out = preprocess_movie(frames, pixel_size_a=1.0, voltage_kv=300.0, cs_mm=2.7,
...                        amplitude_contrast=0.07, dose_per_frame_e_per_a2=1.0,
...                        params=PreprocessParams(tile_size_px=128))
>>> out.aligned_sum.shape, out.ctf.confident
((256, 256), False)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from gridpilot.contracts import CTFFit, MotionSummary, PreprocessParams
from gridpilot.optics import frequency_grid

from .ctf import CTFEstimate, estimate_ctf, shift_defocus
from .diagnostics import render_diagnostic_png
from .doseweight import DoseWeightedSums, frame_exposures_e_per_a2, sum_aligned_spectra
from .ice import IceEstimate, estimate_ice
from .motion import GlobalAlignment, refine_shifts
from .patchmotion import LocalMotion, align_patches
from .powerspec import power_spectrum
from .spectra import alignment_grid, crop_spectrum, fft_workers, shift_spectra
from .validation import check_frames, check_gain, check_scalars

__all__ = ["PreprocessOutput", "motion_summary", "preprocess_movie"]

logger = logging.getLogger(__name__)

#: Frames converted and transformed together.
_CHUNK_FRAMES: Final[int] = 8
#: Full-size spectra are kept between the two passes when they fit in this many bytes.
_KEEP_SPECTRA_BYTES: Final[int] = 512 * 1024 * 1024
#: Early drift is the path over the first frames, where beam-induced motion is fastest.
EARLY_FRAMES: Final[int] = 4
#: Largest specimen displacement searched for, Å.
_MAX_SHIFT_A: Final[float] = 250.0
# Defect pixels: a summed pixel more than this many robust sigmas above the median is hot;
# one that never counts while the median sum exceeds the dead-pixel floor is dead.
_HOT_SIGMAS: Final[float] = 12.0
_DEAD_MEDIAN_FLOOR: Final[float] = 20.0


@dataclass(frozen=True, eq=False)
class PreprocessOutput:
    """Everything :func:`preprocess_movie` measured and made.

    Attributes
    ----------
    aligned_sum : (H, W) float32, Σ of the aligned frames (electrons per pixel)
    dose_weighted_sum : (H, W) float32, Σ q_i F_i / sqrt(Σ q_i²) (Grant & Grigorieff 2015)
    ctf : the contract's CTF fit
    motion : the contract's motion summary (trajectory in Å)
    ice : ice thickness and its method
    trajectory_px : (N, 2) specimen shift (x, y) of each frame relative to frame 0, px
    local_motion : patch trajectories and their polynomial model, or ``None``
    ctf_estimate : the full CTF fit (spectrum, equi-phase curves)
    diagnostic_png : spectrum with the fitted model, fit curves and drift plot
    timings_s : seconds per stage
    defect_pixels : pixels replaced as hot or dead
    """

    aligned_sum: npt.NDArray[np.float32]
    dose_weighted_sum: npt.NDArray[np.float32]
    ctf: CTFFit
    motion: MotionSummary
    ice: IceEstimate
    trajectory_px: npt.NDArray[np.float64]
    local_motion: LocalMotion | None
    ctf_estimate: CTFEstimate
    diagnostic_png: bytes
    timings_s: dict[str, float] = field(default_factory=dict)
    defect_pixels: int = 0


def motion_summary(
    shifts_px: npt.NDArray[np.float64], pixel_size_a: float, local: LocalMotion | None = None
) -> MotionSummary:
    """Trajectory in Å, total path length and the path over the first ``EARLY_FRAMES`` frames.

    Notes
    -----
    total = Σ_i |s_{i+1} − s_i| · p; early = the same sum over frames 0 … 3.
    """
    steps = np.linalg.norm(np.diff(shifts_px, axis=0), axis=1) * pixel_size_a
    traj = [(float(x * pixel_size_a), float(y * pixel_size_a)) for x, y in shifts_px]
    return MotionSummary(
        total_drift_a=float(steps.sum()),
        early_drift_a=float(steps[: EARLY_FRAMES - 1].sum()),
        trajectory_a=traj,
        local_rms_a=float(local.rms_px * pixel_size_a) if local is not None else 0.0,
    )


class _Frames:
    """Gain-corrected, defect-free float32 chunks of a movie (read-only view of the input)."""

    def __init__(
        self,
        frames: npt.NDArray[np.generic] | list[npt.NDArray[np.generic]],
        gain: npt.NDArray[np.float32] | None,
    ) -> None:
        self.frames = frames
        self.gain = gain
        self.n = len(frames)
        h, w = frames[0].shape
        self.shape: tuple[int, int] = (int(h), int(w))
        total = np.zeros(self.shape, dtype=np.float64)
        for start in range(0, self.n, _CHUNK_FRAMES):
            part = self.frames[start : start + _CHUNK_FRAMES]
            total += (part if isinstance(part, np.ndarray) else np.stack(part)).sum(axis=0, dtype=np.float32)
        if gain is not None:
            total *= gain  # Σ (g · raw) = g · Σ raw
        self.mean_e_per_px = float(total.mean()) / self.n
        med = float(np.median(total))
        mad = float(np.median(np.abs(total - med))) * 1.4826
        hot = total > med + _HOT_SIGMAS * max(mad, np.sqrt(max(med, 1.0)))
        dead = (total <= 0) & (med > _DEAD_MEDIAN_FLOOR)
        self.defects = hot | dead
        self.n_defects = int(self.defects.sum())

    def chunks(self) -> Iterator[npt.NDArray[np.float32]]:
        """(≤ 8, H, W) float32 chunks, gain applied, defects replaced by each frame's mean,
        mean removed. The same buffer is reused for every chunk (fresh large allocations cost
        page faults): consume a chunk before asking for the next."""
        buffer = np.empty((min(_CHUNK_FRAMES, self.n), *self.shape), dtype=np.float32)
        for start in range(0, self.n, _CHUNK_FRAMES):
            part = self.frames[start : start + _CHUNK_FRAMES]
            chunk = buffer[: len(part)]
            if isinstance(part, np.ndarray):
                np.copyto(chunk, part, casting="unsafe")
            else:
                for j, frame in enumerate(part):
                    np.copyto(chunk[j], frame, casting="unsafe")
            if self.gain is not None:
                chunk *= self.gain
            means = chunk.mean(axis=(-2, -1), keepdims=True, dtype=np.float64).astype(np.float32)
            if self.n_defects:
                chunk[:, self.defects] = means[:, :, 0]
            chunk -= means
            yield chunk


def preprocess_movie(
    frames: npt.NDArray[np.generic] | Sequence[npt.NDArray[np.generic]],
    *,
    pixel_size_a: float,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    dose_per_frame_e_per_a2: float,
    params: PreprocessParams,
    gain: npt.NDArray[np.generic] | None = None,
) -> PreprocessOutput:
    """Align, dose-weight and CTF-fit one movie.

    Parameters
    ----------
    frames : (N, H, W) counts (electrons per pixel per frame), a sequence of (H, W) frames, or
        one (H, W) image; integer or float
    pixel_size_a, voltage_kv, cs_mm, amplitude_contrast : acquisition optics
    dose_per_frame_e_per_a2 : exposure per frame measured over vacuum, e/Å²
    params : alignment and CTF parameters (carried in the job message)
    gain : (H, W) gain reference multiplying raw frames (MotionCor2's ``-Gain``)

    Returns
    -------
    PreprocessOutput (trajectory: specimen displacement of each frame relative to frame 0).

    Raises
    ------
    gridpilot.errors.InvalidInput
        For a value out of range, frames of different shapes, NaNs, or too few pixels.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    check_scalars(
        pixel_size_a=pixel_size_a, voltage_kv=voltage_kv, cs_mm=cs_mm,
        amplitude_contrast=amplitude_contrast, dose_per_frame_e_per_a2=dose_per_frame_e_per_a2,
    )
    checked = check_frames(frames)
    h, w = checked[0].shape
    stack = _Frames(checked, check_gain(gain, (int(h), int(w))))
    lap("prepare")
    shape, n = stack.shape, stack.n
    grid = alignment_grid(shape, pixel_size_a, params.align_b_factor_a2)
    binning = _alignment_binning(shape, grid.box)
    keep = binning == 1 and n * shape[0] * (shape[1] // 2 + 1) * 8 <= _KEEP_SPECTRA_BYTES
    kept: list[npt.NDArray[np.complex64]] = []
    crops = []
    for chunk in stack.chunks():
        if binning > 1:
            # Only the low frequencies are aligned: a real-space bin first makes the FFT b² cheaper.
            crops.append(crop_spectrum(sfft.rfft2(_bin(chunk, binning), workers=fft_workers()), grid))
            continue
        spectrum = sfft.rfft2(chunk, workers=fft_workers())
        crops.append(crop_spectrum(spectrum, grid))
        if keep:
            kept.append(spectrum.astype(np.complex64, copy=False))
    crop = np.concatenate(crops)
    lap("fft")
    alignment: GlobalAlignment = refine_shifts(
        crop, grid, pixel_size_a=pixel_size_a, dose_per_frame_e_per_a2=dose_per_frame_e_per_a2,
        max_shift_px=_MAX_SHIFT_A / pixel_size_a,
    )
    shifts = alignment.shifts_px
    lap("align_global")
    local = None
    if params.patches[0] * params.patches[1] > 1 and n >= 3:
        local = align_patches(
            shift_spectra(crop, grid.fy, grid.fx, shifts), grid, patches=params.patches, pixel_size_a=pixel_size_a,
            b_factor_a2=params.align_b_factor_a2, dose_per_frame_e_per_a2=dose_per_frame_e_per_a2,
            margin_px=float(np.abs(shifts).max(initial=0.0)) + 1.0,
        )
    lap("align_local")
    sums = _sums(stack, kept if keep else None, shifts, pixel_size_a, voltage_kv, dose_per_frame_e_per_a2)
    aligned = np.asarray(sfft.irfft2(sums.plain, s=shape, workers=fft_workers()), dtype=np.float32)
    weighted = np.asarray(sfft.irfft2(sums.weighted, s=shape, workers=fft_workers()), dtype=np.float32)
    halves = None
    if sums.even is not None:
        even = np.asarray(sfft.irfft2(sums.even, s=shape, workers=fft_workers()), dtype=np.float32)
        halves = (even, aligned - even)
    aligned += np.float32(stack.mean_e_per_px * n)
    weighted += np.float32(stack.mean_e_per_px * n / np.sqrt(n))
    lap("sums")
    tile = params.tile_size_px
    spectrum_ps = power_spectrum(aligned, pixel_size_a=pixel_size_a, tile_px=tile)
    half_ps = None if halves is None else tuple(power_spectrum(h, pixel_size_a=pixel_size_a, tile_px=tile) for h in halves)
    ctf = estimate_ctf(
        spectrum_ps, voltage_kv=voltage_kv, cs_mm=cs_mm, amplitude_contrast=amplitude_contrast, params=params,
        half_spectra=half_ps,  # type: ignore[arg-type]
    )
    lap("ctf")
    ice = estimate_ice(
        mean_e_per_px_per_frame=stack.mean_e_per_px, dose_per_frame_e_per_a2=dose_per_frame_e_per_a2,
        pixel_size_a=pixel_size_a, quality=ctf.quality, ctf=ctf.params, k_low_per_a=1.0 / ctf.band_a[0],
    )
    if ice.rings_nm is not None and ice.rings_defocus_offset_a != 0.0:
        ctf = shift_defocus(ctf, ice.rings_defocus_offset_a, defocus_range_a=(params.defocus_min_a, params.defocus_max_a))
    summary = motion_summary(shifts, pixel_size_a, local)
    lap("ice")
    png = render_diagnostic_png(ctf, shifts * pixel_size_a, ice=ice, local=local, pixel_size_a=pixel_size_a)
    lap("diagnostics")
    timings["total"] = sum(timings.values())
    logger.info(
        "preprocessed %d frames of %d x %d: defocus %.0f/%.0f A, fit %.1f A, confident %s, drift %.1f A in %.2f s",
        n, shape[0], shape[1], ctf.params.defocus1_a, ctf.params.defocus2_a, ctf.quality.fit_resolution_a,
        ctf.quality.confident, summary.total_drift_a, timings["total"],
    )
    return PreprocessOutput(
        aligned, weighted, ctf.to_contract(), summary, ice, shifts, local, ctf, png, timings, stack.n_defects,
    )


def _alignment_binning(shape: tuple[int, int], box: tuple[int, int]) -> int:
    """Real-space binning that keeps twice the alignment box's band (1 = none)."""
    b = 1
    while min(shape[0] // (2 * b), shape[1] // (2 * b)) >= 2 * max(box):
        b *= 2
    return b


def _bin(chunk: npt.NDArray[np.float32], b: int) -> npt.NDArray[np.float32]:
    """Sum b × b blocks of each frame (b a power of 2), (m, H, W) → (m, H // b, W // b).

    Notes
    -----
    The box sum attenuates the kept band (|f| ≤ 1/(4b) cycles per pixel) by at most
    sinc(¼)² ≈ 0.81 and alike for every frame, so the correlations only gain a weight. The
    binned grid's frequencies are the full grid's, so its spectrum crops like the full one.
    """
    out = chunk
    while b > 1:
        h, w = out.shape[-2] // 2 * 2, out.shape[-1] // 2 * 2
        cols = out[..., :h, 0:w:2] + out[..., :h, 1:w:2]
        out = cols[..., 0::2, :] + cols[..., 1::2, :]
        b //= 2
    return np.asarray(out, dtype=np.float32)


def _sums(
    stack: _Frames,
    kept: list[npt.NDArray[np.complex64]] | None,
    shifts_px: npt.NDArray[np.float64],
    pixel_size_a: float,
    voltage_kv: float,
    dose_per_frame_e_per_a2: float,
) -> DoseWeightedSums:
    """Plain, dose-weighted and even-frame sums of the frames shifted into register (rfft2).

    The spectra (kept or recomputed) are modified in place and must not be used afterwards.
    """
    h, w = stack.shape
    fy = np.fft.fftfreq(h)
    fx = np.fft.rfftfreq(w)
    kx, ky = frequency_grid((h, w), pixel_size_a, rfft=True)
    k = np.sqrt(kx**2 + ky**2)

    def spectra() -> Iterator[npt.NDArray[np.complex64]]:
        chunks = iter(kept) if kept is not None else (sfft.rfft2(c, workers=fft_workers()) for c in stack.chunks())
        i = 0
        for chunk in chunks:
            for spectrum in chunk:
                # In place: each spectrum is used once (fresh full-size arrays cost page faults).
                spectrum *= np.exp(2j * np.pi * fy * shifts_px[i, 1]).astype(np.complex64)[:, None]
                spectrum *= np.exp(2j * np.pi * fx * shifts_px[i, 0]).astype(np.complex64)[None, :]
                yield spectrum
                i += 1

    exposures = frame_exposures_e_per_a2(stack.n, dose_per_frame_e_per_a2)
    # Even and odd half-movies let the CTF fit be checked on independent noise (≥ 4 frames).
    return sum_aligned_spectra(
        spectra(), k_per_a=k, exposures_e_per_a2=exposures, voltage_kv=voltage_kv, split_even_odd=stack.n >= 4,
    )
