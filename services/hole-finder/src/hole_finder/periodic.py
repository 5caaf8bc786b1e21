"""The hole lattice from the image's own periodicity, when the detections are too few or too noisy.

At low dose on thin-looking carbon a hole is only a few per cent brighter than the film, and the
network finds a handful of the hundreds in view: too few, and too mixed with false peaks, for the
neighbour statistics of :func:`~hole_finder.lattice.fit_lattice`. Yet hundreds of faint holes on
one lattice add up coherently: the power spectrum of the band-passed film shows the lattice's
reciprocal vectors as sharp peaks long after each hole is lost in the noise. :func:`image_lattice`

1. bins the image so that a hole's radius is about 3 px, band-passes it at the hole size
   (difference of Gaussians) and masks the bars out;
2. takes the strongest spectral peak at a plausible pitch (2.2–6.5 hole radii), steps down to
   the fundamental when that peak is a harmonic, finds its 90° partner and refines both to a
   fraction of a frequency bin — the reciprocal basis, whose inverse is the lattice basis;
3. folds the band-passed film onto one lattice cell: the mean cell shows the hole, whose place in
   the cell is the lattice origin and whose sign says whether holes are brighter than the film;
4. refines origin and basis by least squares on the band-pass's local peaks that sit on sites
   (:func:`~hole_finder.lattice.refine_lattice`).

Given the film's nominal pitch (its hole type), a lattice too faint for step 2 is still found:
every square lattice near that pitch is scored by its four strongest peaks together
(:func:`_known_pitch_reciprocal`), and the best is registered by the fold itself
(:func:`_register`); it is marked ``weak``, and :meth:`ImageLattice.coherent` says where on the
film its holes actually show.

It returns the reason instead when the spectrum has no pair of peaks that stands out (lacey
film, broken film, vacuum) or the lattice folds to no hole, so that the caller falls back to
the detections alone.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> yy, xx = np.mgrid[:512, :512].astype(np.float64)
>>> img = np.full((512, 512), 40.0)
>>> for i in range(-12, 13):
...     for j in range(-12, 13):
...         cx, cy = 256 + 30 * i - 8 * j, 256 + 8 * i + 30 * j
...         img[np.hypot(xx - cx, yy - cy) < 8] = 42.0  # holes 5 % brighter than the film
>>> found = image_lattice(rng.poisson(img).astype(np.float32), radius_px=8.0)
>>> round(found.lattice.pitch_px, 1), found.sign  # planted: |(30, 8)| = 31.05 px, brighter
(31.0, 1)
>>> abs(found.lattice.rotation_deg - 14.93) < 0.1  # planted: atan(8 / 30) = 14.93°
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from gridpilot.detection import robust_normalize

from .bars import bar_level
from .lattice import INLIER_TOLERANCE, Lattice, refine_lattice

__all__ = ["ImageLattice", "image_lattice"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

#: A faint lattice's site counts as on the holey film when the sites within this many lattice
#: steps of it (a 7 × 7 block) show, on average, at least this fraction of the typical hole's
#: band-pass (:meth:`ImageLattice.coherent`).
COHERENT_SITES: Final[int] = 3
COHERENT_MIN: Final[float] = 0.5
#: The image is binned so that a hole's radius is about this many pixels (1.6–2.7).
_WORK_RADIUS_PX: Final[float] = 2.0
#: Plausible pitches in hole radii: R3.5/1 (2.6) … R0.6/1 (5.3), with slack.
PITCH_RADII: Final[tuple[float, float]] = (2.2, 6.5)
#: Difference of Gaussians at the hole size: σ of the two blurs in hole radii.
_DOG_SIGMA: Final[tuple[float, float]] = (0.5, 1.6)
#: The lattice peak and its 90° partner must both stand this many times above the median power
#: at their spatial frequency. Lacey film's speckle makes single peaks of up to ~80 with partners
#: of ~10; weak real lattices on the tuning squares reach 23–70 with both …
MIN_PEAK_RATIO: Final[float] = 20.0
#: With the film's nominal pitch known (its hole type: R1.2/1.3 → 2.5 µm), a faint lattice is
#: looked for within this relative distance of it: a Search pixel size is calibrated to 1–2 %
#: (6 % let noise lattices 4 % off win on the tuning squares) …
KNOWN_PITCH_TOLERANCE: Final[float] = 0.025
#: … in an image at least this many pitches across (a View of a few holes has no lattice to find) …
KNOWN_PITCH_MIN_CELLS: Final[float] = 6.0
#: … and there a lattice's four strongest peaks (fundamentals and (1, 1) harmonics) together must
#: stand this many times above the typical lattice of that pitch (:func:`_known_pitch_reciprocal`).
MIN_KNOWN_PITCH_SCORE: Final[float] = 5.0
#: … and a harmonic's fundamental is taken when it holds this fraction of the peak's power.
_FUNDAMENTAL_FRACTION: Final[float] = 0.15
#: The band-pass is clipped at this many robust standard deviations before the spectrum.
_CLIP_SIGMA: Final[float] = 3.0
#: The folded cell's hole must stand this many times the cell's scatter away from it (tuning
#: squares: right lattices 4.1–55, wrong ones 0–3.5).
MIN_FOLD_SNR: Final[float] = 4.0
#: The folded cell away from the hole: beyond this many hole radii of its centre.
_FOLD_CLEAR_RADII: Final[float] = 1.6
#: Bins of the folded cell per side.
_FOLD_BINS: Final[int] = 24


@dataclass(frozen=True)
class ImageLattice:
    """A lattice found in the image, and what the band-pass says of each site."""

    lattice: Lattice
    #: +1 when holes are brighter than the film in the band-pass, −1 when darker.
    sign: int
    #: Peak power over the median power at its frequency: how clearly the lattice stands out.
    peak_ratio: float
    #: Band-passed, signed image on the binned grid, and the bin factor.
    band: F32
    step: int
    #: The folded cell's hole amplitude (band-pass units): the typical hole's response.
    amplitude: float
    #: Binned pixels on the film (not on a bar), where sites may hold holes.
    film: npt.NDArray[np.bool_]
    #: Found only by the search at the film's known pitch (``peak_ratio`` is then that search's
    #: score, :func:`_known_pitch_reciprocal`): a faint lattice, for the caller to check.
    weak: bool = False

    def evidence(self, x: F64, y: F64) -> F64:
        """Signed band-pass at image points over the typical hole's amplitude (1: a typical hole)."""
        row, col = self._cell(x, y)
        return np.asarray(self.band[row, col], np.float64) / max(self.amplitude, 1e-12)

    def _cell(self, x: F64, y: F64) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        h, w = self.band.shape
        col = np.clip(np.rint((np.asarray(x) + 0.5) / self.step - 0.5).astype(np.int64), 0, w - 1)
        row = np.clip(np.rint((np.asarray(y) + 0.5) / self.step - 0.5).astype(np.int64), 0, h - 1)
        return row, col

    def film_sites(self, lattice: Lattice, shape: tuple[int, int], *, margin_px: float) -> tuple[F64, F64]:
        """Every site of ``lattice`` on the film and at least ``margin_px`` inside the image, (x, y) px."""
        h, w = shape
        corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64).T
        f = np.linalg.solve(np.column_stack([lattice.a, lattice.b]), corners - lattice.origin[:, None])
        lo, hi = np.floor(f.min(axis=1)).astype(int), np.ceil(f.max(axis=1)).astype(int)
        gi, gj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
        sx, sy = lattice.position(gi.ravel(), gj.ravel())
        inside = (sx >= margin_px) & (sy >= margin_px) & (sx <= w - 1 - margin_px) & (sy <= h - 1 - margin_px)
        sx, sy = sx[inside], sy[inside]
        row, col = self._cell(sx, sy)
        on = self.film[row, col]
        return sx[on], sy[on]

    def coherent(self, lattice: Lattice, shape: tuple[int, int], sx: F64, sy: F64) -> npt.NDArray[np.bool_]:
        """Sites (x, y) whose neighbourhood shows the lattice's holes: the mean band-pass over the
        film sites of an image of ``shape`` within :data:`COHERENT_SITES` steps of each (the
        detected holes among them) is at least :data:`COHERENT_MIN` of the typical hole's.

        A faint lattice's single holes are lost in the noise, but some fifty neighbours together
        are not: this tells the film's holey area from a bar as dark as the film, or a torn-open
        part of the square, where the lattice has no holes to show.
        """
        if not len(sx):
            return np.zeros(0, bool)
        fx, fy = self.film_sites(lattice, shape, margin_px=0.0)
        fi, fj, _ = lattice.index(fx, fy)
        i, j, _ = lattice.index(sx, sy)
        i0, j0 = min(int(fi.min(initial=0)), int(i.min())), min(int(fj.min(initial=0)), int(j.min()))
        dims = (max(int(fi.max(initial=0)), int(i.max())) - i0 + 1, max(int(fj.max(initial=0)), int(j.max())) - j0 + 1)
        total, count = np.zeros(dims), np.zeros(dims)
        np.add.at(total, (fi - i0, fj - j0), self.evidence(fx, fy))
        np.add.at(count, (fi - i0, fj - j0), 1.0)
        size = 2 * COHERENT_SITES + 1
        n = np.rint(ndi.uniform_filter(count, size, mode="constant") * size**2)
        mean = ndi.uniform_filter(total, size, mode="constant") * size**2 / np.maximum(n, 1e-12)
        return np.asarray(((n > 0) & (mean >= COHERENT_MIN))[i - i0, j - j0])


