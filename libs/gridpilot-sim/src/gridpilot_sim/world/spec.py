"""What a simulated grid is made of: the :class:`GridSpec` and the catalogue it draws from.

A spec describes a *kind* of grid (mesh, film, hole pattern, how good the vitrification was);
the seed given to :class:`gridpilot_sim.World` then decides every individual square and hole.
Geometry values come from ``TWIN-PHYSICS.md`` (grid geometry, holey films, square classes).

>>> spec = GridSpec(mesh=300, hole_type="R2/1", film_material="gold")
>>> MESH_GEOMETRY[spec.mesh].pitch_um
83.0
>>> HOLE_PATTERNS[spec.hole_type].pitch_um
3.0
>>> round(spec.square_fractions.good, 2)
0.55
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "FILM_THICKNESS_NM",
    "HOLE_CLASSES",
    "HOLE_PATTERNS",
    "MESH_GEOMETRY",
    "SPECIES",
    "SQUARE_CLASSES",
    "FilmMaterial",
    "GridSpec",
    "HoleClass",
    "HolePattern",
    "HoleRates",
    "HoleType",
    "MeshGeometry",
    "MeshMaterial",
    "SampleSpec",
    "SpeciesInfo",
    "SquareClass",
    "SquareFractions",
    "load_grid_spec",
    "sample_grid_spec",
]

MeshCount = Literal[200, 300, 400]
MeshMaterial = Literal["copper", "gold"]
FilmMaterial = Literal["carbon", "gold"]
HoleType = Literal["R1.2/1.3", "R2/1", "R0.6/1", "R2/2", "lacey", "continuous"]
SquareClass = Literal["good", "small", "dry", "contaminated", "cracked", "partial", "broken"]
HoleClass = Literal["good", "thick", "empty", "crystalline", "contaminated"]

#: Square classes in code order (the integer code of a class is its index here).
SQUARE_CLASSES: Final[tuple[SquareClass, ...]] = (
    "good", "small", "dry", "contaminated", "cracked", "partial", "broken",
)
#: Hole classes in code order.
HOLE_CLASSES: Final[tuple[HoleClass, ...]] = ("good", "thick", "empty", "crystalline", "contaminated")


@dataclass(frozen=True)
class MeshGeometry:
    """Nominal geometry of one mesh size (µm): bar pitch and bar width."""

    pitch_um: float
    bar_um: float

    @property
    def open_um(self) -> float:
        """Side of the open square between bars."""
        return self.pitch_um - self.bar_um


#: Mesh → pitch and bar width (TWIN-PHYSICS.md, grid geometry table).
MESH_GEOMETRY: Final[dict[int, MeshGeometry]] = {
    200: MeshGeometry(pitch_um=125.0, bar_um=33.0),
    300: MeshGeometry(pitch_um=83.0, bar_um=25.0),
    400: MeshGeometry(pitch_um=62.0, bar_um=24.0),
}


@dataclass(frozen=True)
class HolePattern:
    """A holey-film pattern "R d/s": hole diameter d and edge-to-edge spacing s, µm."""

    diameter_um: float
    spacing_um: float

    @property
    def pitch_um(self) -> float:
        return self.diameter_um + self.spacing_um


#: Regular (Quantifoil / C-flat / UltrAuFoil style) patterns; lacey and continuous have none.
HOLE_PATTERNS: Final[dict[str, HolePattern]] = {
    "R1.2/1.3": HolePattern(1.2, 1.3),
    "R2/1": HolePattern(2.0, 1.0),
    "R0.6/1": HolePattern(0.6, 1.0),
    "R2/2": HolePattern(2.0, 2.0),
}

#: Support film thickness by material, nm (Quantifoil carbon ≈ 10–20 nm; gold foil tens of nm).
FILM_THICKNESS_NM: Final[dict[str, float]] = {"carbon": 15.0, "gold": 50.0}

GRID_RADIUS_UM: Final[float] = 1525.0  # standard 3.05 mm disk
CLIP_RING_RADIUS_UM: Final[float] = 1250.0  # inner radius of an autoloader clip ring


@dataclass(frozen=True)
class SpeciesInfo:
    """A particle species the high-magnification renderer can draw."""

    structure_file: str
    diameter_nm: float


#: Species known to the twin; structure files ship in ``gridpilot_sim/world/structures``.
SPECIES: Final[dict[str, SpeciesInfo]] = {
    "apoferritin": SpeciesInfo("6z6u.pdb.gz", 12.0),
    "ribosome70s": SpeciesInfo("4v5d.cif.gz", 25.0),
    "spliceosome": SpeciesInfo("3jb9.cif.gz", 30.0),
    "sh1_virus": SpeciesInfo("6qt9.cif.gz", 80.0),
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SquareFractions(_Frozen):
    """Expected fraction of each damaged / abnormal square class; "good" takes the rest."""

    small: float = Field(0.12, ge=0, le=1)
    dry: float = Field(0.07, ge=0, le=1)
    contaminated: float = Field(0.09, ge=0, le=1)
    cracked: float = Field(0.07, ge=0, le=1)
    partial: float = Field(0.06, ge=0, le=1)
    broken: float = Field(0.04, ge=0, le=1)

    @model_validator(mode="after")
    def _at_most_one(self) -> SquareFractions:
        total = self.small + self.dry + self.contaminated + self.cracked + self.partial + self.broken
        if total > 1.0 + 1e-9:
            raise ValueError(f"square class fractions add up to {total:.3f}, more than 1")
        return self

    @property
    def good(self) -> float:
        return 1.0 - sum(self.as_dict()[c] for c in SQUARE_CLASSES[1:])

    def as_dict(self) -> dict[str, float]:
        """Every class including "good", in :data:`SQUARE_CLASSES` order."""
        d = self.model_dump()
        d["good"] = 1.0 - sum(d.values())
        return {c: float(d[c]) for c in SQUARE_CLASSES}


class HoleRates(_Frozen):
    """Per-hole rates inside a good square, and the lattice's imperfections."""

    empty: float = Field(0.03, ge=0, le=1, description="no ice at all (bright)")
    thick: float = Field(0.05, ge=0, le=1, description="ice several times the square's")
    crystalline: float = Field(0.02, ge=0, le=1, description="crystalline (speckled) ice")
    contaminated: float = Field(0.03, ge=0, le=1, description="an ethane/ice blob in the hole")
    missing: float = Field(0.01, ge=0, le=1, description="lattice defect: no hole punched")
    position_jitter: float = Field(0.02, ge=0, le=0.1, description="σ of hole position / pitch")
    radius_jitter: float = Field(0.03, ge=0, le=0.2, description="σ of hole radius / radius")
    ice_spread: float = Field(0.25, ge=0, le=1.5, description="σ of log hole ice around the square")


