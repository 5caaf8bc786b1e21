"""Small planted-truth movies for the zssr tests: a white HR scene, known shifts, counting."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from zssr.degradation import add_counting_noise, degrade, fourier_pad

MovieFactory = Callable[..., tuple[npt.NDArray[np.float32], npt.NDArray[np.float64], npt.NDArray[np.float64]]]


def _movie(*, n_frames: int = 8, lr_side: int = 64, scale: int = 2, dose: float = 200.0,
           still: bool = False, seed: int = 0) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64],
                                                        npt.NDArray[np.float64]]:
    """(frames, shifts, truth): a smooth positive HR scene, random sub-pixel drift, Poisson counts."""
    rng = np.random.default_rng(seed)
    detail = fourier_pad(rng.normal(size=(lr_side, lr_side)), scale)
    truth = 1.0 + 0.3 * detail / detail.std()
    shifts = np.zeros((n_frames, 2)) if still else np.cumsum(rng.uniform(-0.6, 0.6, (n_frames, 2)), axis=0)
    frames = np.stack([add_counting_noise(dose * degrade(truth, scale=scale, shift_xy_px=s), rng)
                       for s in shifts])
    return frames, shifts, truth


@pytest.fixture
def make_movie() -> MovieFactory:
    """A factory of small Poisson movies with planted shifts (see ``_movie``)."""
    return _movie