def _bin(img: F32, step: int) -> F32:
    if step == 1:
        return img
    h, w = (s // step * step for s in img.shape)
    binned: F32 = img[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3), dtype=np.float32)
    return binned


def _film_mask(x: F32, rr: float) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Pixels on the film (not on a bar), and those well inside it (bar edges out); all pixels
    when no bar is in view."""
    smooth = ndi.gaussian_filter(x, 2 * rr)
    level = bar_level(smooth, film_level=float(np.percentile(smooth, 75)))
    if level is None:
        every = np.ones(x.shape, bool)
        return every, every
    film = smooth > level
    return film, np.asarray(ndi.binary_erosion(film, iterations=max(1, round(2 * rr)), border_value=1))


def _peak_near(power: F64, fy: F64, fx: F64, k: F64, tol: float) -> tuple[F64, tuple[int, int] | None]:
    """The strongest bin within ``tol`` (cycles/px) of frequency ``k`` or of −k: its refined
    frequency and its index (``None`` when no bin is that near)."""
    kx, ky = (k if k[0] >= 0 else -k)
    near = np.hypot(fx - kx, fy - ky) <= tol
    if not near.any():
        return k, None
    flat = np.where(near, power, -1.0)
    iy, ix = (int(v) for v in np.unravel_index(int(np.argmax(flat)), flat.shape))
    return _subbin(power, iy, ix, fy, fx), (iy, ix)


def _subbin(power: F64, iy: int, ix: int, fy: F64, fx: F64) -> F64:
    """Peak frequency refined by a parabola through log power along each axis."""
    h, w = power.shape
    df_y, df_x = float(fy[1, 0] - fy[0, 0]), float(fx[0, 1] - fx[0, 0])

    def shift(a: float, b: float, c: float) -> float:
        la, lb, lc = (math.log(max(v, 1e-30)) for v in (a, b, c))
        den = la - 2 * lb + lc
        return 0.0 if den >= 0 else float(np.clip(0.5 * (la - lc) / den, -0.5, 0.5))

    sy = shift(power[(iy - 1) % h, ix], power[iy, ix], power[(iy + 1) % h, ix])
    sx = shift(power[iy, ix - 1], power[iy, ix], power[iy, ix + 1]) if 0 < ix < w - 1 else 0.0
    return np.array([fx[0, ix] + sx * df_x, fy[iy, 0] + sy * df_y])


def _frequencies(shape: tuple[int, ...], width: int) -> tuple[F64, F64]:
    """Frequencies (cycles/px) of the bins of ``numpy.fft.rfft2`` of an image ``width`` px wide:
    (fy, fx), each broadcast to the half spectrum's ``shape``."""
    fy = np.broadcast_to(np.fft.fftfreq(shape[0])[:, None], shape)
    fx = np.broadcast_to(np.fft.rfftfreq(width)[None, :], shape)
    return fy, fx


