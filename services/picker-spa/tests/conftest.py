"""Small twin micrographs with every particle's centre, shared by the service and CLI tests."""

from __future__ import annotations

import pytest

from picker_spa.twin_data import TwinMicrograph, twin_micrograph

#: Held-out seed: the shipped model trained on seed 1 and was validated on seed 2.
HELD_OUT_SEED = 901


@pytest.fixture(scope="session")
def twin_mics() -> list[TwinMicrograph]:
    """Three 256² apoferritin micrographs at 4 Å/px (particles ≈ 35 px), at a good dose."""
    return [twin_micrograph(HELD_OUT_SEED, n, shape=(256, 256), species=("apoferritin",),
                            dose_e_per_a2=50.0, carbon_fraction=0.0, contamination_count=0, pixel_size_a=4.0)
            for n in range(3)]
