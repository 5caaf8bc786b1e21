"""Find the holes of a square or View image: detect, fit the lattice, measure intensity and ice.

The chain, all pure functions of arrays:

1. scale the image so that a hole's radius falls in the network's trained range (square images
   at 50–100 nm/px usually need no scaling; View images at 5–10 nm/px are shrunk ~8×), after a
   robust percentile normalisation (:mod:`gridpilot.detection`);
2. run the centre heat-map detector and decode its peaks (hole, empty, contaminant), radius and
   sub-cell offset; suppress duplicates;
3. fit the hole lattice (:mod:`hole_finder.lattice`): drop hole detections off it, add holes at
   free sites where the network's heat and the image's contrast both say "hole"; fall back to
   the detections alone, and say why, when there is no lattice;
4. measure mean and median intensity inside each hole and its ice (:mod:`hole_finder.ice`).

>>> from hole_finder.model import HoleModel  # doctest: +SKIP
>>> found = find_holes(image, pixel_size_a=745.0, hole_diameter_um=1.2, model=HoleModel())  # doctest: +SKIP
>>> found.lattice.mode, len(found.holes)  # doctest: +SKIP
('lattice', 412)
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot.contracts.detect import HoleDetection, HoleFinderParams, IceReference, LatticeFit
from gridpilot.detection import Letterbox, find_peaks, letterbox, nms_circles, robust_normalize
from gridpilot.errors import InvalidInput

from .bars import bar_level, cut_by_bars
from .completion import SiteTests, judge_sites
from .ice import HoleIntensities, estimate_ice, hole_intensities
from .lattice import (
    INLIER_TOLERANCE,
    LatticeResult,
    agree,
    empty_sites,
    fit_lattice,
    on_lattice,
    refine_lattice,
    snap_to_sites,
)
from .model import HoleModel, RawPrediction
from .periodic import ImageLattice, image_lattice

__all__ = ["NOMINAL_HOLE_DIAMETER_UM", "Affine", "HoleSet", "RawDetections", "check_image", "decode_prediction",
           "detect_raw", "find_holes", "network_scale"]

F64 = npt.NDArray[np.float64]
Affine = tuple[tuple[float, float, float], tuple[float, float, float]]

#: Hole size assumed when the job does not say: the middle of R0.6 … R2 (µm).
NOMINAL_HOLE_DIAMETER_UM: Final[float] = 1.4
#: Radius (network-input px) an image is scaled to when its holes fall outside the trained range.
TARGET_RADIUS_PX: Final[float] = 7.0
#: Images smaller than this, or larger, are refused (px per side).
MIN_SIDE_PX: Final[int] = 32
MAX_SIDE_PX: Final[int] = 16384
_PIXEL_RANGE_A: Final[tuple[float, float]] = (1.0, 20000.0)
#: Two detections closer than this fraction of the larger radius are one hole.
_NMS_OVERLAP: Final[float] = 0.6
_SCALE_MARGIN_PX: Final[tuple[float, float]] = (0.5, 1.0)
#: A hole detection on the lattice but further than this fraction of its radius from its site is
#: moved onto the site: the lattice, fitted to hundreds of holes, places it better than one noisy
#: heat-map peak does (at low dose the network's peak wanders by half a radius).
SNAP_FRACTION: Final[float] = 0.35
#: The lattice completion tries free sites whose centre lies this many hole radii inside the
#: image (0: any centre in the frame; its tests judge the part of the disc in view). A hole the
#: border cuts is still a hole to target, and a View holds only a few dozen: on the bench's 34
#: tuning images, recall went 0.9232 → 0.9246 at precision 0.9704 → 0.9703 (Views 0.961 → 0.969)
#: against a margin of one radius, the rule before.
COMPLETION_BORDER_RADII: Final[float] = 0.0
#: The image's own lattice stands in for the detections' only if, when there are at least this
#: many detections, this fraction of them sit on it. Points at random sit within 0.25 pitch of a
#: site by chance π/16 ≈ 0.2 of the time; on the tuning squares right lattices held 0.44–0.84,
#: lacey film's waves and a wrong lattice 0.12–0.20.
_MIN_CHECK_DETECTIONS: Final[int] = 4
_MIN_PERIODIC_INLIERS: Final[float] = 0.3
#: … and this fraction for a faint lattice found only at the film's known pitch: a lattice a
#: little off the true one matches the network's holes in one patch and misses them elsewhere.
_MIN_WEAK_INLIERS: Final[float] = 0.45


@dataclass(frozen=True)
class HoleSet:
    """What :func:`find_holes` found: detections, the lattice fit and the ice reference."""

    holes: list[HoleDetection]
    lattice: LatticeFit
    ice_reference: IceReference
    vacuum_intensity: float | None
    scale: float
    elapsed_s: float
    #: The lattice completion's tests of every free site (``None`` without a lattice fit).
    sites: SiteTests | None = None


def check_image(image: npt.NDArray[np.generic], pixel_size_a: float) -> npt.NDArray[np.float32]:
    """The image as float32 (H, W), or :class:`InvalidInput` naming what is wrong."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise InvalidInput(f"expected one 2-D image, got shape {a.shape}", field="image")
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)) or a.dtype == np.bool_:
        raise InvalidInput(f"image must be integer or float, got dtype {a.dtype}", field="image")
    if min(a.shape) < MIN_SIDE_PX or max(a.shape) > MAX_SIDE_PX:
        raise InvalidInput(f"image of {a.shape[0]} × {a.shape[1]} px: each side must be in "
                           f"[{MIN_SIDE_PX}, {MAX_SIDE_PX}] px", field="image")
    if not (math.isfinite(pixel_size_a) and _PIXEL_RANGE_A[0] <= pixel_size_a <= _PIXEL_RANGE_A[1]):
        raise InvalidInput(f"pixel_size_a must be in [{_PIXEL_RANGE_A[0]:g}, {_PIXEL_RANGE_A[1]:g}] Å "
                           f"(square and View images), got {pixel_size_a}", field="pixel_size_a")
    out = a.astype(np.float32, copy=False)
    if not np.isfinite(out).all():
        raise InvalidInput("image contains NaN or Inf values", field="image")
    return out