def _reciprocal(power: F64, rr: float, width: int) -> tuple[F64, F64, float] | str:
    """Two reciprocal lattice vectors (cycles/px) and the peak ratio, or why there are none.

    ``power`` is the half spectrum of ``numpy.fft.rfft2`` of an image ``width`` pixels wide.
    """
    h = power.shape[0]
    fy, fx = _frequencies(power.shape, width)
    f = np.hypot(fx, fy)
    annulus = (f > 1 / (PITCH_RADII[1] * rr)) & (f < 1 / (PITCH_RADII[0] * rr))
    if annulus.sum() < 16:
        return "image too small for a spectral lattice estimate"
    # Whiten: each bin over the median power at its spatial frequency, so that the hole's own
    # form factor (more power at low frequency) and the film's texture do not make a peak.
    ring = np.rint(f * min(h, width)).astype(np.int64)
    labels = np.where(annulus, ring, 0)
    index = np.unique(labels[annulus])
    profile = np.zeros(int(ring.max()) + 1)
    profile[index] = ndi.median(power, labels, index)
    raw = power
    power = np.where(annulus, power / np.maximum(profile[ring], 1e-30), 0.0)
    iy, ix = np.unravel_index(int(np.argmax(power)), power.shape)
    ratio = float(power[iy, ix])
    if ratio < MIN_PEAK_RATIO:
        return f"no lattice in the image's spectrum (peak {ratio:.0f}× the median at its frequency, < {MIN_PEAK_RATIO:.0f}×)"
    k = _subbin(power, int(iy), int(ix), fy, fx)
    p_peak = float(raw[iy, ix])
    tol = 1.5 / min(h, width)
    # The strongest peak may be a harmonic of a square lattice: (1, 1) at √2 f, (2, 0) at 2 f,
    # (2, 2) …: step down while a lower candidate holds a good part of its power.
    for _ in range(3):
        for cand in (_rot(k, 45.0) / math.sqrt(2), _rot(k, -45.0) / math.sqrt(2), k / 2):
            if np.hypot(*cand) <= 1 / (PITCH_RADII[1] * rr):
                continue
            ck, at = _peak_near(raw, fy, fx, cand, tol)
            # Raw power decides which is the fundamental (a lattice of discs narrower than half
            # the pitch puts most of it there); whitened power, whether the candidate is a peak.
            if at is not None and raw[at] >= _FUNDAMENTAL_FRACTION * p_peak and power[at] >= MIN_PEAK_RATIO:
                k = ck
                break
        else:
            break
    k2, at2 = _peak_near(power, fy, fx, _rot(k, 90.0), tol + 0.05 * float(np.hypot(*k)))
    partner = float(power[at2]) if at2 is not None else 0.0
    if partner < MIN_PEAK_RATIO:  # speckle (lacey film) makes single peaks, not square pairs
        return (f"the spectrum's peak has no 90° partner ({partner:.0f}× the median, < {MIN_PEAK_RATIO:.0f}×): "
                "not a square lattice")
    return k, k2, ratio


