"""A crowded cellular specimen for tomography: proteins at their real sizes, vesicles, gold, crowders.

The volume is the Coulomb potential relative to vitreous ice (V), indexed ``(z, y, x)`` with
z along the beam at zero tilt and the tilt axis along y. Proteins are the twin's Gaussian
mixtures (:mod:`gridpilot_sim.world.particles`, the vendored wwPDB models), each rotated by a
uniform random orientation and splatted into one grid, which one Fourier pass turns into the
sum of their Gaussians (:func:`gridpilot_sim.world.density.splat_kernel_rfft`, the same kernel as
the twin's density maps). Vesicles are lipid bilayers (two head-group layers), gold fiducials are
10 nm spheres, crowders are small procedural globules that fill the cytoplasm and are not picked.

>>> cell = build_cell(CellSpec(shape_zyx=(16, 40, 40), species=(("hollow_shell", 3),),
...                            crowders=2, vesicles=0, gold=1, seed=2))
>>> cell.potential_v.shape, sorted({p.species for p in cell.particles})
((16, 40, 40), ['hollow_shell'])
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from gridpilot.errors import InvalidInput
from gridpilot_sim.world.density import splat_kernel_rfft
from gridpilot_sim.world.orientations import quaternion_to_matrix, random_quaternions
from gridpilot_sim.world.particles import SPECIES, GaussianMixture, load_species

__all__ = ["DEFAULT_SPECIES", "Cell", "CellSpec", "Fiducial", "TomoParticle", "Vesicle", "build_cell"]

#: The default mix: the classic CET target, a small hollow shell and an irregular complex.
DEFAULT_SPECIES: Final[tuple[tuple[str, int], ...]] = (
    ("ribosome", 40), ("apoferritin", 40), ("spliceosome", 20),
)
# Lipid bilayer: two head-group layers 38 Å apart (σ 5 Å, +2 V) around a slightly
# lighter hydrocarbon core (−0.6 V); the bilayer is ≈ 4–5 nm thick.
_HEAD_OFFSET_A: Final[float] = 19.0
_HEAD_SIGMA_A: Final[float] = 5.0
_HEAD_POTENTIAL_V: Final[float] = 2.0
_CORE_SIGMA_A: Final[float] = 8.0
_CORE_POTENTIAL_V: Final[float] = -0.6
_MEMBRANE_HALF_A: Final[float] = 30.0
# Gold: mean inner potential ≈ 30 V against ice's 4.5 V; 10 nm beads, a soft 4 Å edge.
_GOLD_POTENTIAL_V: Final[float] = 25.0
_GOLD_RADIUS_A: Final[float] = 50.0
_GOLD_EDGE_A: Final[float] = 4.0
# Vesicle radii (Å): small transport vesicles to organelle-like compartments.
_VESICLE_RADIUS_A: Final[tuple[float, float]] = (250.0, 600.0)
_CROWDER_SPECIES: Final[str] = "blob_chain"
# Gap kept between any two objects, Å (crowding without interpenetration).
_GAP_A: Final[float] = 6.0
_MAX_TRIES: Final[int] = 400


@dataclass(frozen=True)
class CellSpec:
    """What a cell volume holds.

    Attributes
    ----------
    shape_zyx : voxels (z along the beam, y the tilt axis, x)
    voxel_size_a : Å per voxel
    species : (name, count) of the picked species, names from :data:`SPECIES`
    crowders : small procedural globules filling the cytoplasm (not in the particle truth)
    vesicles : lipid vesicles
    gold : 10 nm gold fiducials
    seed : everything random comes from ``default_rng([seed, …])``
    """

    shape_zyx: tuple[int, int, int] = (128, 512, 512)
    voxel_size_a: float = 10.0
    species: tuple[tuple[str, int], ...] = DEFAULT_SPECIES
    crowders: int = 400
    vesicles: int = 3
    gold: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.shape_zyx) != 3 or min(self.shape_zyx) < 8:
            raise InvalidInput(f"shape_zyx must be three sides of at least 8, got {self.shape_zyx}")
        if not 1.0 <= self.voxel_size_a <= 50.0:
            raise InvalidInput(f"voxel_size_a must be 1–50 Å, got {self.voxel_size_a}")
        for name, count in self.species:
            if name not in SPECIES:
                raise InvalidInput(f"unknown species {name!r}; known: {', '.join(sorted(SPECIES))}")
            if count < 0:
                raise InvalidInput(f"species count must be >= 0, got {name}={count}")
        if min(self.crowders, self.vesicles, self.gold) < 0:
            raise InvalidInput("crowders, vesicles and gold must be >= 0")


@dataclass(frozen=True)
class TomoParticle:
    """One protein in the volume: centre in voxels (x, y, z) and Å, orientation, size."""

    species: str
    x_vox: float
    y_vox: float
    z_vox: float
    quaternion: tuple[float, float, float, float]
    diameter_a: float


@dataclass(frozen=True)
class Vesicle:
    x_vox: float
    y_vox: float
    z_vox: float
    radius_a: float


@dataclass(frozen=True)
class Fiducial:
    x_vox: float
    y_vox: float
    z_vox: float
    radius_a: float


@dataclass(frozen=True, eq=False)
class Cell:
    """The specimen and its truth.

    Attributes
    ----------
    potential_v : (Z, Y, X) float32, ΔV relative to ice in volts
    voxel_size_a : Å per voxel
    particles : every picked-species protein
    vesicles, gold : the membranes and fiducials
    spec : what it was built from
    """

    potential_v: npt.NDArray[np.float32]
    voxel_size_a: float
    particles: tuple[TomoParticle, ...]
    vesicles: tuple[Vesicle, ...]
    gold: tuple[Fiducial, ...]
    spec: CellSpec
    crowders: int = 0
    diameters_a: dict[str, float] = field(default_factory=dict)

    def truth(self) -> dict[str, Any]:
        """JSON-ready ground truth (positions in voxels, x/y/z; sizes in Å)."""
        return {
            "kind": "cell",
            "shape_zyx": list(self.potential_v.shape),
            "voxel_size_a": self.voxel_size_a,
            "particles": [asdict(p) for p in self.particles],
            "species_diameter_a": self.diameters_a,
            "vesicles": [asdict(v) for v in self.vesicles],
            "gold": [asdict(g) for g in self.gold],
            "crowders": self.crowders,
            "spec": {**asdict(self.spec), "species": [list(s) for s in self.spec.species]},
        }


class _Placer:
    """Rejection sampling of non-overlapping spheres and shells inside the box (Å, x/y/z)."""

    def __init__(self, extent_a: npt.NDArray[np.float64], rng: np.random.Generator) -> None:
        self.extent = extent_a
        self.rng = rng
        self.centres: list[npt.NDArray[np.float64]] = []
        self.radii: list[float] = []
        self.shells: list[tuple[npt.NDArray[np.float64], float]] = []

    def place(self, radius_a: float, *, inside_z: bool = True) -> npt.NDArray[np.float64] | None:
        lo = np.array([radius_a, radius_a, radius_a if inside_z else 0.0])
        hi = self.extent - lo
        if np.any(hi <= lo):
            return None
        for _ in range(_MAX_TRIES):
            c = self.rng.uniform(lo, hi)
            if self._free(c, radius_a):
                self.centres.append(c)
                self.radii.append(radius_a)
                return c
        return None

    def place_shell(self, radius_a: float) -> npt.NDArray[np.float64] | None:
        """A vesicle: its centre may sit anywhere in z (a vesicle cut by the ice surface)."""
        lo = np.array([radius_a, radius_a, 0.3 * self.extent[2]])
        hi = np.array([self.extent[0] - radius_a, self.extent[1] - radius_a, 0.7 * self.extent[2]])
        if np.any(hi <= lo):
            return None
        for _ in range(_MAX_TRIES):
            c = self.rng.uniform(lo, hi)
            ok = all(np.linalg.norm(c - s) > radius_a + r + _MEMBRANE_HALF_A for s, r in self.shells)
            if ok:
                self.shells.append((c, radius_a))
                return c
        return None

    def _free(self, c: npt.NDArray[np.float64], r: float) -> bool:
        if self.centres:
            d = np.linalg.norm(np.asarray(self.centres) - c, axis=1)
            if np.any(d < np.asarray(self.radii) + r + _GAP_A):
                return False
        return all(abs(float(np.linalg.norm(c - s)) - rs) > r + _MEMBRANE_HALF_A for s, rs in self.shells)


def _splat(shape: tuple[int, int, int], xyz_vox: npt.NDArray[np.float64],
           weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Trilinear splat of points (x, y, z voxel coordinates) into a (Z, Y, X) grid; points
    outside are dropped."""
    nz, ny, nx = shape
    flat = np.zeros(nz * ny * nx)
    base = np.floor(xyz_vox).astype(np.int64)
    frac = xyz_vox - base
    for corner in np.ndindex(2, 2, 2):
        off = np.array(corner)
        ijk = base + off
        w = np.prod(np.where(off == 1, frac, 1.0 - frac), axis=1) * weights
        ok = (ijk[:, 0] >= 0) & (ijk[:, 0] < nx) & (ijk[:, 1] >= 0) & (ijk[:, 1] < ny) \
            & (ijk[:, 2] >= 0) & (ijk[:, 2] < nz)
        idx = (ijk[ok, 2] * ny + ijk[ok, 1]) * nx + ijk[ok, 0]
        flat += np.bincount(idx, w[ok], minlength=flat.size)
    return flat.reshape(shape)


