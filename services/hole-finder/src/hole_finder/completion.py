"""Lattice completion: which free sites of a fitted hole lattice hold a hole the network missed.

A holey film is punched on a regular lattice, so a free site inside the film's open area almost
always holds a hole (the twin leaves 1 % of sites unpunched); what the network misses there is
mostly a hole under thick ice, or beside a bar where the meniscus darkens it. A site is *not* a
target when a bar cuts it, when it lies on the metal, when it is broken film or vacuum (brighter
than every detected hole), or when a contaminant sits on it. :func:`judge_sites` runs each test
on every free site and keeps the outcomes, so that the caller adds the sites that pass them all
and a bench can say which test refused a hole.

>>> import numpy as np
>>> img = np.full((64, 64), 100.0, np.float32); img[:, 48:] = 2.0  # film, and a bar from column 48
>>> yy, xx = np.mgrid[:64, :64]
>>> for cx in (16, 40):
...     img[np.hypot(xx - cx, yy - 32) < 6] = 140.0  # two holes, brighter than the film
>>> heat = np.array([[0.2, 0.2], [0.0, 0.0], [0.0, 0.0]], np.float32)  # faint heat at both sites
>>> t = judge_sites(img, heat, np.array([16.0, 46.0]), np.array([32.0, 32.0]), radius_px=6.0,
...                 hole_contrast=np.array([1.3, 1.4, 1.5]), bar_level=51.0, threshold=0.4)
>>> t.accepted.tolist(), t.first_refusal().tolist()
([True, False], ['', 'cut by a bar'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from .bars import cut_by_bars, sector_means
from .ice import RING_RADII, contrast_z, hole_intensities

__all__ = ["SiteTests", "judge_sites"]

F64 = npt.NDArray[np.float64]
B = npt.NDArray[np.bool_]

#: A free site is completed when its heat is at least this fraction of the threshold …
HEAT_FRACTION: Final[float] = 0.25
#: … or the band-pass there is at least this fraction of the typical hole's (the image's own
#: periodicity, :mod:`hole_finder.periodic`: it sees faint holes the network does not) …
EVIDENCE_MIN: Final[float] = 0.5
#: … and its hole/ring contrast lies inside the detected holes' 2–98 % range widened by this.
CONTRAST_SLACK: Final[float] = 0.1
#: Or, whatever the heat: its disc is darker than its ring by this many standard errors — a hole
#: under the meniscus's thick ice, darker than its film and than the bar level the brightness
#: test asks for. (Not brighter: a site whose ring a bar darkens would pass.)
Z_MIN: Final[float] = 4.0
#: … with a film ring around it that no bar edge crosses: its darkest eighth at least this
#: fraction of its brightest (a site on the bar beside the film reads dark against a ring that
#: is half film).
RING_UNIFORMITY: Final[float] = 0.5


@dataclass(frozen=True, eq=False)
class SiteTests:
    """Free lattice sites (x, y; image pixels) and each completion test's outcome (True: passed)."""

    x: F64
    y: F64
    free: B  # no contaminant detection on the site
    open: B  # no bar cuts it
    heat: B  # the network's hole or empty heat there is not negligible, or the band-pass shows a hole
    contrast: B  # its hole/ring contrast is that of a hole, not of broken film or metal
    bright: B  # its disc is brighter than the bar level
    film: B  # its ring is film, not broken film or vacuum (no brighter than the holes' rings)
    significant: B  # its disc is darker than its ring by Z_MIN standard errors
    empty: B  # the network's empty-hole heat beats its hole heat: label "empty"
    mean: F64
    median: F64
    background: F64

    @property
    def accepted(self) -> B:
        return self.free & self.open & self.film & ((self.heat & self.contrast & self.bright) | self.significant)

    def first_refusal(self) -> npt.NDArray[np.str_]:
        """Per site, the first test it failed, in the order of the chain ('' when accepted).

        The look tests (heat, contrast, brightness) count only for a site that is not
        significant on its own.
        """
        out = np.full(len(self.x), "", dtype="<U24")
        unseen = ~self.significant
        for name, ok in (("bright", self.bright | ~unseen), ("contrast", self.contrast | ~unseen),
                         ("heat", self.heat | ~unseen), ("broken film", self.film), ("cut by a bar", self.open),
                         ("contaminant on it", self.free)):
            out = np.where(ok, out, name)
        return out


