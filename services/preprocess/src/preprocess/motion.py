"""Global frame alignment against the leave-one-out sum, robust at realistic low dose.

Each frame is correlated with the sum of all *other* frames (Grant & Grigorieff 2015; Zheng et
al. 2017) with a B-factor low-pass on the cross-power spectrum, and the shifts are re-applied
(Fourier phase ramps) until they converge. Two stages:

1. **coarse** — whole correlation maps on a small Fourier-cropped grid, the peak found within
   the search window and refined by a parabolic fit; when one frame's peak is too weak, the
   cross-power spectra of neighbouring frames are averaged (frame grouping);
2. **fine** — on the B-factor-limited grid, re-weighted by a Wiener filter from the measured
   spectral SNR, each frame's sub-pixel residual is found by Newton steps on its correlation,
   computed from Fourier moments of the cross-power spectrum, with its Fisher information;
   the per-frame estimates are fused with a smoothness prior on the trajectory (a banded
   least-squares solve, a Kalman smoother in effect), so that a frame with little signal
   borrows from its neighbours and a frame with plenty keeps its own shift.

Sign convention (the twin's, ``gridpilot_sim.exposure.motion``): ``shifts_px[i] = (sx, sy)`` is the
displacement of the specimen in frame i relative to frame 0 — what sits at pixel (x, y) in
frame 0 sits at (x + sx, y + sy) in frame i. x is the last array axis (columns), y the first
(rows). Aligning frame i shifts it by −s_i.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> base = rng.normal(size=(128, 128)).astype(np.float32)
>>> frames = np.stack([np.roll(base, (0, 2 * i), axis=(0, 1)) for i in range(4)])
>>> result = align_frames(frames, pixel_size_a=1.0, b_factor_a2=20.0)
>>> np.round(result.shifts_px[:, 0], 1).tolist()
[0.0, 2.0, 4.0, 6.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from .coarsealign import coarse_align, find_peaks
from .spectra import (
    AlignmentGrid,
    alignment_grid,
    crop_spectrum,
    cross_power,
    fft_workers,
    half_plane_multiplicity,
    shift_spectra,
)

__all__ = ["GlobalAlignment", "align_frames", "align_to_single_frame", "refine_shifts"]

#: Largest specimen displacement searched for, Å.
_MAX_SHIFT_A: Final[float] = 250.0
_FINE_ITERATIONS: Final[int] = 5
#: The fine stage stops when no frame moves by more than this (px).
_CONVERGED_PX: Final[float] = 0.02
#: A Newton step is trusted up to this length (px); longer ones are clipped.
_MAX_NEWTON_STEP_PX: Final[float] = 1.0
#: Rings on either side averaged when the spectral SNR is measured.
_WIENER_SMOOTH_RINGS: Final[int] = 4
#: Newton steps taken towards each frame's own peak per iteration.
_NEWTON_STEPS: Final[int] = 3
#: Whole-pixel search radius (cropped px) before the first Newton steps.
_FINE_SEARCH_PX: Final[int] = 3
#: A frame whose peak lies more than this many standard errors off the fused track is down-weighted.
_OUTLIER_SIGMAS: Final[float] = 4.0
# Smoothness prior on the trajectory's second difference (Å per frame²): beam-induced motion
# A (1 − exp(−N/N₀)), allowed generously (A = 40 Å, N₀ = 2 e/Å²; typical: A 5–20 Å, N₀ 2–5),
# on top of a random walk of up to ~0.3 Å per frame (TWIN-PHYSICS.md; Zheng et al. 2017).
_PRIOR_JUMP_A: Final[float] = 40.0
_PRIOR_JUMP_EXPOSURE_E_PER_A2: Final[float] = 2.0
_PRIOR_WALK_A: Final[float] = 0.3


@dataclass(frozen=True)
class GlobalAlignment:
    """Per-frame specimen shifts.

    Attributes
    ----------
    shifts_px : (..., N, 2) shifts (x, y) in full-size pixels, frame 0 at the origin
    precision_px : (..., N) estimated standard error of each frame's shift after fusion, px
    iterations : fine-stage iterations run
    converged : whether the last update fell below the tolerance
    """

    shifts_px: npt.NDArray[np.float64]
    precision_px: npt.NDArray[np.float64]
    iterations: int
    converged: bool


@dataclass(frozen=True)
class _MomentWeights:
    """Per-frequency weights (M, k) of the Fourier moments that give g, H and Var(g)."""

    gradient: npt.NDArray[np.float32]  # c k_x, c k_y
    hessian: npt.NDArray[np.float32]  # c k_x², c k_x k_y, c k_y²
    variance: npt.NDArray[np.float32]  # c² k_x², c² k_x k_y, c² k_y²


def _moment_weights(grid: AlignmentGrid) -> _MomentWeights:
    c = np.broadcast_to(half_plane_multiplicity(grid), grid.weight.shape).reshape(-1).astype(np.float64)
    kx = np.broadcast_to(grid.fx[None, :], grid.weight.shape).reshape(-1)
    ky = np.broadcast_to(grid.fy[:, None], grid.weight.shape).reshape(-1)
    quad = np.stack([kx * kx, kx * ky, ky * ky], axis=1)
    return _MomentWeights(
        np.stack([c * kx, c * ky], axis=1).astype(np.float32),
        (c[:, None] * quad).astype(np.float32),
        ((c * c)[:, None] * quad).astype(np.float32),
    )


def _sym(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(..., 3) upper triangle (xx, xy, yy) → (..., 2, 2)."""
    return np.stack([np.stack([m[..., 0], m[..., 1]], -1), np.stack([m[..., 1], m[..., 2]], -1)], -2)