def network_scale(radius_px: float, radius_range_px: tuple[float, float]) -> float:
    """Scale that brings a hole radius into the trained range (1 when it already is)."""
    lo, hi = radius_range_px
    # Scaling costs time (a 1280² square of R0.6 holes at r = 4 px would become 2240²): keep the
    # image as it is anywhere inside the trained range, less a small margin at each end.
    if lo + _SCALE_MARGIN_PX[0] <= radius_px <= hi - _SCALE_MARGIN_PX[1]:
        return 1.0
    return TARGET_RADIUS_PX / radius_px


def decode_prediction(pred: RawPrediction, threshold: float) -> tuple[F64, F64, F64, F64, npt.NDArray[np.int64]]:
    """Heat-map peaks → centre (x, y) and radius in network-input px, score, class index.

    Notes
    -----
    A peak at cell (i, j) with offset (dx, dy) sits at x = (j + dx + ½)·stride − ½ (pixel
    centres), radius exp(log_radius[i, j]).
    """
    peaks = find_peaks(pred.heat, threshold=threshold, subpixel=False)
    iy, ix = peaks.y.astype(np.int64), peaks.x.astype(np.int64)
    s = pred.stride
    x = (ix + pred.offset[0, iy, ix] + 0.5) * s - 0.5
    y = (iy + pred.offset[1, iy, ix] + 0.5) * s - 0.5
    r = np.exp(np.clip(pred.log_radius[iy, ix], -2.0, 6.0))
    return x.astype(np.float64), y.astype(np.float64), r.astype(np.float64), peaks.score.astype(np.float64), peaks.label


def _heat_at(pred: RawPrediction, x_in: F64, y_in: F64) -> npt.NDArray[np.float32]:
    """Heat (3, N) at the cells holding network-input points."""
    h, w = pred.heat.shape[1:]
    ix = np.clip(np.rint((x_in + 0.5) / pred.stride - 0.5).astype(np.int64), 0, w - 1)
    iy = np.clip(np.rint((y_in + 0.5) / pred.stride - 0.5).astype(np.int64), 0, h - 1)
    return np.asarray(pred.heat[:, iy, ix], dtype=np.float32)


@dataclass(frozen=True, eq=False)
class RawDetections:
    """The network's duplicate-free detections in image pixels, before bars and lattice."""

    x: F64
    y: F64
    radius: F64
    score: F64
    labels: npt.NDArray[np.str_]
    pred: RawPrediction
    letterbox: Letterbox
    scale: float