def _known_pitch_reciprocal(power: F64, width: int, pitch: float) -> tuple[F64, F64, float] | str:
    """The square lattice of nominal ``pitch`` (px) whose spectral peaks stand highest together.

    Every square lattice of a pitch within :data:`KNOWN_PITCH_TOLERANCE` of the nominal one and
    of every rotation is scored by the whitened power at its two fundamentals and its two (1, 1)
    harmonics: four peaks that a lattice makes together and noise only by chance, so that a
    lattice too faint for any single peak to stand out is still found. Returns the reciprocal
    basis (cycles/px) and the score over its expectation in noise, or why there is none.
    """
    h = power.shape[0]
    n = min(h, width)
    fy, fx = _frequencies(power.shape, width)
    ring = np.rint(np.hypot(fx, fy) * n).astype(np.int64)
    if n / pitch * math.sqrt(2) >= n / 2 - 2:
        return "image too small for a spectral lattice estimate at the film's pitch"
    # The median power of each ring, in the two bands the candidates look at (fundamentals and
    # (1, 1) harmonics), two rings of margin each side.
    k_bins = n / pitch
    need = np.zeros(power.shape, bool)
    for m in (1.0, math.sqrt(2)):
        lo, hi = math.floor(m * k_bins / (1 + KNOWN_PITCH_TOLERANCE)) - 2, math.ceil(m * k_bins / (1 - KNOWN_PITCH_TOLERANCE)) + 2
        need |= (ring >= lo) & (ring <= hi)
    index = np.unique(ring[need])
    profile = np.full(int(ring.max()) + 1, np.inf)
    profile[index] = ndi.median(power[need], ring[need], index)
    white = power / np.maximum(profile[ring], 1e-30)
    step = 0.5 / k_bins  # half a bin along the ring and across it
    scales = np.arange(1 - KNOWN_PITCH_TOLERANCE, 1 + KNOWN_PITCH_TOLERANCE + step / 2, step)
    turns = np.arange(0.0, math.pi / 2, step)
    q = 1 / (pitch * scales[:, None])
    k1 = np.stack([q * np.cos(turns)[None], q * np.sin(turns)[None]])  # (2, scales, turns)
    k2 = np.stack([-k1[1], k1[0]])

    def look(k: F64) -> F64:
        kx, ky = np.where(k[0] >= 0, k[0], -k[0]), np.where(k[0] >= 0, k[1], -k[1])
        col = np.clip(np.rint(kx * width).astype(np.int64), 0, power.shape[1] - 1)
        row = np.rint(ky * h).astype(np.int64) % h
        return np.asarray(white[row, col], np.float64)

    fundamentals, harmonics = look(k1) + look(k2), look(k1 + k2) + look(k1 - k2)
    noise = float(np.median(fundamentals + harmonics))  # almost every candidate is noise
    # A disc's form factor gives the fundamentals more power than the (1, 1) harmonics; a lattice
    # √2 larger and turned 45° has the true one's fundamentals for its harmonics: not it.
    score = np.where(fundamentals >= harmonics, fundamentals + harmonics, 0.0)
    best = np.unravel_index(int(np.argmax(score)), score.shape)
    ratio = float(score[best]) / max(noise, 1e-30)
    if ratio < MIN_KNOWN_PITCH_SCORE:
        return (f"no lattice near the film's pitch in the image's spectrum (its four peaks {ratio:.1f}× "
                f"noise, < {MIN_KNOWN_PITCH_SCORE:.1f}×)")
    return k1[:, best[0], best[1]], k2[:, best[0], best[1]], ratio