def judge_sites(img: npt.NDArray[np.float32], heat: npt.NDArray[np.float32], sx: F64, sy: F64, *,
                radius_px: float, hole_contrast: F64, bar_level: float | None, threshold: float,
                occupied: B | None = None, hole_rings: F64 | None = None,
                evidence: F64 | None = None) -> SiteTests:
    """Run the completion's tests on free lattice sites.

    Parameters
    ----------
    img : (H, W) counts
    heat : (3, N) the network's hole, empty and contaminant heat at each site
    sx, sy : (N,) site centres, image pixels
    radius_px : the detected holes' median radius
    hole_contrast : (M,) median / ring median of the holes the network found (finite values)
    bar_level : from :func:`~hole_finder.bars.bar_level`; ``None`` when no bar is in view
    threshold : the centre-score threshold of the detections
    occupied : (N,) sites a contaminant detection sits on
    hole_rings : (M,) film-ring medians of the holes the network found: a site whose ring is
        brighter than their 98th percentile (plus the slack) lies in broken film or vacuum,
        where the twin and the microscope have no target
    evidence : (N,) the image's band-pass at each site over the typical hole's
        (:meth:`~hole_finder.periodic.ImageLattice.evidence`); a site where it reaches
        :data:`EVIDENCE_MIN` passes the heat test

    Returns
    -------
    SiteTests with every test's outcome and the sites' intensities.
    """
    n = len(sx)
    radii = np.full(n, radius_px)
    stats = hole_intensities(img, sx, sy, radii)
    ones = np.ones(n, bool)
    free = ~occupied if occupied is not None else ones
    open_site = ~cut_by_bars(img, sx, sy, radii, bar_level) if n else ones
    hole_heat = heat[:2].max(axis=0) if n else np.zeros(0, np.float32)
    heat_ok = hole_heat >= HEAT_FRACTION * threshold
    if evidence is not None:
        heat_ok = heat_ok | (evidence >= EVIDENCE_MIN)
    with np.errstate(divide="ignore", invalid="ignore"):  # a ring on an opaque bar reads 0
        c = stats.median / stats.background
    if hole_contrast.size:
        lo, hi = np.percentile(hole_contrast, [2, 98])
        slack = CONTRAST_SLACK * max(hi - lo, 1e-6)
        # Within the detected holes' contrast range, widened by the slack: brighter than the
        # brightest is broken film or vacuum around the square; far darker is no hole.
        contrast = np.isfinite(c) & (c >= lo - slack) & (c <= hi + slack)
    else:  # no hole found to compare with: only the band-pass evidence can vouch for a site
        contrast = np.ones(n, bool) if evidence is not None else np.zeros(n, bool)
    bright = stats.mean > bar_level if bar_level is not None else ones
    film = ones
    rings = hole_rings[np.isfinite(hole_rings)] if hole_rings is not None else np.zeros(0)
    if rings.size:
        r_lo, r_hi = np.percentile(rings, [2, 98])
        film = ~(stats.background > r_hi + CONTRAST_SLACK * max(r_hi - r_lo, 1e-6))
    with np.errstate(invalid="ignore"):
        significant = contrast_z(img, sx, sy, radius_px) <= -Z_MIN
    if significant.any():
        sectors = sector_means(img, sx[significant], sy[significant], radii[significant], ring=RING_RADII)
        with np.errstate(invalid="ignore"):
            even = np.nanmin(sectors, axis=1, initial=np.inf) >= RING_UNIFORMITY * np.nanmax(sectors, axis=1, initial=-np.inf)
        significant[np.flatnonzero(significant)[~even]] = False
    return SiteTests(x=sx, y=sy, free=free, open=open_site, heat=heat_ok, contrast=contrast, bright=bright, film=film,
                     significant=significant, empty=heat[1] > heat[0] if n else np.zeros(0, bool),
                     mean=stats.mean, median=stats.median, background=stats.background)
