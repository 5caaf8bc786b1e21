"""Where particles sit in the ice: positions in Å, depths, orientations, aggregation.

Everything here is physical (Å, nm), never pixels, so a scene placed once renders the same at any
pixel size. Depth z is measured from the ice mid-plane along the beam, positive downstream; a
particle's defocus is the mid-plane defocus plus z.

>>> spec = ParticleSpec("hollow_shell", concentration_per_um3=4e4)
>>> placed = place_particles([spec], {"hollow_shell": 64.0}, (0.0, 2000.0, 0.0, 2000.0),
...                          lambda x, y: np.full_like(x, 40.0), np.random.default_rng(0))
>>> placed.xyz_a.shape[1], placed.quaternions.shape[1]
(3, 4)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot_sim.checks import require_fraction, require_non_negative
from gridpilot_sim.world.orientations import preferred_quaternions, random_quaternions

__all__ = ["ParticlePlacement", "ParticleSpec", "PlacedParticles", "areal_density_per_um2", "place_particles"]

ThicknessFn = Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], npt.NDArray[np.float64]]

# Two particles may overlap by this fraction of their summed radii (radii include a 2σ skirt).
_PACKING: Final[float] = 0.85
_AGGREGATE_TRIES: Final[int] = 12
_A_PER_NM: Final[float] = 10.0
_A2_PER_UM2: Final[float] = 1e8


@dataclass(frozen=True)
class ParticleSpec:
    """A population of one species, its concentration and behaviour in the ice.

    Attributes
    ----------
    species : a name in :data:`gridpilot_sim.world.particles.SPECIES`
    concentration_per_um3 : particles per µm³ of ice; the areal density rises with thickness
        (4e4 gives ≈ 1600 per µm² in 40 nm of ice)
    preferred_fraction : fraction of particles in the preferred view, 0–1
    preferred_axis : body axis that the preferred view aligns with the beam
    preferred_spread_rad : angular spread of the preferred view
    aggregation_onset_nm : ice thickness above which particles start to cluster
    aggregation_scale_nm : thickness over which the clustered fraction rises to its maximum
    max_aggregated_fraction : largest fraction of particles in clusters, 0–1
    areal_density_per_um2 : if set, particles per µm² whatever the thickness (for callers that have
        already worked out the local density, e.g. from the world's local scene)
    """

    species: str = "hollow_shell"
    concentration_per_um3: float = 4e4
    preferred_fraction: float = 0.0
    preferred_axis: tuple[float, float, float] = (0.0, 0.0, 1.0)
    preferred_spread_rad: float = 0.2
    aggregation_onset_nm: float = 80.0
    aggregation_scale_nm: float = 100.0
    max_aggregated_fraction: float = 0.6
    areal_density_per_um2: float | None = None

    def __post_init__(self) -> None:
        require_non_negative(self, ("concentration_per_um3",))
        require_fraction(self, ("preferred_fraction", "max_aggregated_fraction"))


@dataclass(frozen=True)
class ParticlePlacement:
    """One particle at an explicit place (Å); a ``None`` quaternion is drawn uniformly."""

    species: str
    x_a: float
    y_a: float
    z_a: float = 0.0
    quaternion: tuple[float, float, float, float] | None = None


@dataclass(frozen=True, eq=False)
class PlacedParticles:
    """Placed particles (arrays share their first axis).

    Attributes
    ----------
    species : (n,) names
    xyz_a : (n, 3) float64 positions: x, y in the reference frame (Å), z from the ice mid-plane
        (Å, positive downstream)
    quaternions : (n, 4) float64 orientations (w, x, y, z), body → lab
    aggregated : (n,) bool, placed as part of a cluster
    """

    species: tuple[str, ...]
    xyz_a: npt.NDArray[np.float64]
    quaternions: npt.NDArray[np.float64]
    aggregated: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.species)


def areal_density_per_um2(spec: ParticleSpec, thickness_nm: npt.ArrayLike, diameter_a: float) -> npt.NDArray[np.float64]:
    """Expected particles per µm² of ice of a given thickness.

    Notes
    -----
    n(t) = c · t · clip(2t/d − 1, 0, 1): proportional to the volume of ice, and zero where the
    ice is thinner than half a particle (particles are pushed out of thin ice). A spec with
    ``areal_density_per_um2`` set gives that number everywhere instead.
    """
    t_nm = np.asarray(thickness_nm, dtype=np.float64)
    if spec.areal_density_per_um2 is not None:
        return np.full_like(t_nm, spec.areal_density_per_um2)
    fit = np.clip(2.0 * t_nm * _A_PER_NM / diameter_a - 1.0, 0.0, 1.0)
    return np.asarray(spec.concentration_per_um3 * t_nm * 1e-3 * fit)


def place_particles(
    populations: Sequence[ParticleSpec],
    radii_a: Mapping[str, float],
    region_a: tuple[float, float, float, float],
    thickness_nm: ThicknessFn,
    rng: np.random.Generator,
    explicit: Sequence[ParticlePlacement] = (),
) -> PlacedParticles:
    """Place explicit particles, then each population, without overlaps.

    Parameters
    ----------
    populations : species populations, placed in order
    radii_a : particle radius (Å) per species name
    region_a : (x0, x1, y0, y1) in Å where centres may fall
    thickness_nm : ice thickness (nm) at positions (x, y) in Å
    rng : seeded generator (only physical quantities are drawn, never pixels)
    explicit : particles at given positions; they are kept even if they overlap

    Notes
    -----
    Candidates form a Poisson process of rate n(t_max) thinned to n(t(r))
    (:func:`areal_density_per_um2`). Depths are uniform in |z| ≤ max(t/2 − r, 0). A candidate is
    aggregated with probability f(t) = f_max clip((t − t_on)/t_scale, 0, 1) and then moved next to
    a particle already placed; a candidate that overlaps is dropped.
    """
    n_cap = len(explicit) + sum(_expected_max(pop, radii_a, region_a, thickness_nm) for pop in populations)
    book = _Book(n_cap)
    for p in explicit:
        q = np.asarray(p.quaternion, dtype=np.float64) if p.quaternion is not None else random_quaternions(rng, 1)[0]
        book.add(p.species, np.array([p.x_a, p.y_a, p.z_a]), radii_a[p.species], q / np.linalg.norm(q))
    x0, x1, y0, y1 = region_a
    area_um2 = (x1 - x0) * (y1 - y0) / _A2_PER_UM2
    for pop in populations:
        radius = radii_a[pop.species]
        rate_max = float(areal_density_per_um2(pop, _max_thickness(region_a, thickness_nm), 2 * radius))
        n_cand = int(rng.poisson(rate_max * area_um2)) if rate_max > 0 else 0
        cand = np.column_stack([rng.uniform(x0, x1, n_cand), rng.uniform(y0, y1, n_cand)])
        t_cand = thickness_nm(cand[:, 0], cand[:, 1])
        keep = rng.random(n_cand) * rate_max < areal_density_per_um2(pop, t_cand, 2 * radius)
        agg_frac = pop.max_aggregated_fraction * np.clip(
            (t_cand - pop.aggregation_onset_nm) / pop.aggregation_scale_nm, 0.0, 1.0
        )
        wants_cluster = rng.random(n_cand) < agg_frac
        first = book.n
        orientations = _orientations(pop, int(keep.sum()), rng)
        for (cx, cy), t_nm, clus, q in zip(
            cand[keep], t_cand[keep], wants_cluster[keep], orientations, strict=True
        ):
            site = _cluster_site(rng, book, first, radius, region_a, thickness_nm) if clus else None
            if site is None:
                z_half = max(0.5 * t_nm * _A_PER_NM - radius, 0.0)
                pos, anchor = np.array([cx, cy, rng.uniform(-z_half, z_half)]), -1
            else:
                pos, anchor = site
            if book.overlaps(pos, radius):
                continue
            book.add(pop.species, pos, radius, q, aggregated=anchor >= 0)
            if anchor >= 0:
                book.aggregated[anchor] = True
    return book.result()


class _Book:
    """Growing arrays of placed particles, for vectorised overlap checks."""

    def __init__(self, capacity: int) -> None:
        self.n = 0
        self.species: list[str] = []
        self.xyz = np.zeros((max(capacity, 1), 3))
        self.radius = np.zeros(max(capacity, 1))
        self.quats = np.zeros((max(capacity, 1), 4))
        self.aggregated = np.zeros(max(capacity, 1), dtype=bool)

    def add(self, species: str, pos: npt.NDArray[np.float64], radius: float,
            q: npt.NDArray[np.float64], *, aggregated: bool = False) -> None:
        if self.n == self.xyz.shape[0]:
            grow = self.xyz.shape[0]
            self.xyz = np.concatenate([self.xyz, np.zeros((grow, 3))])
            self.radius = np.concatenate([self.radius, np.zeros(grow)])
            self.quats = np.concatenate([self.quats, np.zeros((grow, 4))])
            self.aggregated = np.concatenate([self.aggregated, np.zeros(grow, dtype=bool)])
        self.species.append(species)
        self.xyz[self.n], self.radius[self.n], self.quats[self.n] = pos, radius, q
        self.aggregated[self.n] = aggregated
        self.n += 1

    def overlaps(self, pos: npt.NDArray[np.float64], radius: float) -> bool:
        d = np.linalg.norm(self.xyz[: self.n] - pos, axis=1)
        return bool(np.any(d < _PACKING * (radius + self.radius[: self.n])))

    def result(self) -> PlacedParticles:
        n = self.n
        return PlacedParticles(tuple(self.species), self.xyz[:n].copy(), self.quats[:n].copy(),
                               self.aggregated[:n].copy())


def _max_thickness(region_a: tuple[float, float, float, float], thickness_nm: ThicknessFn) -> float:
    """Largest thickness over the region (the ice is smooth: a 17 × 17 probe grid suffices)."""
    probe = np.linspace(0.0, 1.0, 17)
    px, py = np.meshgrid(region_a[0] + probe * (region_a[1] - region_a[0]),
                         region_a[2] + probe * (region_a[3] - region_a[2]))
    return float(np.max(thickness_nm(px, py)))


def _expected_max(
    pop: ParticleSpec, radii_a: Mapping[str, float], region_a: tuple[float, float, float, float],
    thickness_nm: ThicknessFn,
) -> int:
    rate = float(areal_density_per_um2(pop, _max_thickness(region_a, thickness_nm), 2 * radii_a[pop.species]))
    area_um2 = (region_a[1] - region_a[0]) * (region_a[3] - region_a[2]) / _A2_PER_UM2
    return int(rate * area_um2 * 1.2) + 16


def _cluster_site(
    rng: np.random.Generator,
    book: _Book,
    first: int,
    radius: float,
    region_a: tuple[float, float, float, float],
    thickness_nm: ThicknessFn,
) -> tuple[npt.NDArray[np.float64], int] | None:
    """A position touching a random particle of this population (and that particle's index)."""
    if book.n <= first:
        return None
    for _ in range(_AGGREGATE_TRIES):
        anchor = int(rng.integers(first, book.n))
        ang = rng.uniform(0, 2 * math.pi)
        pos = book.xyz[anchor] + 2 * radius * _PACKING * 1.05 * np.array([math.cos(ang), math.sin(ang), 0.0])
        if not (region_a[0] <= pos[0] < region_a[1] and region_a[2] <= pos[1] < region_a[3]):
            continue
        t_nm = float(thickness_nm(pos[:1], pos[1:2])[0])
        z_half = max(0.5 * t_nm * _A_PER_NM - radius, 0.0)
        pos[2] = float(np.clip(pos[2] + rng.normal(scale=0.3 * radius), -z_half, z_half))
        if not book.overlaps(pos, radius):
            return pos, anchor
    return None


def _orientations(pop: ParticleSpec, n: int, rng: np.random.Generator) -> list[npt.NDArray[np.float64]]:
    q = random_quaternions(rng, n)
    if pop.preferred_fraction > 0 and n > 0:
        preferred = rng.random(n) < pop.preferred_fraction
        q[preferred] = preferred_quaternions(rng, int(preferred.sum()), pop.preferred_axis,
                                             pop.preferred_spread_rad)
    return list(q)
