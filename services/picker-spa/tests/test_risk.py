"""The PU risk: never negative, equal to the hand-computed value, and the blind-spot masking."""

from __future__ import annotations

import math

import pytest
import torch

from picker_spa.risk import blind_spot_batch, nn_pu_risk


def _softplus(v: float) -> float:
    return math.log1p(math.exp(v))


LOGITS = torch.tensor([2.0, -1.0, 0.5, -3.0])
LABELLED = torch.tensor([True, False, False, False])
VALID = torch.ones(4, dtype=torch.bool)


def test_pu_risk_matches_the_hand_computed_unclamped_case() -> None:
    # π R_P⁺ + (R_U⁻ − π R_P⁻) with π = 0.1: the negative part stays positive.
    r_p_pos, r_p_neg = _softplus(-2.0), _softplus(2.0)
    r_u_neg = (_softplus(-1.0) + _softplus(0.5) + _softplus(-3.0)) / 3
    expected = 0.1 * r_p_pos + (r_u_neg - 0.1 * r_p_neg)
    assert expected == pytest.approx(0.245309, abs=1e-5)
    assert float(nn_pu_risk(LOGITS, LABELLED, VALID, prior=0.1)) == pytest.approx(expected, rel=1e-6)


def test_pu_risk_clamps_the_negative_part_at_zero() -> None:
    # π = 0.25: R_U⁻ − π R_P⁻ = 0.4453 − 0.5317 < 0, so only π R_P⁺ = 0.25·softplus(−2) remains.
    risk = float(nn_pu_risk(LOGITS, LABELLED, VALID, prior=0.25))
    assert risk == pytest.approx(0.25 * _softplus(-2.0), rel=1e-6)
    unbiased = 0.25 * _softplus(-2.0) + (_softplus(-1.0) + _softplus(0.5) + _softplus(-3.0)) / 3 - 0.25 * _softplus(2.0)
    assert unbiased < 0 < risk


@pytest.mark.parametrize("seed", range(20))
def test_pu_risk_is_never_negative(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = 10 * torch.randn(64, generator=g)
    labelled = torch.rand(64, generator=g) < 0.3
    valid = torch.rand(64, generator=g) < 0.9
    prior = float(torch.rand(1, generator=g)) * 0.9 + 0.05
    assert float(nn_pu_risk(logits, labelled, valid, prior=prior)) >= 0.0


def test_pu_risk_ignores_invalid_pixels_and_refuses_a_bad_prior() -> None:
    valid = torch.tensor([True, True, False, True])
    with_bad = float(nn_pu_risk(LOGITS, LABELLED, valid, prior=0.1))
    without = float(nn_pu_risk(LOGITS[[0, 1, 3]], LABELLED[[0, 1, 3]], VALID[:3], prior=0.1))
    assert with_bad == pytest.approx(without)
    with pytest.raises(ValueError, match="prior"):
        nn_pu_risk(LOGITS, LABELLED, VALID, prior=1.0)


def test_blind_spot_replaces_only_masked_pixels_by_a_neighbour() -> None:
    g = torch.Generator().manual_seed(0)
    images = torch.arange(2 * 32 * 32, dtype=torch.float32).reshape(2, 1, 32, 32)
    masked, mask = blind_spot_batch(images, g)
    assert 0 < int(mask.sum()) < images.numel() // 10
    assert torch.equal(masked[~mask], images[~mask])
    # Every masked pixel took another pixel's value (values are unique: never its own).
    assert bool((masked[mask] != images[mask]).all())