def detect_raw(img: npt.NDArray[np.float32], *, radius_px: float, model: HoleModel,
               threshold: float) -> RawDetections:
    """Run the network on a checked image (:func:`check_image`) and decode its peaks.

    ``radius_px`` is the expected hole radius in image pixels; it sets the network's scale.
    """
    scale = network_scale(radius_px, model.radius_range_px)
    x_in, lb = _network_input(img, scale, model.input_multiple)
    pred = model.predict(x_in)
    xi, yi, ri, score, cls = decode_prediction(pred, threshold)
    keep = (xi < lb.content_shape[1] - 0.5) & (yi < lb.content_shape[0] - 0.5)
    xi, yi, ri, score, cls = xi[keep], yi[keep], ri[keep], score[keep], cls[keep]
    order = nms_circles(xi, yi, ri, score, overlap=_NMS_OVERLAP)
    xi, yi, ri, score, cls = xi[order], yi[order], ri[order], score[order], cls[order]
    x, y = lb.to_image(xi, yi)
    labels = np.array(["hole", "empty", "contaminant"])[cls] if len(cls) else np.zeros(0, "<U11")
    return RawDetections(x=x, y=y, radius=ri / scale, score=score, labels=labels, pred=pred, letterbox=lb,
                         scale=float(scale))


def find_holes(image: npt.NDArray[np.generic], *, pixel_size_a: float, model: HoleModel,
               params: HoleFinderParams | None = None, hole_diameter_um: float | None = None,
               hole_pitch_um: float | None = None, image_to_stage: Affine | None = None) -> HoleSet:
    """Find, classify and measure the holes of one image.

    Parameters
    ----------
    image : (H, W) counts: a square (Search) or a medium-magnification (View) image
    pixel_size_a : Å per pixel
    model : the loaded detector
    params : thresholds and switches (:class:`~gridpilot.contracts.HoleFinderParams`)
    hole_diameter_um : nominal hole size (R1.2/1.3 → 1.2); ``None``: 1.4 µm
    hole_pitch_um : nominal lattice pitch, hole size plus spacing (R1.2/1.3 → 2.5); ``None``:
        unknown. Known, it lets the image's own periodicity find a fainter lattice
        (:func:`~hole_finder.periodic.image_lattice`)
    image_to_stage : 2 × 3 affine (col, row, 1) → stage µm; ``None``: pixel size from the origin

    Returns
    -------
    HoleSet, holes sorted by score (lattice additions last).

    Raises
    ------
    gridpilot.errors.InvalidInput
        For an image that is not 2-D, too small or large, non-finite, or a pixel size out of range.
    """
    start = time.perf_counter()
    params = params or HoleFinderParams()
    img = check_image(image, pixel_size_a)
    px_um = pixel_size_a * 1e-4
    radius_px = (hole_diameter_um or NOMINAL_HOLE_DIAMETER_UM) / 2 / px_um
    raw = detect_raw(img, radius_px=radius_px, model=model, threshold=params.score_threshold)
    pred, lb, scale = raw.pred, raw.letterbox, raw.scale
    x, y, r, score, labels = raw.x, raw.y, raw.radius, raw.score, raw.labels
    added = np.zeros(len(x), bool)
    lattice = LatticeFit(mode="detections", reason="lattice fit switched off (params.use_lattice)")
    sites = None
    stats = hole_intensities(img, x, y, r)
    target = labels != "contaminant"
    rings = stats.background[target & np.isfinite(stats.background)]
    level = bar_level(img, film_level=float(np.median(rings)) if rings.size else math.nan)
    on_bar = cut_by_bars(img, x, y, r, level) & target
    if on_bar.any():
        x, y, r, score, labels = x[~on_bar], y[~on_bar], r[~on_bar], score[~on_bar], labels[~on_bar]
        added = added[~on_bar]
        stats = HoleIntensities(stats.mean[~on_bar], stats.median[~on_bar], stats.background[~on_bar])
    if params.use_lattice:
        x, y, r, score, labels, added, stats, lattice, sites = _apply_lattice(
            img, pred, lb, x, y, r, score, labels, stats, level, px_um, radius_px, params,
            pitch_px=hole_pitch_um / px_um if hole_pitch_um else None)
    ice = estimate_ice(stats.mean, labels, mfp_nm=params.ice_mfp_nm)
    (a, b, tx), (d, e, ty) = image_to_stage or ((px_um, 0.0, 0.0), (0.0, -px_um, 0.0))
    holes = _detections(x, y, r, score, labels, stats.mean, stats.median, ice.thickness_nm,
                        a * x + b * y + tx, d * x + e * y + ty, added)
    return HoleSet(holes=holes, lattice=lattice, ice_reference=ice.reference,
                   vacuum_intensity=ice.vacuum_intensity, scale=float(scale),
                   elapsed_s=time.perf_counter() - start, sites=sites)


