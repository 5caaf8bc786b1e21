"""The twin's autoloader cassette: which grid (spec + seed) sits in which slot.

A Krios autoloader cassette holds up to 12 cartridges. Each slot of the twin holds a
:class:`~gridpilot_sim.world.spec.GridSpec` and a seed; the world of a grid is a pure function of
both, so reloading a slot shows the same grid again.

>>> cassette = default_cassette(seed=7)
>>> sorted(cassette)
[1, 2, 3, 4]
>>> cassette[2].spec.film_material
'gold'
>>> default_cassette(seed=7)[3].seed == cassette[3].seed
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gridpilot_sim.world.spec import GridSpec

__all__ = ["CASSETTE_SLOTS", "CassetteSlot", "default_cassette"]

#: Slots of a Krios autoloader cassette, numbered as SerialEM numbers them.
CASSETTE_SLOTS: Final[range] = range(1, 13)
_SLOT_SEED_STRIDE: Final[int] = 1_000_003


@dataclass(frozen=True)
class CassetteSlot:
    """A cartridge in the cassette: a grid kind, its seed and a label."""

    spec: GridSpec
    seed: int
    name: str = ""


def default_cassette(seed: int = 0) -> dict[int, CassetteSlot]:
    """Four grids of different kinds, their seeds derived from ``seed``.

    1. 300-mesh copper, carbon R1.2/1.3, good ice (the common SPA grid);
    2. 300-mesh gold, gold film R1.2/1.3 (UltrAuFoil), dark film at low magnification;
    3. 200-mesh copper, carbon R2/2, thicker and patchier ice;
    4. 400-mesh copper, carbon R2/1, thin ice with more dry and broken squares.
    """
    specs = {
        1: ("quantifoil-r1.2-1.3", GridSpec()),
        2: ("ultraufoil-r1.2-1.3", GridSpec(mesh_material="gold", film_material="gold")),
        3: ("quantifoil-r2-2-thick", GridSpec.model_validate(
            {"mesh": 200, "hole_type": "R2/2", "ice_nm": 90.0, "ice_patchiness": 0.8})),
        4: ("quantifoil-r2-1-thin", GridSpec.model_validate(
            {"mesh": 400, "hole_type": "R2/1", "ice_nm": 25.0,
             "square_fractions": {"dry": 0.15, "broken": 0.08}})),
    }
    return {slot: CassetteSlot(spec, seed * _SLOT_SEED_STRIDE + slot, name)
            for slot, (name, spec) in specs.items()}
