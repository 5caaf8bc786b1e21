"""Holey support films by their maker's name for the pattern: hole size and lattice pitch.

Quantifoil, UltrAuFoil and C-flat name a regular film by its hole diameter and the gap between
neighbouring holes, in µm: R1.2/1.3 has 1.2 µm holes 1.3 µm apart, edge to edge, so its holes sit
on a square lattice of pitch 1.2 + 1.3 = 2.5 µm. The hole finder uses the diameter to set the
scale its network sees and the pitch to look for a lattice too faint for its detections alone.

>>> hole_pattern("R1.2/1.3")
HolePattern(diameter_um=1.2, pitch_um=2.5)
>>> hole_pattern("CF-2/1-3C")  # C-flat: the same numbers after "CF-", a mesh suffix after
HolePattern(diameter_um=2.0, pitch_um=3.0)
>>> hole_pattern("lacey") is None  # no regular pattern
True
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

__all__ = ["HolePattern", "hole_pattern"]

#: "R1.2/1.3", "r 2/1", "CF-1.2/1.3-4C", "Quantifoil R0.6/1 Cu 300": the first diameter/gap pair.
_PATTERN: Final[re.Pattern[str]] = re.compile(
    r"(?:^|[\s(])(?:R|CF-?)\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)(?![\d.])", re.IGNORECASE)


class HolePattern(NamedTuple):
    """A regular holey film's nominal geometry."""

    diameter_um: float
    pitch_um: float


def hole_pattern(hole_type: str) -> HolePattern | None:
    """The hole diameter and lattice pitch named by a film's hole type, or ``None`` when it names
    no regular pattern (lacey, continuous, empty, unknown), or an impossible one (a zero size)."""
    m = _PATTERN.search(hole_type.strip())
    if m is None:
        return None
    diameter, gap = float(m.group(1)), float(m.group(2))
    if not 0 < diameter <= 50 or not 0 < gap <= 50:
        return None
    return HolePattern(diameter_um=diameter, pitch_um=round(diameter + gap, 6))
