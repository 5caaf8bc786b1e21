"""The pre-training set's clutter option: carbon, contamination and aggregates where asked, nothing else moved."""

from __future__ import annotations

from picker_spa.twin_data import twin_micrograph


def test_clutter_share_one_gives_every_micrograph_carbon_contamination_and_aggregates() -> None:
    for n in range(3):
        spec = twin_micrograph(7, n, shape=(96, 96), clutter_share=1.0).spec
        assert 0.2 <= spec["carbon_fraction"] <= 0.5
        assert 1 <= spec["contamination_count"] <= 3
        assert 0.1 <= spec["aggregated_fraction"] <= 0.5


def test_clutter_share_zero_leaves_the_micrograph_as_it_was() -> None:
    plain = twin_micrograph(7, 1, shape=(96, 96))
    same = twin_micrograph(7, 1, shape=(96, 96), clutter_share=0.0)
    assert plain.spec == same.spec
    assert (plain.image == same.image).all()
