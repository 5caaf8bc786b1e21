"""A film's hole type → its nominal hole diameter and lattice pitch."""

from __future__ import annotations

import doctest

import pytest

import gridpilot.films
from gridpilot.films import HolePattern, hole_pattern


@pytest.mark.parametrize(("name", "expected"), [
    ("R1.2/1.3", HolePattern(1.2, 2.5)),
    ("R2/1", HolePattern(2.0, 3.0)),
    ("r0.6/1", HolePattern(0.6, 1.6)),
    ("R 2 / 2", HolePattern(2.0, 4.0)),
    ("Quantifoil R1.2/1.3 Cu 300", HolePattern(1.2, 2.5)),
    ("UltrAuFoil R0.6/1 Au 300", HolePattern(0.6, 1.6)),
    ("CF-1.2/1.3-4C", HolePattern(1.2, 2.5)),
    ("CF-2/1-3C", HolePattern(2.0, 3.0)),
    ("(R3.5/1)", HolePattern(3.5, 4.5)),
])
def test_regular_films_give_diameter_and_pitch(name: str, expected: HolePattern) -> None:
    assert hole_pattern(name) == expected


@pytest.mark.parametrize("name", ["", "lacey", "continuous", "holey", "R0/1", "R1.2/0", "1.2/1.3",
                                  "CR1.2/1.3", "R1.2/1.3.4", "R999/1"])
def test_names_without_a_regular_pattern_give_none(name: str) -> None:
    assert hole_pattern(name) is None


def test_doctests() -> None:
    result = doctest.testmod(gridpilot.films)
    assert result.attempted and not result.failed