class SampleSpec(_Frozen):
    """What is in the ice: particle species, their mix and their surface density."""

    species: tuple[str, ...] = ("apoferritin",)
    fractions: tuple[float, ...] = (1.0,)
    density_per_um2: float = Field(300.0, ge=0, description="particles per µm² in good ice")

    @model_validator(mode="after")
    def _consistent(self) -> SampleSpec:
        if len(self.species) != len(self.fractions) or not self.species:
            raise ValueError(
                f"species ({len(self.species)}) and fractions ({len(self.fractions)}) must have the "
                "same non-zero length"
            )
        unknown = [s for s in self.species if s not in SPECIES]
        if unknown:
            raise ValueError(f"unknown species {unknown}; known: {sorted(SPECIES)}")
        return self


class GridSpec(_Frozen):
    """The kind of grid to simulate; every field has a realistic default.

    Angles are in degrees (``None``: drawn from the seed); lengths in µm; ice in nm.
    """

    mesh: MeshCount = 300
    mesh_material: MeshMaterial = "copper"
    film_material: FilmMaterial = "carbon"
    hole_type: HoleType = "R1.2/1.3"
    grid_rotation_deg: float | None = None
    film_rotation_deg: float | None = None
    mesh_radius_um: float = Field(1150.0, ge=200.0, le=1400.0, description="radius of the meshed area")
    clipped: bool = Field(True, description="in an autoloader clip ring: opaque beyond its radius")
    ice_nm: float = Field(35.0, gt=0, le=1000, description="median ice in good squares")
    ice_gradient: float = Field(0.6, ge=0, le=3, description="log-ratio of ice across the grid (blotting)")
    ice_patchiness: float = Field(0.45, ge=0, le=2, description="σ of log ice in correlated patches")
    meniscus: float = Field(1.0, ge=0, le=5, description="scale of the ice piled along the bars")
    meniscus_width: float = Field(1.0, gt=0, le=5, description="scale of how far that ice reaches")
    film_nm: float | None = Field(None, gt=0, le=200, description="film thickness; None: by material")
    square_fractions: SquareFractions = SquareFractions()
    hole_rates: HoleRates = HoleRates()
    sample: SampleSpec = SampleSpec()

    @property
    def film_thickness_nm(self) -> float:
        return self.film_nm if self.film_nm is not None else FILM_THICKNESS_NM[self.film_material]

    @property
    def mesh_geometry(self) -> MeshGeometry:
        return MESH_GEOMETRY[self.mesh]

    @property
    def hole_pattern(self) -> HolePattern | None:
        """The regular hole pattern, or ``None`` for lacey and continuous films."""
        return HOLE_PATTERNS.get(self.hole_type)