def _rot(k: F64, deg: float) -> F64:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([c * k[0] - s * k[1], s * k[0] + c * k[1]])


def _fold(band: F32, mask: npt.NDArray[np.bool_], basis: F64, origin: F64,
          rr: float, pixels: tuple[F64, F64, F64] | None = None) -> tuple[F64, int, float, float]:
    """Mean band-pass over one lattice cell: the hole's place in the cell (x, y), its sign, its
    amplitude, and that amplitude over the scatter of the cell away from the hole (a lattice
    read into noise folds to noise, whose peak stands ~3 of its scatters high).

    ``pixels`` (rows, cols, values): the film pixels to fold, when not every one of ``mask``."""
    if pixels is None:
        r_int, c_int = np.nonzero(mask)
        rows, cols, vals = r_int.astype(np.float64), c_int.astype(np.float64), band[r_int, c_int].astype(np.float64)
    else:
        rows, cols, vals = pixels
    frac = (np.linalg.inv(basis) @ np.vstack([cols - origin[0], rows - origin[1]])) % 1.0
    idx = np.minimum((frac * _FOLD_BINS).astype(np.int64), _FOLD_BINS - 1)
    flat = idx[0] * _FOLD_BINS + idx[1]
    total = np.bincount(flat, vals, _FOLD_BINS**2).reshape(_FOLD_BINS, _FOLD_BINS)
    count = np.bincount(flat, minlength=_FOLD_BINS**2).reshape(_FOLD_BINS, _FOLD_BINS)
    cell = ndi.gaussian_filter(total / np.maximum(count, 1), 1.0, mode="wrap")
    cell -= cell.mean()
    sign = 1 if cell.max() >= -cell.min() else -1
    i, j = np.unravel_index(int(np.argmax(sign * cell)), cell.shape)
    uv = (np.array([i, j], np.float64) + 0.5) / _FOLD_BINS
    # Distance of every bin from the hole, across the cell's periodic edges, in binned pixels.
    grid = (np.stack(np.meshgrid(np.arange(_FOLD_BINS), np.arange(_FOLD_BINS), indexing="ij")) + 0.5) / _FOLD_BINS
    d_uv = (grid - uv[:, None, None] + 0.5) % 1.0 - 0.5
    dist = np.linalg.norm(np.einsum("ab,bij->aij", basis, d_uv), axis=0)
    away = cell[dist > _FOLD_CLEAR_RADII * rr]
    amplitude = float(sign * cell[i, j])
    snr = amplitude / max(float(away.std()), 1e-12) if away.size > 8 else 0.0
    return origin + basis @ uv, sign, amplitude, snr


