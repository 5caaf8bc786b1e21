"""The twin samples the hole bench judges visibility on: the noise-free render is the same image."""

from __future__ import annotations

import numpy as np

from hole_finder.twin_data import TwinSample, square_sample, view_sample


def test_noise_free_square_is_the_expected_counts_of_the_same_image(carbon_square: TwinSample) -> None:
    quiet = square_sample(seed=1_500_007, combo=("carbon", "R2/1"), contrast="high", shape=(384, 384),
                          radius_px=7.0, offset_frac=0.2, noise=False)
    assert np.array_equal(quiet.x, carbon_square.x) and np.array_equal(quiet.label, carbon_square.label)
    assert not np.array_equal(quiet.image, carbon_square.image)
    assert not np.all(quiet.image == np.round(quiet.image))  # expected counts, not Poisson draws
    # Shot noise averages out over the image: the same mean within a fraction of a per cent.
    assert abs(float(quiet.image.mean()) / float(carbon_square.image.mean()) - 1.0) < 0.005


def test_noise_free_view_keeps_the_labels() -> None:
    noisy = view_sample(seed=1_500_011, combo=("gold", "R1.2/1.3"), contrast="low", shape=(128, 128))
    quiet = view_sample(seed=1_500_011, combo=("gold", "R1.2/1.3"), contrast="low", shape=(128, 128), noise=False)
    assert np.array_equal(quiet.x, noisy.x) and np.array_equal(quiet.radius, noisy.radius)
    assert float(np.abs(quiet.image - noisy.image).mean()) > 0