def load_grid_spec(text_or_path: str | None) -> GridSpec:
    """A spec from a JSON text, a path to a JSON file, or ``None`` (the defaults).

    >>> load_grid_spec('{"mesh": 400}').mesh
    400
    """
    if text_or_path is None or not text_or_path.strip():
        return GridSpec()
    text = text_or_path.strip()
    if not text.startswith("{"):
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"--grid-spec is neither JSON nor an existing file: {text!r}")
        text = path.read_text()
    return GridSpec.model_validate(json.loads(text))


# Realistic mix of commercial grids for randomised data sets: (weight, mesh, film, hole type).
_GRID_KINDS: Final[tuple[tuple[float, int, str, str], ...]] = (
    (0.35, 300, "carbon", "R1.2/1.3"),
    (0.15, 300, "carbon", "R2/1"),
    (0.10, 200, "carbon", "R2/2"),
    (0.08, 400, "carbon", "R1.2/1.3"),
    (0.12, 300, "gold", "R1.2/1.3"),
    (0.06, 300, "gold", "R0.6/1"),
    (0.05, 200, "carbon", "R2/1"),
    (0.05, 300, "carbon", "lacey"),
    (0.04, 400, "carbon", "continuous"),
)


def sample_grid_spec(rng: np.random.Generator) -> GridSpec:
    """A random but realistic spec, for diverse training data.

    Parameters
    ----------
    rng : the caller's generator (``np.random.default_rng(seed)``)
    """
    weights = np.array([k[0] for k in _GRID_KINDS])
    _, mesh, film, hole = _GRID_KINDS[int(rng.choice(len(_GRID_KINDS), p=weights / weights.sum()))]
    return GridSpec.model_validate(
        {
            "mesh": mesh,
            "mesh_material": "gold" if film == "gold" else "copper",
            "film_material": film,
            "hole_type": hole,
            "ice_nm": float(np.exp(rng.normal(np.log(35.0), 0.35))),
            "ice_gradient": float(rng.uniform(0.0, 1.2)),
            "ice_patchiness": float(rng.uniform(0.2, 0.8)),
            "mesh_radius_um": float(rng.uniform(1000.0, 1200.0)),
        }
    )