def _network_input(img: npt.NDArray[np.float32], scale: float, multiple: int) -> tuple[npt.NDArray[np.float32],
                                                                                           Letterbox]:
    """The normalised, scaled and padded network input and its letterbox.

    At scale 1 (square images) this skips :func:`~gridpilot.detection.letterbox`'s copy and pad
    when the sides are already multiples of the network's stride: a 1280² square is then one
    pass over the pixels, not four.
    """
    h, w = img.shape
    if scale == 1.0:
        norm = robust_normalize(img)
        ph, pw = -h % multiple, -w % multiple
        x_in = np.pad(norm, ((0, ph), (0, pw))) if ph or pw else norm
        return x_in, Letterbox(scale=1.0, image_shape=(h, w), content_shape=(h, w),
                               input_shape=(h + ph, w + pw))
    return letterbox(robust_normalize(img), scale=scale, stride=multiple)


def _detections(x: F64, y: F64, r: F64, score: F64, labels: npt.NDArray[np.str_], mean: F64, median: F64,
                ice_nm: F64, stage_x: F64, stage_y: F64, added: npt.NDArray[np.bool_]) -> list[HoleDetection]:
    """The result records, built without re-validation (hundreds per square; every value is a
    finite float of this module's own making, NaN replaced by 0, and the label one of the three)."""
    def finite(v: F64) -> list[float]:
        return np.where(np.isfinite(v), v, 0.0).astype(float).tolist()  # type: ignore[no-any-return]

    cols = zip(finite(x), finite(y), finite(r), finite(score), labels.tolist(), finite(mean), finite(median),
               finite(ice_nm), finite(stage_x), finite(stage_y), added.tolist(), strict=True)
    return [HoleDetection.model_construct(x_px=xk, y_px=yk, radius_px=rk, score=sk, label=lk, mean_intensity=mk,
                                          median_intensity=dk, ice_thickness_nm=tk, stage_x_um=sxk, stage_y_um=syk,
                                          from_lattice=ak)
            for xk, yk, rk, sk, lk, mk, dk, tk, sxk, syk, ak in cols]


def refined_on_detections(periodic: ImageLattice, x: F64, y: F64, *, min_holes: int) -> ImageLattice:
    """The image's own lattice refined by least squares on the detections that sit on it.

    The spectrum gives the basis to a fraction of a frequency bin; over a square's 30 pitches
    that can drift a site by most of a hole, and the detections then fall off their sites and
    are dropped. Where at least ``min_holes`` detections lie within the inlier tolerance, their
    centres (sub-pixel) fix the basis; a refinement that moves the pitch by more than 3 % or the
    rotation by more than 2° (a fit dragged by false detections) is not taken.

    >>> from hole_finder.lattice import Lattice
    >>> rng = np.random.default_rng(0)
    >>> true = Lattice(origin=np.array([5.0, 7.0]), a=np.array([30.0, 8.0]), b=np.array([-8.0, 30.0]))
    >>> i, j = np.meshgrid(np.arange(-10, 11), np.arange(-10, 11))
    >>> x, y = true.position(i.ravel(), j.ravel())
    >>> off = Lattice(origin=np.array([5.0, 7.0]), a=true.a * 1.01, b=true.b * 1.01)  # 1 % off
    >>> band = np.zeros((4, 4), np.float32)
    >>> rough = ImageLattice(lattice=off, sign=1, peak_ratio=30.0, band=band, step=1, amplitude=1.0,
    ...                      film=np.ones((4, 4), bool))
    >>> fixed = refined_on_detections(rough, x + rng.normal(0, 0.5, x.size), y + rng.normal(0, 0.5, y.size),
    ...                               min_holes=12)
    >>> round(fixed.lattice.pitch_px / true.pitch_px, 3)
    1.0
    """
    fit = on_lattice(periodic.lattice, x, y, "")
    if int(fit.inlier.sum()) < min_holes:
        return periodic
    refined, _, _, _ = refine_lattice(np.column_stack([x, y]), periodic.lattice,
                                      INLIER_TOLERANCE * periodic.lattice.pitch_px)
    if not agree(refined, periodic.lattice):
        return periodic
    return dataclasses.replace(periodic, lattice=refined)


