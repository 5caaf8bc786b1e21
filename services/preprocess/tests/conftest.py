"""Small planted-truth simulators for the preprocess tests.

``make_movie`` draws a weak-phase white object (like vitreous ice's structural noise) through
the shared CTF of :mod:`gridpilot.optics`, moves frame i by a known specimen shift s_i (content
at r in frame 0 appears at r + s_i), optionally fades it with the dose filter (the twin leaves
ice undamaged), and counts Poisson electrons. ``make_ctf_image`` is the same without motion or counting: white noise through a
known CTF plus white noise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from gridpilot.optics import ctf_2d, dose_filter, frequency_grid

MovieFactory = Callable[..., npt.NDArray[np.float32]]
ImageFactory = Callable[..., npt.NDArray[np.float64]]


def _movie(
    shifts_px: npt.NDArray[np.float64],
    *,
    shape: tuple[int, int] = (256, 256),
    pixel_size_a: float = 1.0,
    dose_per_frame_e_per_a2: float = 1.0,
    phase_rms_rad: float = 0.1,
    defocus_a: float = 15000.0,
    b_factor_a2: float = 40.0,
    damage: bool = False,
    seed: int = 0,
) -> npt.NDArray[np.float32]:
    rng = np.random.default_rng(seed)
    phase = np.fft.fft2(rng.normal(scale=phase_rms_rad, size=shape))
    ctf = ctf_2d(shape, pixel_size_a, defocus_a, defocus_a, b_factor_a2=b_factor_a2)
    kx, ky = frequency_grid(shape, pixel_size_a)
    k = np.hypot(kx, ky)
    fx, fy = kx * pixel_size_a, ky * pixel_size_a
    frames = np.empty((len(shifts_px), *shape), dtype=np.float32)
    for i, (sx, sy) in enumerate(shifts_px):
        ramp = np.exp(-2j * np.pi * (fx * sx + fy * sy))
        q = dose_filter(k, (i + 0.5) * dose_per_frame_e_per_a2) if damage else 1.0
        image = 1.0 + 2.0 * np.real(np.fft.ifft2(ctf * q * phase * ramp))
        frames[i] = rng.poisson(dose_per_frame_e_per_a2 * pixel_size_a**2 * np.clip(image, 0.0, None))
    return frames


def _ctf_image(
    *,
    shape: tuple[int, int] = (1024, 1024),
    pixel_size_a: float = 1.0,
    defocus1_a: float,
    defocus2_a: float,
    astig_angle_rad: float = 0.0,
    noise_rms: float = 1.0,
    phase_shift_rad: float = 0.0,
    seed: int = 0,
) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    ctf = ctf_2d(
        shape, pixel_size_a, defocus1_a, defocus2_a, astig_angle_rad, phase_shift_rad=phase_shift_rad, b_factor_a2=40.0,
    )
    signal = np.real(np.fft.ifft2(np.fft.fft2(rng.normal(size=shape)) * ctf))
    return np.asarray(signal + noise_rms * rng.normal(size=shape))


@pytest.fixture
def make_movie() -> MovieFactory:
    """A factory of Poisson movies with planted shifts (see the module docstring)."""
    return _movie


@pytest.fixture
def make_ctf_image() -> ImageFactory:
    """A factory of images with a planted CTF (see the module docstring)."""
    return _ctf_image


def drift_track(n_frames: int, seed: int, *, jump_px: float = 8.0, settle_frames: float = 3.0) -> npt.NDArray[np.float64]:
    """Beam-induced jump settling over a few frames plus a small random walk, (N, 2) px."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    i = np.arange(n_frames)
    track = jump_px * (1 - np.exp(-(i + 0.5) / settle_frames))[:, None] * direction
    track = track + np.cumsum(rng.normal(scale=0.1, size=(n_frames, 2)), axis=0)
    return np.asarray(track - track[0])


@pytest.fixture
def make_track() -> Callable[..., npt.NDArray[np.float64]]:
    return drift_track
