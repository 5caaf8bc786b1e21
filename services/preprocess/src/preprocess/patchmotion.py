"""Local (patch-based) frame alignment with a smooth space–time model.

After global alignment the frames are cut into a grid of overlapping patches (5 × 5 by
default), every patch stack is aligned on its own in the same way as the whole frame
(:func:`preprocess.motion.refine_shifts`), and the residual patch trajectories are fitted by a
model quadratic in x and y, as MotionCor2's (Zheng et al. 2017), but with a linear spline in
the cumulative exposure in place of its cubic in time (knots at 4, 8, 16, … e/Å², so the
fast early motion is followed), zero in frame 0; an F-test decides whether the fit is more
than noise. Patches are cut from
Fourier-binned copies of the globally aligned frames, which keeps the cost low.

Shifts follow :mod:`preprocess.motion`: the displacement of the specimen in frame i relative to
frame 0, (x, y) in full-size pixels; local shifts are *in addition to* the global shift.

>>> centres, size = patch_layout((1024, 1024), (5, 5))
>>> size, centres[:3, 0].tolist()
((336, 336), [168, 340, 512])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from scipy import stats

from .motion import refine_shifts
from .spectra import AlignmentGrid, alignment_grid, crop_spectrum, fft_workers, shift_spectra

__all__ = ["LocalMotion", "align_patches", "evaluate_local_model", "fit_local_model", "patch_layout"]

#: Patch sides are multiples of this (px).
_PATCH_QUANTUM_PX: Final[int] = 16
_MIN_PATCH_PX: Final[int] = 64
#: Fraction of each patch side tapered by a raised cosine before its FFT.
_TAPER_FRACTION: Final[float] = 0.1
#: Patches are smaller and noisier than frames: their correlation gets at least this B-factor.
_MIN_PATCH_B_FACTOR_A2: Final[float] = 500.0
#: First knot of the time spline, e/Å² (then 2×, 4×, … up to the total exposure).
_FIRST_KNOT_E_PER_A2: Final[float] = 4.0
#: Local motion is reported when noise alone would explain the fit less often than this.
_LOCAL_P_VALUE: Final[float] = 1e-4
#: Largest side (px) of a patch's correlation grid.
_MAX_PATCH_BOX_PX: Final[int] = 64


@dataclass(frozen=True)
class LocalMotion:
    """Local motion on top of the global trajectory.

    Attributes
    ----------
    centres_px : (P, 2) patch centres (x, y), full-size px
    measured_px : (P, N, 2) residual shift of each patch, px, up to a constant per patch
    precision_px : (P, N) standard error of each measured shift, px
    model_px : (P, N, 2) the non-uniform part of the fitted model at the patch centres (its
        mean over patches, a correction to the global trajectory, removed), px
    coefficients : (2, T) polynomial coefficients for x and y (see :func:`evaluate_local_model`)
    rms_px : root mean square of the model over patches and frames, px (0 if not significant)
    p_value : F-test of the model against no local motion
    significant : whether p_value < 1e-4; otherwise the model is set to zero
    """

    centres_px: npt.NDArray[np.float64]
    measured_px: npt.NDArray[np.float64]
    precision_px: npt.NDArray[np.float64]
    model_px: npt.NDArray[np.float64]
    coefficients: npt.NDArray[np.float64]
    rms_px: float
    p_value: float
    significant: bool


def patch_layout(shape: tuple[int, int], grid: tuple[int, int]) -> tuple[npt.NDArray[np.int64], tuple[int, int]]:
    """Centres (P, 2) as (x, y) px and side (ph, pw) of a grid (ny, nx) of overlapping patches.

    Each side is about 2 / (n + 1) of the frame's, so that neighbours overlap by half.
    """
    (h, w), (ny, nx) = shape, grid
    sides = []
    for n_px, n_patch in ((h, ny), (w, nx)):
        side = (2 * n_px // (n_patch + 1)) // _PATCH_QUANTUM_PX * _PATCH_QUANTUM_PX
        sides.append(int(min(n_px - n_px % 2, max(side, _MIN_PATCH_PX))))
    ph, pw = sides
    ys = np.linspace(ph / 2, h - ph / 2, ny).round().astype(np.int64)
    xs = np.linspace(pw / 2, w - pw / 2, nx).round().astype(np.int64)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1), (ph, pw)


def _taper(shape: tuple[int, int]) -> npt.NDArray[np.float32]:
    def edge(n: int) -> npt.NDArray[np.float64]:
        m = max(1, round(n * _TAPER_FRACTION))
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(m) + 0.5) / m)
        out = np.ones(n)
        out[:m], out[n - m :] = ramp, ramp[::-1]
        return out

    return (edge(shape[0])[:, None] * edge(shape[1])[None, :]).astype(np.float32)


def _time_basis(n_frames: int, dose_per_frame_e_per_a2: float) -> npt.NDArray[np.float64]:
    """(N, K) linear-spline ("hat") functions of the mid-frame exposure, zero at exposure 0.

    Knots double from ``_FIRST_KNOT_E_PER_A2`` up to the total exposure: beam-induced motion is
    fastest early (TWIN-PHYSICS.md), where a cubic in time cannot follow it. The first segment
    spans several frames, so that a patch's unknown offset and its early motion stay separable.
    """
    exposure = (np.arange(n_frames) + 0.5) * dose_per_frame_e_per_a2
    total = float(exposure[-1])
    knots = [0.0]
    k = _FIRST_KNOT_E_PER_A2
    while k < total:
        knots.append(k)
        k *= 2.0
    if total - knots[-1] < 0.5 * (knots[-1] - knots[-2] if len(knots) > 1 else total):
        knots.pop()  # a last segment much shorter than the one before adds a near-duplicate term
    knots.append(max(total, knots[-1] + 1e-6))
    knot_arr = np.asarray(knots)
    eye = np.eye(len(knot_arr))
    return np.stack([np.interp(exposure, knot_arr, eye[m]) for m in range(1, len(knot_arr))], axis=1)


def _space_basis(xn: npt.NDArray[np.float64], yn: npt.NDArray[np.float64], n_patches: int) -> npt.NDArray[np.float64]:
    # A grid too coarse to support a quadratic surface gets the terms it can support.
    terms = [np.ones_like(xn)]
    if n_patches >= 4:
        terms += [xn, yn]
    if n_patches >= 9:
        terms += [xn * xn, yn * yn, xn * yn]
    return np.stack(terms, axis=-1)


def _design(
    xn: npt.NDArray[np.float64], yn: npt.NDArray[np.float64], n_frames: int, n_patches: int, dose_per_frame_e_per_a2: float
) -> npt.NDArray[np.float64]:
    """(P, N, T) basis values: every time term times every space term."""
    space = _space_basis(xn, yn, n_patches)  # (P, S)
    time = _time_basis(n_frames, dose_per_frame_e_per_a2)  # (N, K)
    return (space[:, None, None, :] * time[None, :, :, None]).reshape(len(xn), n_frames, -1)


def fit_local_model(
    centres_norm: npt.NDArray[np.float64],
    measured_px: npt.NDArray[np.float64],
    precision_px: npt.NDArray[np.float64],
    dose_per_frame_e_per_a2: float,
) -> tuple[npt.NDArray[np.float64], float]:
    """Fit the space–time model to patch shifts, and test it against noise.

    Parameters
    ----------
    centres_norm : (P, 2) patch centres scaled to [−1, 1]
    measured_px : (P, N, 2) residual patch shifts, px (any constant offset per patch)
    precision_px : (P, N) their standard errors (weights 1/σ²)
    dose_per_frame_e_per_a2 : exposure per frame (places the time knots)

    Returns
    -------
    coefficients : (2, K·S) for K time knots and S spatial terms (index k·S + s)
    p_value : chance that patch noise alone gives a non-uniform pattern this strong (F-test
        against a shift common to all patches)

    Notes
    -----
    d(x, y, N) = Σ_k Σ_s c_ks h_k(N) s_s(x, y), s ∈ {1, x, y, x², y², xy} and h_k linear
    splines of the cumulative exposure N that vanish at N = 0 — MotionCor2's space–time
    model (Zheng et al. 2017) with its cubic in time replaced by a spline whose knots follow
    the fast early motion. Two stages: each patch's trajectory is fitted by the splines plus a
    constant (a patch is only known up to a shift), then every spline coefficient is fitted
    across patches by the spatial terms. The F-test counts patches, not frames, as independent
    samples: a patch's frames share its noise through the alignment's smoothness prior.
    """
    p, n, _ = measured_px.shape
    time = _time_basis(n, dose_per_frame_e_per_a2)
    k = time.shape[1]
    x = np.hstack([np.ones((n, 1)), time])
    w = 1.0 / np.maximum(precision_px, 1e-3)
    beta = np.stack([
        np.linalg.lstsq(x * w[i, :, None], measured_px[i] * w[i, :, None], rcond=None)[0][1:] for i in range(p)
    ])  # (P, K, 2)
    space = _space_basis(centres_norm[:, 0], centres_norm[:, 1], p)
    n_s = space.shape[1]
    flat = beta.reshape(p, -1)
    coef, *_ = np.linalg.lstsq(space, flat, rcond=None)  # (S, K·2)
    rss_full = float(((flat - space @ coef) ** 2).sum())
    # The null keeps the uniform term: a shift common to all patches is a global residual.
    rss_null = float(((flat - flat.mean(axis=0, keepdims=True)) ** 2).sum())
    dof_model, dof_resid = (n_s - 1) * flat.shape[1], (p - n_s) * flat.shape[1]
    if dof_resid <= 0 or dof_model <= 0:
        p_value = 1.0
    else:
        f_stat = ((rss_null - rss_full) / dof_model) / max(rss_full / dof_resid, 1e-30)
        p_value = float(stats.f.sf(f_stat, dof_model, dof_resid))
    c = coef.reshape(n_s, k, 2)  # (S, K, axis)
    return np.asarray(c.transpose(2, 1, 0).reshape(2, k * n_s)), p_value


def evaluate_local_model(
    coefficients: npt.NDArray[np.float64],
    centres_norm: npt.NDArray[np.float64],
    n_frames: int,
    n_patches: int,
    dose_per_frame_e_per_a2: float,
) -> npt.NDArray[np.float64]:
    """The model at normalised positions (P, 2) for every frame: (P, N, 2) px, 0 in frame 0."""
    basis = _design(centres_norm[:, 0], centres_norm[:, 1], n_frames, n_patches, dose_per_frame_e_per_a2)
    model = np.einsum("pnt,at->pna", basis, coefficients)
    return np.asarray(model - model[:, :1])


def align_patches(
    aligned_crop: npt.NDArray[np.complex64],
    grid: AlignmentGrid,
    *,
    patches: tuple[int, int],
    pixel_size_a: float,
    b_factor_a2: float,
    dose_per_frame_e_per_a2: float,
    margin_px: float = 0.0,
) -> LocalMotion | None:
    """Measure and model local motion from globally aligned, Fourier-cropped frame spectra.

    Parameters
    ----------
    aligned_crop : (N, Mh, Mw // 2 + 1) spectra on ``grid`` with the global shifts applied
    grid : their alignment grid
    patches : (ny, nx) patch grid
    pixel_size_a : Å per full-size pixel
    b_factor_a2 : correlation B-factor (raised to at least 500 Å² for patches)
    dose_per_frame_e_per_a2 : exposure per frame (motion prior)
    margin_px : border (full-size px) kept out of the patches: the globally shifted frames wrap
        around by up to the largest shift, and wrapped content would pass for local motion

    Returns
    -------
    LocalMotion, or ``None`` when the frame is too small for the requested patch grid.
    """
    n = aligned_crop.shape[0]
    binned = np.asarray(sfft.irfft2(aligned_crop, s=grid.box, workers=fft_workers()), dtype=np.float32)
    bin_y, bin_x = grid.scale_yx
    my, mx = (int(np.ceil(margin_px / b)) for b in (bin_y, bin_x))
    inner = (grid.box[0] - 2 * my, grid.box[1] - 2 * mx)
    if min(inner) < _MIN_PATCH_PX:
        return None
    centres_b, (ph, pw) = patch_layout(inner, patches)
    centres_b = centres_b + np.array([mx, my])
    if n < 3 or min(ph, pw) < _MIN_PATCH_PX // 2 or centres_b.shape[0] < 1 or ph > grid.box[0] or pw > grid.box[1]:
        return None
    taper = _taper((ph, pw))
    stacks = np.stack(
        [binned[:, cy - ph // 2 : cy - ph // 2 + ph, cx - pw // 2 : cx - pw // 2 + pw] for cx, cy in centres_b]
    )
    stacks -= stacks.mean(axis=(-2, -1), keepdims=True)
    stacks *= taper
    pixel_b = pixel_size_a * max(bin_y, bin_x)
    pgrid = alignment_grid((ph, pw), pixel_b, max(b_factor_a2, _MIN_PATCH_B_FACTOR_A2), max_box_px=_MAX_PATCH_BOX_PX)
    spectra = crop_spectrum(sfft.rfft2(stacks, workers=fft_workers()), pgrid)
    # Residuals after global alignment are a few Å: Newton steps reach them without a search.
    result = refine_shifts(
        spectra, pgrid, pixel_size_a=pixel_b, dose_per_frame_e_per_a2=dose_per_frame_e_per_a2, reference_frame0=False,
    )
    to_full = np.array([bin_x, bin_y])
    measured = result.shifts_px * to_full
    precision = result.precision_px * float(np.mean(to_full))
    centres = centres_b * to_full
    h, w = grid.full_shape
    norm = np.stack([2.0 * centres[:, 0] / w - 1.0, 2.0 * centres[:, 1] / h - 1.0], axis=1)
    coef, p_value = fit_local_model(norm, measured, precision, dose_per_frame_e_per_a2)
    significant = p_value < _LOCAL_P_VALUE
    model = np.zeros_like(measured)
    if significant:
        model = evaluate_local_model(coef, norm, n, len(centres), dose_per_frame_e_per_a2)
        model -= model.mean(axis=0, keepdims=True)  # the uniform part belongs to the global trajectory
    rms = float(np.sqrt((model**2).sum(axis=-1).mean()))
    return LocalMotion(centres.astype(np.float64), measured, precision, model, coef, rms, p_value, significant)


def apply_global_to_crop(
    spectra: npt.NDArray[np.complex64], grid: AlignmentGrid, shifts_px: npt.NDArray[np.float64]
) -> npt.NDArray[np.complex64]:
    """The cropped spectra moved into register by the global shifts (input of :func:`align_patches`)."""
    return shift_spectra(spectra, grid.fy, grid.fx, shifts_px)