def _free_sites(fit: LatticeResult, periodic: ImageLattice | str, shape: tuple[int, int],
                margin_px: float) -> tuple[F64, F64]:
    """Free sites to complete: inside (or next to) the detected area; and every site on the film
    when the lattice is the image's own (the network found too few holes to outline the area).

    (Every film site with the detections' lattice too would reach the holes the meniscus hides
    at the rim, but in a dark, thick square the network's faint heat then fills the bars.)"""
    sx, sy = empty_sites(fit, shape, margin_px=margin_px, grow=True)
    if isinstance(periodic, str) or fit.lattice is None or fit.lattice is not periodic.lattice:
        return sx, sy
    fx, fy = periodic.film_sites(fit.lattice, shape, margin_px=margin_px)
    i, j, _ = fit.lattice.index(fx, fy)
    ei, ej, _ = fit.lattice.index(sx, sy)
    taken = set(zip(fit.i[fit.inlier].tolist(), fit.j[fit.inlier].tolist(), strict=True))
    taken |= set(zip(ei.tolist(), ej.tolist(), strict=True))
    new = np.array([(a, b) not in taken for a, b in zip(i.tolist(), j.tolist(), strict=True)], bool)
    sx, sy = np.concatenate([sx, fx[new]]), np.concatenate([sy, fy[new]])
    if periodic.weak:  # a faint lattice: only where its neighbourhood shows holes (not a dark bar, torn film)
        on = periodic.coherent(fit.lattice, shape, sx, sy)
        sx, sy = sx[on], sy[on]
    return sx, sy


def _put(a: F64, at: npt.NDArray[np.intp], values: F64) -> F64:
    out = a.copy()
    out[at] = values
    return out