#: The weak lattice's registration: scales and turns of the spectral basis tried (two passes, the
#: second a quarter of the first's steps around its best), keeping the one whose fold stands
#: highest, on at most this many film pixels (a fixed, even subsample).
_REGISTER_SCALES: Final[F64] = np.linspace(-0.012, 0.012, 5)
_REGISTER_TURNS_DEG: Final[F64] = np.linspace(-1.2, 1.2, 5)
_REGISTER_PIXELS: Final[int] = 60_000


def _register(band: F32, mask: npt.NDArray[np.bool_], basis: F64, centre: F64,
              rr: float) -> tuple[F64, tuple[F64, int, float, float]]:
    """The basis near ``basis`` whose fold stands highest, and that fold.

    A peak a few times the median sits a fraction of a frequency bin off; over the tens of cells
    of a square that is a drift of a large part of a pitch, and the sites miss their holes. The
    fold sums every cell: at the true basis it is sharpest, so its SNR is the registration's score.
    """
    rows, cols = np.nonzero(mask)
    every = max(1, len(rows) // _REGISTER_PIXELS)
    rows, cols = rows[::every], cols[::every]
    pixels = rows.astype(np.float64), cols.astype(np.float64), band[rows, cols].astype(np.float64)
    best, best_snr = basis, _fold(band, mask, basis, centre, rr, pixels)[3]
    for shrink in (1.0, 0.25):
        start = best
        for ds in _REGISTER_SCALES * shrink:
            for dt in np.radians(_REGISTER_TURNS_DEG * shrink):
                c, s = math.cos(dt), math.sin(dt)
                trial = (1 + ds) * np.array([[c, -s], [s, c]]) @ start
                trial_snr = _fold(band, mask, trial, centre, rr, pixels)[3]
                if trial_snr > best_snr:
                    best, best_snr = trial, trial_snr
    return best, _fold(band, mask, best, centre, rr)


def image_lattice(image: npt.NDArray[np.floating], *, radius_px: float,
                  pitch_px: float | None = None) -> ImageLattice | str:
    """The hole lattice of an image from its periodicity, or the reason there is none.

    Parameters
    ----------
    image : (H, W) counts, checked (finite, 2-D)
    radius_px : the expected hole radius, image pixels
    pitch_px : the film's nominal lattice pitch, image pixels, when known: the search is then
        held to :data:`KNOWN_PITCH_TOLERANCE` of it, where a weaker peak is trusted

    Returns
    -------
    ImageLattice in image pixels, or a sentence saying why no lattice stands out.
    """
    step = max(1, round(radius_px / _WORK_RADIUS_PX))
    x = robust_normalize(_bin(np.asarray(image, np.float32), step))
    rr = radius_px / step
    band = (ndi.gaussian_filter(x, _DOG_SIGMA[0] * rr) - ndi.gaussian_filter(x, _DOG_SIGMA[1] * rr)).astype(np.float32)
    film, mask = _film_mask(x, rr)
    if mask.mean() < 0.05:
        return "too little film in view for a spectral lattice estimate"
    # A soft-edged mask: a hard one rings in the spectrum at the square's own scale.
    taper = ndi.gaussian_filter(mask.astype(np.float32), rr)
    # Winsorised: a torn film edge or a contaminant is one huge response whose spectral streak
    # can outshine hundreds of faint holes; clipped at a few robust σ it weighs like a hole.
    mid = float(np.median(band[mask]))
    spread = 1.4826 * float(np.median(np.abs(band[mask] - mid))) + 1e-12
    clipped = np.clip(band, mid - _CLIP_SIGMA * spread, mid + _CLIP_SIGMA * spread)
    masked = (clipped - clipped[mask].mean()) * taper
    power = np.abs(np.fft.rfft2(masked)) ** 2
    found = _reciprocal(power, rr, x.shape[1])
    result = found if isinstance(found, str) else _lattice_of(found, band, mask, film, step, rr, weak=False)
    if pitch_px is None:
        return result
    if isinstance(result, ImageLattice):
        q = result.lattice.pitch_px / pitch_px
        if not any(abs(q * h - 1) <= 2 * KNOWN_PITCH_TOLERANCE for h in (math.sqrt(2), 2.0)):
            # The film's pitch, or another one the image shows clearly (the hole type given may
            # be wrong; a strong lattice's side lobes would make a phantom at the nominal pitch).
            return result
        result = (f"the spectrum's lattice (pitch {result.lattice.pitch_px:.1f} px) is a harmonic of the film's "
                  f"({pitch_px:.1f} px)")
    if min(image.shape) < KNOWN_PITCH_MIN_CELLS * pitch_px:
        return f"{result}; too few lattice cells in view ({min(image.shape) / pitch_px:.1f} across) for the film's pitch"
    # Zero-padded to twice the size: the spectrum sampled at half-bin steps, so that a peak off
    # the bin grid is seen at nearly its full height (no neighbourhood maximum, which lifts noise).
    padded = np.abs(np.fft.rfft2(masked, s=(2 * masked.shape[0], 2 * masked.shape[1]))) ** 2
    known = _known_pitch_reciprocal(padded, 2 * x.shape[1], pitch_px / step)
    if isinstance(known, str):
        return f"{result}; {known}"
    return _lattice_of(known, band, mask, film, step, rr, weak=True)


def _lattice_of(found: tuple[F64, F64, float], band: F32, mask: npt.NDArray[np.bool_],
                film: npt.NDArray[np.bool_], step: int, rr: float, *, weak: bool) -> ImageLattice | str:
    """The lattice of a reciprocal basis: folded for its origin and sign, refined on the band-pass's
    peaks, in image pixels; or why not (it folds to no hole)."""
    k1, k2, ratio = found
    basis = np.linalg.inv(np.vstack([k1, k2]))  # columns: the real-space lattice vectors a, b
    centre = np.array([band.shape[1] / 2, band.shape[0] / 2])
    if weak:  # a weak lattice, found at the known pitch: its basis is within half a bin
        basis, (origin, sign, amplitude, fold_snr) = _register(band, mask, basis, centre, rr)
    else:
        origin, sign, amplitude, fold_snr = _fold(band, mask, basis, centre, rr)
    if fold_snr < MIN_FOLD_SNR:
        return (f"the image's spectral lattice folds to no hole (fold {fold_snr:.1f}× its scatter, "
                f"< {MIN_FOLD_SNR:.0f}×): not used")
    signed = (sign * band).astype(np.float32)
    pitch = float(np.linalg.norm(basis, axis=0).mean())
    size = max(3, int(0.6 * pitch) | 1)
    peak = (signed == ndi.maximum_filter(signed, size=size)) & mask & (signed > 0.3 * amplitude)
    py, px = np.nonzero(peak)
    lat = Lattice(origin=origin, a=basis[:, 0], b=basis[:, 1])
    if len(px) >= 4:
        lat, _, _, _ = refine_lattice(np.column_stack([px, py]).astype(np.float64), lat,
                                      INLIER_TOLERANCE * pitch)
    # Back to image pixels: a binned pixel (c, r) is centred on image pixel (c + ½)·step − ½.
    s = float(step)
    full = Lattice(origin=(lat.origin + 0.5) * s - 0.5, a=lat.a * s, b=lat.b * s)
    return ImageLattice(lattice=full, sign=sign, peak_ratio=ratio, band=signed, step=step, amplitude=amplitude,
                        film=film, weak=weak)
