"""Particle species for the twin: Gaussian-mixture Coulomb potentials from real atomic models or
procedural shapes.

Every species is a :class:`GaussianMixture`: component centres in Å (centred on the potential's
centre of mass), each component's integrated potential ΔV·volume in V·Å³ relative to the ice,
and one Gaussian width. Real species come from the wwPDB models in the structures folder
(an atom is a component); procedural species (blobs) need no files and serve fast tests.
Projections and 3D maps of a mixture are in :mod:`gridpilot_sim.world.density`.

>>> shell = load_species("hollow_shell")
>>> shell.centers_a.shape, round(shell.radius_a)
((24, 3), 64)

Folders: the structures folder is the ``structures_dir`` argument, else ``$GRIDPILOT_STRUCTURES_DIR``,
else the CC0 models vendored in this package (``gridpilot_sim/world/structures``). Parsed models and density maps are cached under
``cache_dir``, else ``$GRIDPILOT_CACHE_DIR/densities``, else ``~/.cache/gridpilot/densities``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot.errors import InvalidInput, NotFound

__all__ = [
    "SPECIES",
    "GaussianMixture",
    "Species",
    "asymmetric_l",
    "blob_chain",
    "density_cache_dir",
    "file_digest",
    "find_structures_dir",
    "hollow_shell",
    "load_species",
    "mixture_from_atoms",
]

STRUCTURES_ENV: Final[str] = "GRIDPILOT_STRUCTURES_DIR"
CACHE_ENV: Final[str] = "GRIDPILOT_CACHE_DIR"
#: The wwPDB models (CC0) shipped inside the package: a fresh install renders real proteins.
DEFAULT_STRUCTURES_DIR: Final[Path] = Path(__file__).resolve().parent / "structures"
_CACHE_FORMAT: Final[int] = 1  # bump when the cached arrays change meaning

# Mean inner potential of protein (≈ 7 V) minus that of vitreous ice (≈ 4.5 V): TWIN-PHYSICS.md.
PROTEIN_ICE_CONTRAST_V: Final[float] = 2.5
# Partial specific volume of protein, 0.73 cm³/g = 1.21 Å³/Da.
_VOLUME_A3_PER_DA: Final[float] = 1.21
# Deposited models lack hydrogens, about 7–8 % of a protein's mass.
_HYDROGEN_MASS_FACTOR: Final[float] = 1.08
# Width of one atom's potential including thermal motion (B ≈ 8π²σ² ≈ 80 Å²).
_ATOM_SIGMA_A: Final[float] = 1.0
# Coarse-grained species (one component per residue) use a wider Gaussian (a residue is ≈ 4 Å).
_RESIDUE_SIGMA_A: Final[float] = 2.0


@dataclass(frozen=True, eq=False)
class GaussianMixture:
    """A particle's Coulomb potential (relative to ice) as a sum of isotropic 3D Gaussians.

    Attributes
    ----------
    name : species name
    centers_a : (N, 3) float32, component centres (x, y, z) in Å, centred on the centre of mass
    potential_v_a3 : (N,) float32, integrated potential ∫ΔV d³r of each component, V·Å³
    sigma_a : Gaussian standard deviation of every component, Å
    mass_da : molecular mass used to scale the potential, Da
    radius_a : largest centre distance from the centre of mass plus 2σ, Å
    source : where it came from (file name and digest, or procedural seed)
    """

    name: str
    centers_a: npt.NDArray[np.float32]
    potential_v_a3: npt.NDArray[np.float32]
    sigma_a: float
    mass_da: float
    radius_a: float
    source: str

    @property
    def diameter_a(self) -> float:
        return 2.0 * self.radius_a


def mixture_from_atoms(
    name: str,
    xyz_a: npt.ArrayLike,
    weights: npt.ArrayLike,
    *,
    mass_da: float,
    sigma_a: float = _ATOM_SIGMA_A,
    source: str = "",
) -> GaussianMixture:
    """Scale relative component weights into a physical potential.

    Parameters
    ----------
    xyz_a : (N, 3) component positions, Å
    weights : (N,) relative scattering weights (atomic number for atoms)
    mass_da : molecular mass, Da

    Notes
    -----
    Σ_j U_j = ΔV̄ · v̄ · M, with ΔV̄ = 2.5 V (protein minus ice mean inner potential) and
    v̄ = 1.21 Å³/Da, distributed over components in proportion to ``weights``. The projected
    phase is then φ = σ Σ_j U_j G_σ(r − r_j) with σ from :func:`gridpilot.optics.interaction_constant`:
    ≈ 0.15 rad through the wall of apoferritin at 300 kV.
    """
    xyz = np.asarray(xyz_a, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3 or w.shape != (xyz.shape[0],) or xyz.shape[0] == 0:
        raise InvalidInput(f"xyz_a must be (N, 3) and weights (N,), got {xyz.shape} and {w.shape}")
    total_v_a3 = PROTEIN_ICE_CONTRAST_V * _VOLUME_A3_PER_DA * mass_da
    u = w / w.sum() * total_v_a3
    center = (xyz * u[:, None]).sum(axis=0) / u.sum()
    xyz = xyz - center
    radius = float(np.sqrt((xyz**2).sum(axis=1)).max()) + 2.0 * sigma_a
    return GaussianMixture(
        name, xyz.astype(np.float32), u.astype(np.float32), sigma_a, mass_da, radius, source
    )


# ----------------------------------------------------------------------------- procedural


def hollow_shell(seed: int = 0, *, outer_a: float = 60.0, inner_a: float = 40.0) -> GaussianMixture:
    """An apoferritin-like hollow shell: 24 blobs with octahedral (432) symmetry.

    The shell spans radii ``inner_a``–``outer_a`` (12 nm / 8 nm diameters by default); the seed
    picks the generic direction that the 24 rotations of the octahedral group replicate.
    """
    rng = np.random.default_rng([seed, 24])
    p0 = rng.normal(size=3)
    p0 *= 0.5 * (outer_a + inner_a) / np.linalg.norm(p0)
    centers = np.array([m @ p0 for m in _octahedral_rotations()])
    sigma = 0.35 * (outer_a - inner_a)
    return mixture_from_atoms(
        "hollow_shell", centers, np.ones(24), mass_da=480e3, sigma_a=sigma,
        source=f"procedural:hollow_shell:{seed}",
    )


def blob_chain(seed: int = 0, *, n_blobs: int = 32, step_a: float = 9.0) -> GaussianMixture:
    """A compact random-walk chain of Gaussian blobs (a small globular protein), seeded."""
    rng = np.random.default_rng([seed, 32])
    centers = [np.zeros(3)]
    while len(centers) < n_blobs:
        d = rng.normal(size=3)
        nxt = centers[-1] + step_a * d / np.linalg.norm(d)
        # Self-avoiding and pulled towards the start, so that the chain folds into a globule.
        nxt -= 0.08 * nxt
        if min(np.linalg.norm(nxt - c) for c in centers) > 0.75 * step_a:
            centers.append(nxt)
    return mixture_from_atoms(
        "blob_chain", np.array(centers), np.ones(n_blobs), mass_da=150e3, sigma_a=0.6 * step_a,
        source=f"procedural:blob_chain:{seed}",
    )


def asymmetric_l(seed: int = 0, *, arm_a: float = 10.0) -> GaussianMixture:
    """An "L" of blobs with one blob raised out of its plane: chiral, for handedness checks.

    The seed is accepted for a uniform procedural signature; the shape does not depend on it.
    """
    del seed
    long_arm = [(i * arm_a, 0.0, 0.0) for i in range(6)]
    short_arm = [(0.0, i * arm_a, 0.0) for i in range(1, 4)]
    raised = [(arm_a, arm_a, 1.2 * arm_a)]
    centers = np.array(long_arm + short_arm + raised)
    return mixture_from_atoms(
        "asym_l", centers, np.ones(len(centers)), mass_da=100e3, sigma_a=0.5 * arm_a,
        source="procedural:asym_l",
    )


def _octahedral_rotations() -> list[npt.NDArray[np.float64]]:
    """The 24 signed permutation matrices with determinant +1."""
    mats = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            for row, (col, s) in enumerate(zip(perm, signs, strict=True)):
                m[row, col] = s
            if np.linalg.det(m) > 0:
                mats.append(m)
    return mats


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Species:
    """A named particle: a wwPDB model in the structures folder, or a procedural builder.

    ``coarse_grained`` models (very large assemblies) keep one component per residue, at the
    residue's centroid with the residue's summed weight, to keep splatting fast.
    """

    name: str
    description: str
    filename: str | None = None
    builder: Callable[[int], GaussianMixture] | None = None
    coarse_grained: bool = False


SPECIES: Final[Mapping[str, Species]] = {
    s.name: s
    for s in (
        Species("apoferritin", "human apoferritin 24-mer, 6z6u (1.25 Å)", filename="6z6u.pdb.gz"),
        Species("apoferritin_horse", "horse spleen apoferritin, 4v1w", filename="4v1w.cif.gz"),
        Species("ribosome", "T. thermophilus 70S ribosome with tRNAs, 4v5d", filename="4v5d.cif.gz"),
        Species("ribosome70s", "alias of ribosome (the world's sample name)", filename="4v5d.cif.gz"),
        Species("spliceosome", "yeast spliceosome, 3jb9 (3.6 Å)", filename="3jb9.cif.gz"),
        Species("sh1_virus", "SH1 virus capsid, 6qt9, 60-fold assembly, one blob per residue",
                filename="6qt9.cif.gz", coarse_grained=True),
        Species("hollow_shell", "procedural 12/8 nm shell of 24 blobs", builder=hollow_shell),
        Species("blob_chain", "procedural globular chain of 32 blobs", builder=blob_chain),
        Species("asym_l", "procedural chiral L of 10 blobs", builder=asymmetric_l),
    )
}


def find_structures_dir(structures_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The structures folder: the argument, else ``$GRIDPILOT_STRUCTURES_DIR``, else the default.

    Returns ``None`` when the chosen folder does not exist (procedural species still work).
    """
    chosen = structures_dir or os.environ.get(STRUCTURES_ENV) or DEFAULT_STRUCTURES_DIR
    path = Path(chosen).expanduser()
    return path if path.is_dir() else None


