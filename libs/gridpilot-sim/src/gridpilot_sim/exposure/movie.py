"""The twin's high-magnification exposure: a dose-fractionated movie with ground truth.

The static scene is built once in Fourier space on a padded periodic canvas
(:func:`prepare_exposure`); each frame is then a drift phase ramp, a dose-damage filter, an
inverse FFT and Poisson counting (:func:`render_movie`). No I/O happens here.

>>> from gridpilot_sim.exposure.motion import MotionSpec
>>> spec = ExposureSpec(shape=(64, 64), pixel_size_a=2.0, n_frames=3, motion=MotionSpec.still())
>>> movie = render_movie(spec)
>>> movie.frames.shape, movie.frames.dtype.name, movie.noise_free.shape
((3, 64, 64), 'float32', (64, 64))

Image formation (TWIN-PHYSICS.md), for frame i with content displacement s_i and cumulative
exposure N_i at mid-frame, in expected electrons per pixel:

λ_i(r) = D p² [ T(r − s_i) + F⁻¹{ B_i(k) M(k) ( q(k, N_i) Ĉ_p(k) + Ĉ_ice(k) ) } ]

with T = exp(−t/Λ), Ĉ = F{T · 2 F⁻¹{Σ_slabs CTF_z E_z Φ_z}} the weak-phase contrast of the
particles (per depth slab) and of the ice, q the dose filter of :func:`gridpilot.optics.dose_filter`,
M the detector MTF and B_i the mean of exp(−2πi k·s) over the frame's sub-steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft
from scipy import ndimage

from gridpilot.optics import dose_filter, frequency_grid
from gridpilot_sim.exposure.detector import detector_mtf_rfft, pixel_sensitivity, sample_counts
from gridpilot_sim.exposure.scene import StaticScene, build_static_scene
from gridpilot_sim.exposure.spec import ExposureSpec
from gridpilot_sim.exposure.truth import ExposureTruth

__all__ = [
    "ExposureSpec",
    "ExposureTruth",
    "PreparedExposure",
    "RenderedMovie",
    "counted_frame",
    "expected_frame",
    "expected_sum",
    "iter_frames",
    "prepare_exposure",
    "render_movie",
]

_STREAM_DETECTOR: Final[int] = 4
_STREAM_SHOT: Final[int] = 5


@dataclass(frozen=True, eq=False)
class PreparedExposure:
    """The static scene of an exposure, ready to be shot frame by frame.

    Attributes
    ----------
    spec : the exposure
    truth : its ground truth
    scene : the static Fourier-space components on the padded canvas
    log_q1 : (Hc, Wc//2+1) float32, ln q(k, 1 e/Å²) so that q(k, N) = exp(N ln q(k, 1))
    sensitivity : (H, W) per-pixel gain g, or ``None``
    """

    spec: ExposureSpec
    truth: ExposureTruth
    scene: StaticScene
    log_q1: npt.NDArray[np.float32]
    sensitivity: npt.NDArray[np.float32] | None

    @property
    def gain_reference(self) -> npt.NDArray[np.float32] | None:
        """1/g: multiply raw frames by it to correct the gain."""
        return None if self.sensitivity is None else (1.0 / self.sensitivity).astype(np.float32)


@dataclass(frozen=True, eq=False)
class RenderedMovie:
    """A rendered movie and its truth.

    Attributes
    ----------
    frames : (N, H, W) float32 electrons (counts/η) or uint16 raw counts, gain applied
    noise_free : (H, W) float32, expected electrons per pixel of the whole exposure without
        drift or gain (MTF and per-frame dose damage included): the ideal motion-corrected sum
    truth : :class:`ExposureTruth`
    gain_reference : (H, W) float32 1/g, or ``None`` for a uniform detector
    spec : the spec that made it
    """

    frames: npt.NDArray[np.float32] | npt.NDArray[np.uint16]
    noise_free: npt.NDArray[np.float32]
    truth: ExposureTruth
    gain_reference: npt.NDArray[np.float32] | None
    spec: ExposureSpec


def prepare_exposure(
    spec: ExposureSpec, *, structures_dir: str | None = None, cache_dir: str | None = None
) -> PreparedExposure:
    """Place particles, sample the motion and ice, and build the static scene.

    ``structures_dir`` and ``cache_dir`` locate real atomic models and their cache
    (see :mod:`gridpilot_sim.world.particles`).
    """
    scene, truth = build_static_scene(spec, structures_dir=structures_dir, cache_dir=cache_dir)
    kx, ky = frequency_grid(scene.canvas_shape, spec.pixel_size_a, rfft=True)
    log_q1 = np.log(dose_filter(np.sqrt(kx**2 + ky**2), 1.0, spec.voltage_kv)).astype(np.float32)
    if spec.detector.apply_mtf:
        mtf = detector_mtf_rfft(scene.canvas_shape).astype(np.float32)
        scene = scene.filtered(mtf)
    sens = pixel_sensitivity(spec.detector, spec.shape, np.random.default_rng([spec.seed, _STREAM_DETECTOR]))
    return PreparedExposure(spec, truth, scene, log_q1, sens)


def expected_frame(prepared: PreparedExposure, frame: int, *, drift: bool = True) -> npt.NDArray[np.float32]:
    """Expected electrons per pixel of one frame, (H, W) float32 (no gain, no counting noise).

    With ``drift=False`` the frame is rendered in the reference position (damage still grows).
    """
    spec, scene, truth = prepared.spec, prepared.scene, prepared.truth
    n_mid = float(truth.exposure_mid_e_per_a2[frame])
    q = np.exp(prepared.log_q1 * np.float32(n_mid))
    spectrum = q * scene.particles_rfft + scene.ice_rfft
    shift = truth.drift_xy_a[frame] if drift else np.zeros(2)
    if drift:
        spectrum *= _blur_ramp(scene.kx_per_a, scene.ky_per_a, truth.drift_substeps_xy_a[frame])
    contrast = sfft.irfft2(spectrum, s=scene.canvas_shape, workers=-1)
    canvas = scene.transmission(shift) + contrast
    if drift and truth.doming is not None:
        canvas = _warp(canvas, prepared, frame)
    dose = float(truth.dose_per_frame_e_per_a2[frame]) * spec.pixel_size_a**2
    return (scene.crop(canvas) * dose).astype(np.float32)


def expected_sum(prepared: PreparedExposure) -> npt.NDArray[np.float32]:
    """Expected electrons per pixel of the whole exposure without drift, (H, W) float32.

    Notes
    -----
    Σ_i D_i p² [T + F⁻¹{M (q(k, N_i) Ĉ_p + Ĉ_ice)}], the sum a perfect aligner would reach.
    """
    spec, scene, truth = prepared.spec, prepared.scene, prepared.truth
    doses = truth.dose_per_frame_e_per_a2 * spec.pixel_size_a**2
    weight = np.zeros_like(prepared.log_q1)
    for d, n_mid in zip(doses, truth.exposure_mid_e_per_a2, strict=True):
        weight += np.float32(d) * np.exp(prepared.log_q1 * np.float32(n_mid))
    spectrum = weight * scene.particles_rfft + np.float32(doses.sum()) * scene.ice_rfft
    canvas = sfft.irfft2(spectrum, s=scene.canvas_shape, workers=-1)
    canvas += doses.sum() * scene.transmission(np.zeros(2))
    return scene.crop(canvas).astype(np.float32)


def counted_frame(prepared: PreparedExposure, frame: int) -> npt.NDArray[np.float32] | npt.NDArray[np.uint16]:
    """Frame ``frame`` with its counting noise; each frame has its own random stream, so any one
    can be regenerated alone and equals the same frame of :func:`render_movie`."""
    rng = np.random.default_rng([prepared.spec.seed, _STREAM_SHOT, frame])
    return sample_counts(expected_frame(prepared, frame), prepared.spec.detector, prepared.sensitivity, rng)


def iter_frames(
    prepared: PreparedExposure,
) -> Iterator[npt.NDArray[np.float32] | npt.NDArray[np.uint16]]:
    """Counted frames one at a time (for streaming very large movies)."""
    for i in range(prepared.spec.n_frames):
        yield counted_frame(prepared, i)


def render_movie(
    spec: ExposureSpec, *, structures_dir: str | None = None, cache_dir: str | None = None
) -> RenderedMovie:
    """Render a whole movie: frames, the noise-free sum and the truth (deterministic in the seed)."""
    prepared = prepare_exposure(spec, structures_dir=structures_dir, cache_dir=cache_dir)
    dtype = np.uint16 if spec.detector.frames_dtype == "uint16" else np.float32
    frames = np.empty((spec.n_frames, *spec.shape), dtype=dtype)
    for i, frame in enumerate(iter_frames(prepared)):
        frames[i] = frame
    return RenderedMovie(frames, expected_sum(prepared), prepared.truth, prepared.gain_reference, spec)


def _blur_ramp(
    kx_per_a: npt.NDArray[np.float32], ky_per_a: npt.NDArray[np.float32], substeps_xy_a: npt.NDArray[np.float64]
) -> npt.NDArray[np.complex64]:
    """Mean over sub-steps of exp(−2πi (k_x s_x + k_y s_y)), on the rfft grid (separable per step)."""
    out = np.zeros((ky_per_a.size, kx_per_a.size), dtype=np.complex64)
    for sx, sy in substeps_xy_a:
        ex = np.exp(-2j * math.pi * kx_per_a * np.float32(sx)).astype(np.complex64)
        ey = np.exp(-2j * math.pi * ky_per_a * np.float32(sy)).astype(np.complex64)
        out += ey[:, None] * ex[None, :]
    out *= np.float32(1.0 / len(substeps_xy_a))
    return out


def _warp(canvas: npt.NDArray[np.float64], prepared: PreparedExposure, frame: int) -> npt.NDArray[np.float64]:
    """Apply the local doming displacement: out(r) = in(r − d(r)) (cubic spline, periodic)."""
    scene, doming = prepared.scene, prepared.truth.doming
    assert doming is not None
    p = prepared.spec.pixel_size_a
    ys = (np.arange(canvas.shape[0]) - scene.margin_px[0]) * p
    xs = (np.arange(canvas.shape[1]) - scene.margin_px[1]) * p
    gx, gy = np.meshgrid(xs, ys)
    dx, dy = doming.displacement_a(gx, gy, frame)
    coords = np.stack([np.arange(canvas.shape[0])[:, None] - dy / p, np.arange(canvas.shape[1])[None, :] - dx / p])
    return np.asarray(ndimage.map_coordinates(canvas, coords, order=3, mode="grid-wrap"))