def _moments(
    product: npt.NDArray[np.complex64], offsets_px: npt.NDArray[np.float64], grid: AlignmentGrid, weights: _MomentWeights
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Gradient (..., N, 2) and Hessian (..., N, 2, 2) of C_i(x) = Σ c Re(P_i e^{2πi k·x}) at
    x = ``offsets_px`` (full-size px).

    Notes
    -----
    With P' = P e^{2πi k·x}: ∇C = −2π Σ c k Im P', ∇²C = −4π² Σ c k kᵀ Re P'.
    """
    moved = shift_spectra(product, grid.fy, grid.fx, offsets_px)
    lead = moved.shape[:-2]
    g = -2.0 * np.pi * (moved.imag.reshape(*lead, -1) @ weights.gradient).astype(np.float64)
    h = -4.0 * np.pi**2 * (moved.real.reshape(*lead, -1) @ weights.hessian).astype(np.float64)
    return g, _sym(h)


def _gradient_variance(product: npt.NDArray[np.complex64], weights: _MomentWeights) -> npt.NDArray[np.float64]:
    """Var(∇C) ≈ 2π² Σ c² k kᵀ |P|² (terms of random phase), (..., N, 2, 2)."""
    lead = product.shape[:-2]
    abs2 = (product.real**2 + product.imag**2).reshape(*lead, -1)
    return _sym(2.0 * np.pi**2 * (abs2 @ weights.variance).astype(np.float64))


def _frame_peaks(
    product: npt.NDArray[np.complex64], grid: AlignmentGrid, weights: _MomentWeights, start_px: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Each frame's own correlation peak, by Newton steps from ``start_px``: (x*, H at x*,
    whether H is negative definite there). The other frames stay where they are."""
    x = np.array(start_px, dtype=np.float64)
    for _ in range(_NEWTON_STEPS):
        g, h = _moments(product, x, grid, weights)
        ok = (h[..., 0, 0] < 0) & (np.linalg.det(h) > 0)
        safe = np.where(ok[..., None, None], h, -np.eye(2))
        step = np.where(ok[..., None], -np.linalg.solve(safe, g[..., None])[..., 0], 0.0)
        length = np.linalg.norm(step, axis=-1, keepdims=True)
        x += step * np.minimum(1.0, _MAX_NEWTON_STEP_PX / np.maximum(length, 1e-12))
    _, h = _moments(product, x, grid, weights)
    return x, h, (h[..., 0, 0] < 0) & (np.linalg.det(h) > 0)


def _wiener_weight(
    spectra: npt.NDArray[np.complex64], grid: AlignmentGrid, shifts: npt.NDArray[np.float64]
) -> AlignmentGrid:
    """The grid with its B-factor weight replaced by one set by the measured spectral SNR.

    Notes
    -----
    With frames roughly in register, Σ_{i≠j} G_i conj(G_j) = |Σ G|² − Σ |G|² estimates
    N (N − 1) times the signal power per frame and Σ |G|² / N − signal the noise power, in
    rings of the crop grid (pooled over patches, smoothed over ±4 rings). The weight on the
    cross-power spectrum is W = (N − 1) SNR / (1 + (N − 1) SNR): a Wiener filter of the
    leave-one-out reference, which keeps every frequency that carries signal and no other. At
    realistic dose it beats any fixed B-factor (thin ice: 1.7 → 0.7 px on the twin).
    """
    n = spectra.shape[-3]
    g = shift_spectra(spectra, grid.fy, grid.fx, shifts)
    total = g.sum(axis=-3)
    together = (total.real**2 + total.imag**2).reshape(-1, *grid.weight.shape).sum(axis=0)
    apart = (g.real**2 + g.imag**2).reshape(-1, *grid.weight.shape).sum(axis=0)
    ring = np.rint(np.sqrt(grid.fy[:, None] ** 2 + grid.fx[None, :] ** 2) * grid.full_shape[0]).astype(np.int64)
    count = np.maximum(np.bincount(ring.ravel()), 1)
    kernel = np.ones(2 * _WIENER_SMOOTH_RINGS + 1) / (2 * _WIENER_SMOOTH_RINGS + 1)

    def smooth(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        padded = np.pad(v / count, _WIENER_SMOOTH_RINGS, mode="edge")
        return np.asarray(np.convolve(padded, kernel, mode="valid"))

    signal = smooth(np.bincount(ring.ravel(), (together - apart).ravel()).astype(np.float64)) / (n * (n - 1))
    noise = smooth(np.bincount(ring.ravel(), apart.ravel()).astype(np.float64)) / n - signal
    snr = np.clip(signal, 0.0, None) / np.maximum(noise, 1e-30)
    if not np.any(snr > 0):
        return grid
    wiener = (n - 1) * snr / (1.0 + (n - 1) * snr)
    weight = np.where(grid.weight > 0, wiener[ring], 0.0).astype(np.float32)
    return AlignmentGrid(grid.full_shape, grid.box, grid.fy, grid.fx, weight, grid.scale_yx)


def _prior_precision(n: int, pixel_size_a: float, dose_per_frame_e_per_a2: float | None) -> npt.NDArray[np.float64]:
    """Q = Dᵀ diag(1/σ_i²) D for the second differences D of a trajectory in px (N × N).

    σ_i (Å per frame²) allows the early beam-induced jump, A (D/N₀)² exp(−N_i/N₀), on top of a
    random walk; without a dose only the random-walk term is used.
    """
    if n < 3:
        return np.zeros((n, n))
    exposure = (np.arange(1, n - 1) + 0.5) * (dose_per_frame_e_per_a2 or 0.0)
    jump = 0.0
    if dose_per_frame_e_per_a2:
        jump = _PRIOR_JUMP_A * (dose_per_frame_e_per_a2 / _PRIOR_JUMP_EXPOSURE_E_PER_A2) ** 2
    sigma_px = np.sqrt(_PRIOR_WALK_A**2 + (jump * np.exp(-exposure / _PRIOR_JUMP_EXPOSURE_E_PER_A2)) ** 2) / pixel_size_a
    d = np.zeros((n - 2, n))
    idx = np.arange(n - 2)
    d[idx, idx], d[idx, idx + 1], d[idx, idx + 2] = 1.0, -2.0, 1.0
    return np.asarray(d.T @ (d / sigma_px[:, None] ** 2))


def _fuse(
    targets: npt.NDArray[np.float64], info: npt.NDArray[np.float64], prior: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """argmin_u Σ (u_i − t_i)ᵀ I_i (u_i − t_i) + Σ_axes u_aᵀ Q u_a, and the posterior std of u_i.

    targets (..., N, 2), info (..., N, 2, 2), prior Q (N, N). The 2N unknowns are ordered
    (x_0, y_0, x_1, y_1, …).
    """
    n = targets.shape[-2]
    a = np.zeros((*targets.shape[:-2], 2 * n, 2 * n))
    idx = np.arange(n)
    for p in range(2):
        for q in range(2):
            a[..., 2 * idx + p, 2 * idx + q] = info[..., p, q]
    a[..., 0::2, 0::2] += prior
    a[..., 1::2, 1::2] += prior
    rhs = np.einsum("...ipq,...iq->...ip", info, targets).reshape(*targets.shape[:-2], 2 * n)
    a += np.eye(2 * n) * 1e-9 * (1.0 + np.abs(a).max())
    u = np.linalg.solve(a, rhs[..., None])[..., 0].reshape(targets.shape)
    cov_diag = np.diagonal(np.linalg.inv(a), axis1=-2, axis2=-1).reshape(targets.shape)
    return u, np.sqrt(np.maximum(cov_diag, 0.0).sum(axis=-1))


def refine_shifts(
    spectra: npt.NDArray[np.complex64],
    grid: AlignmentGrid,
    *,
    pixel_size_a: float,
    dose_per_frame_e_per_a2: float | None = None,
    initial_shifts_px: npt.NDArray[np.float64] | None = None,
    max_shift_px: float | None = None,
    max_iterations: int = _FINE_ITERATIONS,
    reference_frame0: bool = True,
) -> GlobalAlignment:
    """Align N frames given their cropped spectra; leading axes (patches) are independent.

    Parameters
    ----------
    spectra : (..., N, Mh, Mw // 2 + 1) cropped rfft2 spectra
    grid : the grid they were cropped to
    pixel_size_a : Å per full-size pixel (scales the motion prior)
    dose_per_frame_e_per_a2 : exposure per frame; lets the prior allow the early jump
    initial_shifts_px : (..., N, 2) starting shifts (x, y); ``None`` = zeros
    max_shift_px : radius of the coarse search; ``None`` skips the coarse stage
    reference_frame0 : subtract frame 0's shift (otherwise the shifts keep the arbitrary common
        offset of the leave-one-out solution, and each frame its own noise)

    Returns
    -------
    GlobalAlignment with shifts (..., N, 2), relative to frame 0 by default.

    Notes
    -----
    With G_i = F_i exp(2πi k·s_i), S = Σ G_j and P_i = W (S − G_i) conj(G_i), the correlation
    C_i(x) = Σ Re(P_i e^{2πi k·x}) peaks at −d_i, d_i the residual displacement of frame i. The
    peak of each C_i alone (Newton steps on Fourier moments, the other frames held still) gives
    a data-only estimate d̂_i with information I_i = H_i Var(g_i)⁻¹ H_i at the peak; the new
    trajectory minimises Σ (u_i − s_i − d̂_i)ᵀ I_i (…) + Σ |Δ²u|²/σ² (Grant & Grigorieff 2015;
    Zheng et al. 2017; Rubinstein & Brubaker 2015 for the smoothness prior).
    """
    n = spectra.shape[-3]
    shifts = np.zeros((*spectra.shape[:-2], 2)) if initial_shifts_px is None else np.array(initial_shifts_px, dtype=np.float64)
    if n < 2:
        return GlobalAlignment(shifts, np.zeros(shifts.shape[:-1]), 0, True)
    if max_shift_px is not None:
        shifts = coarse_align(spectra, grid, shifts, max_shift_px)
    if n >= 3:
        grid = _wiener_weight(spectra, grid, shifts)
    prior = _prior_precision(n, pixel_size_a, dose_per_frame_e_per_a2)
    weights = _moment_weights(grid)
    precision = np.full(shifts.shape[:-1], np.inf)
    scale = np.array([grid.scale_yx[1], grid.scale_yx[0]])
    converged, iteration = False, 0
    for iteration in range(1, max_iterations + 1):
        product = cross_power(shift_spectra(spectra, grid.fy, grid.fx, shifts), grid.weight)
        start = np.zeros(shifts.shape)
        if iteration == 1:
            # Start each frame at the best whole pixel near the origin (a peak a few px away
            # is beyond the reach of Newton steps clipped to 1 px).
            cc = np.asarray(sfft.irfft2(product, s=grid.box, workers=fft_workers()), dtype=np.float32)
            start = np.round(find_peaks(cc, (_FINE_SEARCH_PX, _FINE_SEARCH_PX))[0]) * scale
        peak, hess, ok = _frame_peaks(product, grid, weights, start)
        info = np.einsum("...ij,...jk,...kl->...il", hess, np.linalg.pinv(_gradient_variance(product, weights)), hess)
        info = np.where(ok[..., None, None], info, 0.0)
        # C_i peaks at −d_i, d_i the residual displacement of frame i.
        targets = shifts - peak
        new, precision = _fuse(targets, info, prior)
        # Frames whose own peak disagrees strongly with the fused track (a noise peak) are
        # down-weighted once, Huber-style, and the track fused again.
        miss = targets - new
        dist = np.sqrt(np.maximum(np.einsum("...i,...ij,...j->...", miss, info, miss), 0.0))
        if float(dist.max(initial=0.0)) > _OUTLIER_SIGMAS:
            info = info * np.minimum(1.0, (_OUTLIER_SIGMAS / np.maximum(dist, 1e-12)) ** 2)[..., None, None]
            new, precision = _fuse(targets, info, prior)
        update = new - shifts
        shifts = new
        if float(np.abs(update).max()) < _CONVERGED_PX:
            converged = True
            break
    if reference_frame0:
        shifts = shifts - shifts[..., :1, :]
    return GlobalAlignment(shifts, precision, iteration, converged)


def align_to_single_frame(
    spectra: npt.NDArray[np.complex64], grid: AlignmentGrid, *, reference_index: int, max_shift_px: float
) -> GlobalAlignment:
    """Baseline: one cross-correlation of every frame against a single reference frame.

    No iteration and no leave-one-out sum: the plain approach that fails at low dose
    (PREPROCESS-NOTES, "Motion"); kept for the benchmark's comparison.
    """
    reference = spectra[..., reference_index : reference_index + 1, :, :]
    product = grid.weight * reference * np.conj(spectra)
    cc = np.asarray(sfft.irfft2(product, s=grid.box, workers=fft_workers()), dtype=np.float32)
    radius = (math.ceil(max_shift_px / grid.scale_yx[0]) + 1, math.ceil(max_shift_px / grid.scale_yx[1]) + 1)
    shifts = -find_peaks(cc, radius)[0] * np.array([grid.scale_yx[1], grid.scale_yx[0]])
    shifts -= shifts[..., :1, :]
    return GlobalAlignment(shifts, np.zeros(shifts.shape[:-1]), 1, True)


def align_frames(
    frames: npt.NDArray[np.generic],
    *,
    pixel_size_a: float,
    b_factor_a2: float,
    dose_per_frame_e_per_a2: float | None = None,
    max_shift_a: float = _MAX_SHIFT_A,
    single_reference: bool = False,
) -> GlobalAlignment:
    """Align a movie (N, H, W) held in memory (the pipeline streams frames instead).

    Parameters
    ----------
    frames : (N, H, W) counts or intensities
    pixel_size_a : Å per pixel
    b_factor_a2 : B-factor of the correlation low-pass, Å²
    dose_per_frame_e_per_a2 : exposure per frame, e/Å² (shapes the motion prior)
    single_reference : the plain baseline instead: one pass against the middle frame

    Returns
    -------
    GlobalAlignment; shifts (N, 2) as (x, y) px, frame 0 at the origin.
    """
    grid = alignment_grid(frames.shape[-2:], pixel_size_a, b_factor_a2)
    stack = np.asarray(frames, dtype=np.float32)
    spectrum = sfft.rfft2(stack - stack.mean(axis=(-2, -1), keepdims=True), workers=fft_workers())
    spectra = crop_spectrum(spectrum, grid)
    max_shift_px = max_shift_a / pixel_size_a
    if single_reference:
        return align_to_single_frame(spectra, grid, reference_index=len(frames) // 2, max_shift_px=max_shift_px)
    return refine_shifts(
        spectra, grid, pixel_size_a=pixel_size_a, dose_per_frame_e_per_a2=dose_per_frame_e_per_a2,
        max_shift_px=max_shift_px,
    )