def density_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where parsed models and density maps are cached (not created here)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path("~/.cache/gridpilot").expanduser()
    return base / "densities"


def file_digest(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256 (the cache key of anything derived from it)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def load_species(
    name: str,
    *,
    structures_dir: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> GaussianMixture:
    """The Gaussian mixture of a registered species.

    Raises
    ------
    InvalidInput
        the name is not in :data:`SPECIES`.
    NotFound
        a real species whose model file (or the whole structures folder) is missing.
    """
    species = SPECIES.get(name)
    if species is None:
        raise InvalidInput(f"unknown species {name!r}; known: {', '.join(sorted(SPECIES))}", field="species")
    if species.builder is not None:
        return _procedural(name, seed)
    assert species.filename is not None
    folder = find_structures_dir(structures_dir)
    if folder is None:
        wanted = structures_dir or os.environ.get(STRUCTURES_ENV) or DEFAULT_STRUCTURES_DIR
        raise NotFound(
            f"species {name!r} needs {species.filename}, but the structures folder {wanted} does not "
            f"exist; set {STRUCTURES_ENV} or pass structures_dir (procedural species need no files)",
            field="species",
        )
    path = folder / species.filename
    if not path.is_file():
        raise NotFound(f"species {name!r} needs {path}, which does not exist", field="species")
    stat = path.stat()
    return _structure_mixture(name, str(path.resolve()), stat.st_mtime_ns, stat.st_size,
                              str(density_cache_dir(cache_dir)), species.coarse_grained)


@functools.lru_cache(maxsize=16)
def _procedural(name: str, seed: int) -> GaussianMixture:
    builder = SPECIES[name].builder
    assert builder is not None
    return builder(seed)


@functools.lru_cache(maxsize=8)
def _structure_mixture(
    name: str, path_str: str, mtime_ns: int, size: int, cache: str, coarse: bool
) -> GaussianMixture:
    """Parse (or read the cached parse of) one model; the stat fields make the memo key honest."""
    del mtime_ns, size
    path = Path(path_str)
    digest = file_digest(path)
    kind = "residues" if coarse else "atoms"
    cached = Path(cache) / f"{kind}-{path.name.split('.')[0]}-{digest}-v{_CACHE_FORMAT}.npz"
    if cached.is_file():
        with np.load(cached) as z:
            xyz, weights, mass = z["xyz"], z["weights"], float(z["mass_da"])
    else:
        xyz, weights, mass = _read_atoms(path, coarse)
        _save_npz_atomically(cached, xyz=xyz, weights=weights, mass_da=np.array(mass))
    sigma = _RESIDUE_SIGMA_A if coarse else _ATOM_SIGMA_A
    return mixture_from_atoms(name, xyz, weights, mass_da=mass, sigma_a=sigma, source=f"{path.name}#{digest}")


def _read_atoms(path: Path, coarse: bool) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], float]:
    """Heavy atoms of the first model's biological assembly: positions (Å), atomic number ×
    occupancy, total mass (Da). ``coarse`` sums each residue into one component at its centroid."""
    import gemmi

    st = gemmi.read_structure(str(path))
    st.remove_hydrogens()
    st.remove_waters()
    model = st[0]
    if st.assemblies and sum(len(g.operators) for g in st.assemblies[0].generators) > 1:
        model = gemmi.make_assembly(st.assemblies[0], model, gemmi.HowToNameCopiedChain.Dup)
    xyz: list[list[float]] = []
    weights: list[float] = []
    residue_of: list[int] = []
    mass = 0.0
    n_residues = 0
    for chain in model:
        for residue in chain:
            for atom in residue:
                xyz.append(atom.pos.tolist())
                weights.append(atom.element.atomic_number * atom.occ)
                residue_of.append(n_residues)
                mass += atom.element.weight * atom.occ
            n_residues += 1
    pos, w = np.asarray(xyz, dtype=np.float64).reshape(-1, 3), np.asarray(weights, dtype=np.float64)
    if coarse:
        idx = np.asarray(residue_of, dtype=np.int64)
        w_res = np.bincount(idx, w, minlength=n_residues).astype(np.float64)
        pos = np.stack([np.bincount(idx, w * pos[:, d], minlength=n_residues) for d in range(3)],
                       axis=1).astype(np.float64)
        keep = w_res > 0
        pos, w = pos[keep] / w_res[keep, None], w_res[keep]
    return pos.astype(np.float32), w.astype(np.float32), mass * _HYDROGEN_MASS_FACTOR


def _save_npz_atomically(path: Path, **arrays: npt.NDArray[np.generic]) -> None:
    """Write next to the target and rename, so concurrent readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)
