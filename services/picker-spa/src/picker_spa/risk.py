"""Training objectives: the non-negative PU risk of the detector, and the denoisers' losses.

Detection learns from a few labelled centres: labelled pixels are positives, every other pixel
is unlabelled (a mixture of particles and background with class prior π), never a negative.

>>> import torch
>>> logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
>>> labelled = torch.tensor([True, False, False, False])
>>> round(float(nn_pu_risk(logits, labelled, torch.ones(4, dtype=torch.bool), prior=0.25)), 4)
0.0317
"""

from __future__ import annotations

from typing import Final

import torch
import torch.nn.functional as F

__all__ = ["blind_spot_batch", "masked_mse", "nn_pu_risk"]

# Noise2Void masks about this fraction of the pixels of each crop.
_BLIND_SPOT_FRACTION: Final[float] = 0.02


def nn_pu_risk(logits: torch.Tensor, labelled: torch.Tensor, valid: torch.Tensor, *, prior: float) -> torch.Tensor:
    """Non-negative PU risk with the logistic loss (Kiryo et al., NeurIPS 2017).

    Parameters
    ----------
    logits : (...) detector outputs f(x)
    labelled : (...) bool, labelled positive pixels (P)
    valid : (...) bool, pixels that count at all; valid and not labelled are unlabelled (U)
    prior : π, the fraction of valid pixels that are particle centres, in (0, 1)

    Returns
    -------
    The scalar risk π R̂_P⁺ + max(0, R̂_U⁻ − π R̂_P⁻), with ℓ(f, +1) = softplus(−f) and
    ℓ(f, −1) = softplus(f); never negative. Without labelled pixels it is R̂_U⁻ (all unlabelled
    pixels down-weighted to negatives, i.e. the π → 0 limit).

    Notes
    -----
    The unbiased PU risk π R_P⁺ + R_U⁻ − π R_P⁻ estimates the negatives' risk (1 − π) R_N⁻ by
    the difference of two means; with a flexible model that difference goes negative (the
    model over-fits the few positives). Clamping at zero keeps the estimate a risk. Thesis
    chapter 5 (Biological Imaging 2024) §PU learning.
    """
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be in (0, 1), got {prior}")
    pos = labelled & valid
    unl = valid & ~labelled
    zero = logits.new_zeros(())
    n_pos, n_unl = pos.sum(), unl.sum()
    loss_unl_neg = F.softplus(logits[unl]).mean() if n_unl > 0 else zero
    if n_pos == 0:
        return loss_unl_neg
    loss_pos_pos = F.softplus(-logits[pos]).mean()
    loss_pos_neg = F.softplus(logits[pos]).mean()
    return prior * loss_pos_pos + torch.clamp(loss_unl_neg - prior * loss_pos_neg, min=0.0)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over ``mask`` (all pixels when ``None``)."""
    if mask is None:
        return F.mse_loss(prediction, target)
    return ((prediction - target) ** 2)[mask].mean() if bool(mask.any()) else prediction.new_zeros(())


def blind_spot_batch(images: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise2Void input: a few pixels replaced by a random neighbour, and the mask of them.

    Parameters
    ----------
    images : (B, 1, H, W) noisy images

    Returns
    -------
    (masked images, mask): the network sees the masked images and is scored on the masked
    pixels against the original values, so it cannot learn the identity (Krull et al. 2019).
    """
    b, c, h, w = images.shape
    mask = torch.rand((b, c, h, w), generator=generator) < _BLIND_SPOT_FRACTION
    dy = torch.randint(-2, 3, (b, c, h, w), generator=generator)
    dx = torch.randint(-2, 3, (b, c, h, w), generator=generator)
    same = (dy == 0) & (dx == 0)
    dx = torch.where(same, torch.ones_like(dx), dx)
    rows = (torch.arange(h).view(1, 1, h, 1) + dy).clamp(0, h - 1)
    cols = (torch.arange(w).view(1, 1, 1, w) + dx).clamp(0, w - 1)
    flat = images.reshape(b, c, h * w)
    neighbour = torch.gather(flat, 2, (rows * w + cols).reshape(b, c, h * w)).reshape(b, c, h, w)
    return torch.where(mask, neighbour, images), mask