def _apply_lattice(img: npt.NDArray[np.float32], pred: RawPrediction, lb: Letterbox, x: F64, y: F64, r: F64,
                   score: F64, labels: npt.NDArray[np.str_], stats: HoleIntensities, level: float | None,
                   px_um: float, radius_px: float, params: HoleFinderParams, *,
                   pitch_px: float | None = None) -> tuple[F64, F64, F64, F64, npt.NDArray[np.str_],
                                                      npt.NDArray[np.bool_], HoleIntensities, LatticeFit,
                                                      SiteTests | None]:
    """Fit the lattice to hole/empty detections; drop strays, complete free sites; or fall back.

    ``stats`` are the detections' intensities; the result carries those of the holes kept and added,
    and the completion's tests of the free sites (``None`` without a lattice).
    """
    target = labels != "contaminant"
    raw_x, raw_y = x, y
    fit = fit_lattice(x[target], y[target], min_holes=params.min_lattice_holes)
    # The faint-lattice search at the film's pitch only where the detections give no lattice (where
    # they do, it added ≈ 0.1–0.4 s for 0.04 points of tuning recall).
    periodic = image_lattice(img, radius_px=radius_px, pitch_px=pitch_px if fit.lattice is None else None)
    none_added = np.zeros(len(x), bool)
    if fit.lattice is None:
        if isinstance(periodic, str):
            return x, y, r, score, labels, none_added, stats, LatticeFit(mode="detections",
                                                                         reason=f"{fit.reason}; {periodic}"), None
        source = (f"a faint lattice at the film's pitch in the image's spectrum (its peaks {periodic.peak_ratio:.1f}× "
                  "noise)" if periodic.weak else
                  f"lattice from the image's periodicity (spectral peak {periodic.peak_ratio:.0f}× the median)")
        periodic = refined_on_detections(periodic, x[target], y[target], min_holes=params.min_lattice_holes)
        own = on_lattice(periodic.lattice, x[target], y[target], f"{source}; the detections alone gave none: {fit.reason}")
        need = _MIN_WEAK_INLIERS if periodic.weak else _MIN_PERIODIC_INLIERS
        if len(own.inlier) >= _MIN_CHECK_DETECTIONS and own.inlier.mean() < need:
            why = "" if periodic.weak else " (lacey film's waves?)"
            reason = (f"{fit.reason}; the image's periodicity gives a lattice that only "
                      f"{own.inlier.mean():.0%} of the detections sit on{why}: not used")
            return x, y, r, score, labels, none_added, stats, LatticeFit(mode="detections", reason=reason), None
        fit = own
    elif isinstance(periodic, ImageLattice) and not agree(fit.lattice, periodic.lattice):
        periodic = "the image's periodicity disagrees with the detections' lattice: not used"
    lat = fit.lattice
    assert lat is not None
    idx = np.flatnonzero(target)  # the detections the fit was made of, in its order
    keep = np.ones(len(x), bool)
    keep[idx[~fit.inlier]] = False
    dropped = int((~keep).sum())
    x, y = x.copy(), y.copy()
    x[idx], y[idx] = snap_to_sites(x[idx], y[idx], r[idx], fit, fraction=SNAP_FRACTION)
    moved = np.flatnonzero((x != raw_x) | (y != raw_y))
    if moved.size:  # measure the moved holes where they now are
        again = hole_intensities(img, x[moved], y[moved], r[moved])
        stats = HoleIntensities(*(_put(getattr(stats, f), moved, getattr(again, f))
                                  for f in ("mean", "median", "background")))
    inlier_r = r[idx][fit.inlier]
    r_hole = float(np.median(inlier_r)) if inlier_r.size else radius_px
    # A hole the bar half covers is detected by its visible part, off its site and smaller; the
    # bar test of the raw detection misses it, that of its site at the lattice's radius does not.
    site_x, site_y = lat.position(fit.i, fit.j)
    cut = fit.inlier & cut_by_bars(img, site_x, site_y, np.full(len(site_x), r_hole), level)
    keep[idx[cut]] = False
    sx, sy = _free_sites(fit, periodic, img.shape, COMPLETION_BORDER_RADII * r_hole)
    occupied = np.zeros(len(sx), bool)
    if len(sx) and (~target).any():  # a contaminant sitting on a site occupies it
        d = np.hypot(sx[:, None] - x[~target][None], sy[:, None] - y[~target][None]).min(axis=1)
        occupied = d <= INLIER_TOLERANCE * lat.pitch_px * 2
    det = keep & target
    with np.errstate(divide="ignore", invalid="ignore"):  # a ring on an opaque bar reads 0
        ref = stats.median[det] / stats.background[det]
    heat = _heat_at(pred, *lb.to_input(sx, sy)) if len(sx) else np.zeros((3, 0), np.float32)
    sites = judge_sites(img, heat, sx, sy, radius_px=r_hole, hole_contrast=ref[np.isfinite(ref)], bar_level=level,
                        threshold=params.score_threshold, occupied=occupied, hole_rings=stats.background[det],
                        evidence=periodic.evidence(sx, sy) if isinstance(periodic, ImageLattice) else None)
    add = sites.accepted
    add_label = np.where(sites.empty, "empty", "hole")
    cand = HoleIntensities(sites.mean, sites.median, sites.background)
    n_add = int(add.sum())
    x = np.concatenate([x[keep], sites.x[add]])
    y = np.concatenate([y[keep], sites.y[add]])
    r = np.concatenate([r[keep], np.full(n_add, r_hole)])
    score = np.concatenate([score[keep], np.zeros(n_add)])
    labels = np.concatenate([labels[keep], add_label[add]])
    added = np.concatenate([np.zeros(int(keep.sum()), bool), np.ones(n_add, bool)])
    merged = HoleIntensities(*(np.concatenate([getattr(stats, f)[keep], getattr(cand, f)[add]])
                               for f in ("mean", "median", "background")))
    info = LatticeFit(mode="lattice", reason=fit.reason, pitch_px=lat.pitch_px, pitch_um=lat.pitch_px * px_um,
                      rotation_deg=lat.rotation_deg, added=n_add, dropped=dropped)
    return x, y, r, score, labels, added, merged, info, sites