def _add_radial(vol: npt.NDArray[np.float64], centre_vox: npt.NDArray[np.float64], reach_a: float,
                voxel_size_a: float, profile: Any) -> None:
    """Add ``profile(r_a)`` within ``reach_a`` of a centre (x, y, z voxels), in place."""
    nz, ny, nx = vol.shape
    reach = reach_a / voxel_size_a
    lo = np.maximum(np.floor(centre_vox - reach).astype(int), 0)
    hi = np.minimum(np.ceil(centre_vox + reach).astype(int) + 1, (nx, ny, nz))
    if np.any(hi <= lo):
        return
    z, y, x = np.ogrid[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    r = voxel_size_a * np.sqrt((x - centre_vox[0]) ** 2 + (y - centre_vox[1]) ** 2 + (z - centre_vox[2]) ** 2)
    vol[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]] += profile(r)


def _bilayer(radius_a: float) -> Any:
    def profile(r: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        d = r - radius_a
        heads = np.exp(-0.5 * ((d - _HEAD_OFFSET_A) / _HEAD_SIGMA_A) ** 2) \
            + np.exp(-0.5 * ((d + _HEAD_OFFSET_A) / _HEAD_SIGMA_A) ** 2)
        core = np.exp(-0.5 * (d / _CORE_SIGMA_A) ** 2)
        return np.asarray(_HEAD_POTENTIAL_V * heads + _CORE_POTENTIAL_V * core)
    return profile


def _gold(r: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(_GOLD_POTENTIAL_V / (1.0 + np.exp((r - _GOLD_RADIUS_A) / _GOLD_EDGE_A)))


def build_cell(spec: CellSpec, *, structures_dir: str | None = None) -> Cell:
    """Build the specimen volume and its truth (deterministic in ``spec.seed``).

    Larger objects are placed first (vesicles, then species by decreasing size, gold, crowders);
    an object that finds no free place after a few hundred tries is left out, so a crowded
    spec holds fewer copies than asked and the truth says how many were placed.
    """
    rng = np.random.default_rng([spec.seed, 0x70C0])
    vs = spec.voxel_size_a
    nz, ny, nx = spec.shape_zyx
    extent = np.array([nx, ny, nz], dtype=np.float64) * vs
    placer = _Placer(extent, rng)
    vol = np.zeros(spec.shape_zyx, dtype=np.float64)

    vesicles: list[Vesicle] = []
    for _ in range(spec.vesicles):
        radius = float(rng.uniform(*_VESICLE_RADIUS_A))
        c = placer.place_shell(radius)
        if c is not None:
            x, y, z = (c / vs).tolist()
            vesicles.append(Vesicle(x, y, z, radius_a=radius))

    mixtures = {name: load_species(name, structures_dir=structures_dir) for name, _ in spec.species}
    order = sorted(spec.species, key=lambda s: -mixtures[s[0]].radius_a)
    atoms = _Points()
    particles: list[TomoParticle] = []
    for name, count in order:
        mix = mixtures[name]
        for q in random_quaternions(rng, count):
            c = placer.place(mix.radius_a)
            if c is None:
                continue
            atoms.add(mix, q, c, vs)
            x, y, z = (c / vs).tolist()
            w, qx, qy, qz = q.tolist()
            particles.append(TomoParticle(name, x, y, z, quaternion=(w, qx, qy, qz), diameter_a=mix.diameter_a))

    gold: list[Fiducial] = []
    for _ in range(spec.gold):
        c = placer.place(_GOLD_RADIUS_A)
        if c is not None:
            x, y, z = (c / vs).tolist()
            gold.append(Fiducial(x, y, z, radius_a=_GOLD_RADIUS_A))

    crowd = _Points()
    n_crowders = 0
    for i in range(spec.crowders):
        mix = load_species(_CROWDER_SPECIES, seed=i % 8)
        c = placer.place(mix.radius_a)
        if c is None:
            continue
        crowd.add(mix, random_quaternions(rng, 1)[0], c, vs)
        n_crowders += 1

    # One Fourier pass per component width turns the splats into sums of Gaussians.
    shape = spec.shape_zyx
    sigma_atoms = min((m.sigma_a for m in mixtures.values()), default=1.0)
    spectrum = sfft.rfftn(atoms.splat(shape)) * splat_kernel_rfft(shape, vs, sigma_atoms)
    if n_crowders:
        sigma_crowd = load_species(_CROWDER_SPECIES).sigma_a
        spectrum += sfft.rfftn(crowd.splat(shape)) * splat_kernel_rfft(shape, vs, sigma_crowd)
    vol += sfft.irfftn(spectrum, s=shape)
    del spectrum
    for v in vesicles:
        _add_radial(vol, np.array([v.x_vox, v.y_vox, v.z_vox]), v.radius_a + 4 * _MEMBRANE_HALF_A, vs,
                    _bilayer(v.radius_a))
    for g in gold:
        _add_radial(vol, np.array([g.x_vox, g.y_vox, g.z_vox]), _GOLD_RADIUS_A + 6 * _GOLD_EDGE_A, vs, _gold)
    diameters = {name: mixtures[name].diameter_a for name, _ in spec.species}
    return Cell(vol.astype(np.float32), vs, tuple(particles), tuple(vesicles), tuple(gold), spec,
                crowders=n_crowders, diameters_a=diameters)


@functools.lru_cache(maxsize=32)
def _coarse_components(mix: GaussianMixture, cell_a: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """A mixture's components merged within cubes of ``cell_a`` (weighted centroid, summed
    weight): at half a voxel this keeps the splat's first moments and cuts a ribosome's
    148 000 atoms to a few ten thousand points."""
    xyz = mix.centers_a.astype(np.float64)
    w = mix.potential_v_a3.astype(np.float64)
    keys = np.floor(xyz / cell_a).astype(np.int64)
    _, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    total = np.bincount(inverse, w).astype(np.float64)
    centroid = np.stack([np.bincount(inverse, w * xyz[:, d]) for d in range(3)], axis=1) / total[:, None]
    return np.asarray(centroid, dtype=np.float64), total


class _Points:
    """Rotated mixture components gathered for one splat (x, y, z voxels; V·voxel⁻³ weights)."""

    def __init__(self) -> None:
        self.xyz: list[npt.NDArray[np.float64]] = []
        self.w: list[npt.NDArray[np.float64]] = []

    def add(self, mix: GaussianMixture, q: npt.ArrayLike, centre_a: npt.NDArray[np.float64],
            voxel_size_a: float) -> None:
        body, weights = _coarse_components(mix, 0.5 * voxel_size_a)
        xyz = body @ quaternion_to_matrix(q).T + centre_a
        self.xyz.append(xyz / voxel_size_a)
        self.w.append(weights / voxel_size_a**3)

    def splat(self, shape: tuple[int, int, int]) -> npt.NDArray[np.float64]:
        if not self.xyz:
            return np.zeros(shape)
        return _splat(shape, np.concatenate(self.xyz), np.concatenate(self.w))


def species_radius_a(names: Sequence[str], *, structures_dir: str | None = None) -> dict[str, float]:
    """Radius (Å) of each named species' mixture."""
    return {n: load_species(n, structures_dir=structures_dir).radius_a for n in names}

