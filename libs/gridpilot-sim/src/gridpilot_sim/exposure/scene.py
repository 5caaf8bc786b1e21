"""The static (drift-free, undamaged) scene of an exposure, in Fourier space on a padded canvas.

The canvas is the field plus a margin on each side, large enough for drift and for particles
straddling the edge, of m ∈ {4, 5, 6, 7}·2^j pixels: a set closed under doubling, so the margin
of a render at twice the pixel size is exactly half as many pixels, both canvases cover the same
physical area and the ice noise (tied to physical frequencies) is the same field.

Particle atoms are splatted straight onto the canvas (one depth slab at a time), which makes
each particle's projection exact at its own orientation; for pixels above 1.5 Å the splat is
made on a finer grid and Fourier-cropped so that atomic detail does not alias.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from gridpilot.optics import interaction_constant
from gridpilot_sim.exposure.motion import DomingField, doming_field, drift_trajectory
from gridpilot_sim.exposure.spec import ExposureSpec
from gridpilot_sim.exposure.transfer import iter_slab_transfers_rfft
from gridpilot_sim.exposure.truth import ExposureTruth, ParticleTruth
from gridpilot_sim.world.density import deposit_bilinear, splat_kernel_rfft
from gridpilot_sim.world.ice import (
    crystalline_phase_rfft,
    ice_phase_per_nm,
    ice_phase_rfft_per_nm,
    transmission,
)
from gridpilot_sim.world.orientations import quaternion_to_matrix
from gridpilot_sim.world.particles import GaussianMixture, load_species
from gridpilot_sim.world.placement import PlacedParticles, place_particles

__all__ = ["StaticScene", "build_static_scene"]

_STREAM_PARTICLES: Final[int] = 1
_STREAM_MOTION: Final[int] = 2
_STREAM_ICE: Final[int] = 3
_STREAM_CRYSTAL: Final[int] = 6
_STREAM_SUPPORT: Final[int] = 7
# Amorphous carbon's phase noise per nm relative to ice's flat part (denser, higher potential).
_SUPPORT_NOISE_PER_NM: Final[float] = 2.0
# Particles are placed this far beyond the field (plus their radius) so drift can bring them in.
_DRIFT_ALLOWANCE_A: Final[float] = 40.0
_MARGIN_PAD_A: Final[float] = 16.0
# Splat on a grid no coarser than this (finer grids by powers of two, then Fourier-cropped).
_MAX_SPLAT_PIXEL_A: Final[float] = 1.5
# Points splatted per bincount call (bounds memory).
_SPLAT_CHUNK: Final[int] = 2_000_000
_UM_PER_A: Final[float] = 1e-4


@dataclass(frozen=True, eq=False)
class StaticScene:
    """Static Fourier components on the canvas ``(Hc, Wc)``, rfft layout ``(Hc, Wc // 2 + 1)``.

    Attributes
    ----------
    canvas_shape, margin_px : canvas size and the margin (rows, cols) around the field
    pixel_size_a : Å per pixel
    particles_rfft : complex64, Ĉ_p, the particles' contrast (damaged per frame by the dose filter)
    ice_rfft : complex64, Ĉ_ice, the ice's contrast (not damaged)
    kx_per_a, ky_per_a : float32 frequencies of the rfft columns and rows, 1/Å
    thickness_nm : ice thickness (nm) at positions (x, y) Å of the reference frame
    attenuation_nm : Λ of the transmission exp(−t/Λ)
    flat_ice : True when the thickness has no gradient (transmission is one number)
    support_transmission : exp(−t_s/Λ_s) of the support film (1 without one)
    """

    canvas_shape: tuple[int, int]
    margin_px: tuple[int, int]
    pixel_size_a: float
    particles_rfft: npt.NDArray[np.complex64]
    ice_rfft: npt.NDArray[np.complex64]
    kx_per_a: npt.NDArray[np.float32]
    ky_per_a: npt.NDArray[np.float32]
    thickness_nm: Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], npt.NDArray[np.float64]]
    attenuation_nm: float
    flat_ice: bool
    support_transmission: float = 1.0

    def filtered(self, factor: npt.NDArray[np.float32]) -> StaticScene:
        """The scene with both contrast spectra multiplied by ``factor`` (e.g. the detector MTF)."""
        return replace(self, particles_rfft=self.particles_rfft * factor, ice_rfft=self.ice_rfft * factor)

    def transmission(self, shift_xy_a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | float:
        """exp(−t(r − s)/Λ) on the canvas for a content displacement s (a number if flat)."""
        if self.flat_ice:
            t0 = self.thickness_nm(np.zeros(1), np.zeros(1))[0]
            return float(transmission(t0, self.attenuation_nm)[()]) * self.support_transmission
        x, y = self.canvas_xy_a()
        t = self.thickness_nm(x - shift_xy_a[0], y - shift_xy_a[1])
        return transmission(t, self.attenuation_nm) * self.support_transmission

    def canvas_xy_a(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Physical (x, y) in Å of every canvas pixel, broadcastable (1, Wc) and (Hc, 1)."""
        hc, wc = self.canvas_shape
        x = (np.arange(wc) - self.margin_px[1])[None, :] * self.pixel_size_a
        y = (np.arange(hc) - self.margin_px[0])[:, None] * self.pixel_size_a
        return x.astype(np.float64), y.astype(np.float64)

    def crop(self, canvas: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
        """The field of view out of a canvas-sized array."""
        my, mx = self.margin_px
        return canvas[my: canvas.shape[0] - my, mx: canvas.shape[1] - mx]


def build_static_scene(
    spec: ExposureSpec, *, structures_dir: str | None = None, cache_dir: str | None = None
) -> tuple[StaticScene, ExposureTruth]:
    """Sample the scene's randomness (in physical units) and build its static spectra."""
    names = sorted({p.species for p in spec.particles} | {p.species for p in spec.placements})
    mixtures = {n: load_species(n, structures_dir=structures_dir, cache_dir=cache_dir) for n in names}
    r_max = max((m.radius_a for m in mixtures.values()), default=0.0)

    rng_motion = np.random.default_rng([spec.seed, _STREAM_MOTION])
    traj = drift_trajectory(spec.motion, spec.n_frames, spec.dose_per_frame_e_per_a2, rng_motion)
    doming = doming_field(spec.motion, traj, spec.field_xy_a, rng_motion)
    moved_a = max(_DRIFT_ALLOWANCE_A, traj.max_extent_a() + spec.motion.doming_a)
    margin = _margin_px((r_max + moved_a + _MARGIN_PAD_A) / spec.pixel_size_a)
    canvas = (spec.shape[0] + 2 * margin, spec.shape[1] + 2 * margin)

    thickness = _thickness_fn(spec)
    w_a, h_a = spec.field_xy_a
    pad = r_max + _DRIFT_ALLOWANCE_A
    placed = place_particles(
        spec.particles, {n: m.radius_a for n, m in mixtures.items()}, (-pad, w_a + pad, -pad, h_a + pad),
        thickness, np.random.default_rng([spec.seed, _STREAM_PARTICLES]), spec.placements,
    )
    kx, ky = np.fft.rfftfreq(canvas[1], spec.pixel_size_a), np.fft.fftfreq(canvas[0], spec.pixel_size_a)
    flat = spec.ice_gradient_nm_per_um == (0.0, 0.0)
    scene = StaticScene(
        canvas, (margin, margin), spec.pixel_size_a,
        np.zeros((canvas[0], canvas[1] // 2 + 1), np.complex64), np.zeros((1, 1), np.complex64),
        kx.astype(np.float32), ky.astype(np.float32), thickness, spec.ice_attenuation_nm, flat,
        math.exp(-spec.support_nm / spec.support_attenuation_nm),
    )
    phase_p, phase_ice = _transferred_phases(spec, scene, placed, mixtures, _ice_phase_rfft(spec, scene))
    scene = replace(scene, particles_rfft=_contrast(scene, phase_p), ice_rfft=_contrast(scene, phase_ice))

    truth = _truth(spec, placed, traj.mean_xy_a, traj.substeps_xy_a, doming, thickness)
    return scene, truth


def _margin_px(needed_px: float) -> int:
    """The smallest m = s·2^j ≥ needed_px with s ∈ {4, 5, 6, 7} (closed under doubling)."""
    j = max(0, math.floor(math.log2(max(needed_px, 4.0) / 4.0)))
    for scale in (1 << j, 1 << (j + 1)):
        for s in (4, 5, 6, 7):
            if s * scale >= needed_px:
                return s * scale
    raise AssertionError(f"no margin found for {needed_px}")


def _thickness_fn(
    spec: ExposureSpec,
) -> Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], npt.NDArray[np.float64]]:
    cx, cy = 0.5 * spec.field_xy_a[0], 0.5 * spec.field_xy_a[1]
    gx, gy = spec.ice_gradient_nm_per_um
    t0 = spec.ice_nm

    def thickness_nm(x_a: npt.NDArray[np.float64], y_a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        t = t0 + gx * (np.asarray(x_a) - cx) * _UM_PER_A + gy * (np.asarray(y_a) - cy) * _UM_PER_A
        return np.clip(t, 0.0, None)

    return thickness_nm


def _transferred_phases(
    spec: ExposureSpec, scene: StaticScene, placed: PlacedParticles, mixtures: dict[str, GaussianMixture],
    ice_phase: npt.NDArray[np.complex64],
) -> tuple[npt.NDArray[np.complex64], npt.NDArray[np.complex64]]:
    """Σ_slabs transfer(z)·F{φ_slab} for the particles (each slab through its own CTF), and
    transfer(0)·F{φ_ice} for the ice (imaged at the mid-plane)."""
    hc, wc = scene.canvas_shape
    out = np.zeros((hc, wc // 2 + 1), dtype=np.complex64)
    ice_out = np.zeros_like(out)
    p = spec.pixel_size_a
    over = 1 if p <= _MAX_SPLAT_PIXEL_A else 2 ** math.ceil(math.log2(p / _MAX_SPLAT_PIXEL_A))
    p_dep = p / over
    dep_shape = (hc * over, wc * over)
    sigma_int = interaction_constant(spec.voltage_kv)
    slab = np.round(placed.xyz_a[:, 2] / spec.depth_bin_a).astype(np.int64)
    species = np.array(placed.species)
    kernels = {n: splat_kernel_rfft(scene.canvas_shape, p, m.sigma_a, over).astype(np.float32)
               for n, m in mixtures.items() if n in placed.species}
    wanted = [*slab.tolist(), 0]
    for b, transfer in iter_slab_transfers_rfft(scene.canvas_shape, p, spec.lens(), spec.depth_bin_a, wanted):
        if b == 0:
            ice_out += ice_phase * transfer
        for name, kernel in kernels.items():
            members = np.nonzero((slab == b) & (species == name))[0]
            if members.size == 0:
                continue
            grid = _splat(placed, members, mixtures[name], p_dep, dep_shape, scene.margin_px, over, sigma_int)
            spectrum = _fourier_crop(sfft.rfft2(grid.astype(np.float32), workers=-1), scene.canvas_shape)
            out += spectrum * (kernel * transfer)
    return out, ice_out


def _splat(
    placed: PlacedParticles, members: npt.NDArray[np.int64], mix: GaussianMixture, p_dep: float,
    dep_shape: tuple[int, int], margin_px: tuple[int, int], over: int, sigma_int: float,
) -> npt.NDArray[np.float64]:
    """Phase (rad per deposit pixel) of the member particles' atoms, bilinearly splatted."""
    grid = np.zeros(dep_shape)
    weights = mix.potential_v_a3.astype(np.float64) * (sigma_int / p_dep**2)
    centers = mix.centers_a.astype(np.float64)
    rot = quaternion_to_matrix(placed.quaternions[members])
    per_chunk = max(1, _SPLAT_CHUNK // centers.shape[0])
    for start in range(0, members.size, per_chunk):
        idx = slice(start, start + per_chunk)
        xyz = np.einsum("nij,aj->nai", rot[idx], centers)  # (n, atoms, 3) in the lab frame
        pos = placed.xyz_a[members[idx]]
        x = (xyz[..., 0] + pos[:, None, 0]) / p_dep + margin_px[1] * over
        y = (xyz[..., 1] + pos[:, None, 1]) / p_dep + margin_px[0] * over
        w = np.broadcast_to(weights, x.shape)
        grid += deposit_bilinear(dep_shape, x.ravel(), y.ravel(), w.ravel())
    return grid


def _fourier_crop(spectrum: npt.NDArray[np.complex64], shape: tuple[int, int]) -> npt.NDArray[np.complex64]:
    """The rfft coefficients of ``shape`` out of a finer grid's, rescaled to the coarse sampling."""
    h, w = shape
    if spectrum.shape == (h, w // 2 + 1):
        return spectrum
    big_h = spectrum.shape[0]
    big_w = 2 * (spectrum.shape[1] - 1)
    rows = np.r_[0: h // 2, big_h - h // 2: big_h]
    return np.asarray(spectrum[rows, : w // 2 + 1] * np.float32(h * w / (big_h * big_w)), dtype=np.complex64)


def _ice_phase_rfft(spec: ExposureSpec, scene: StaticScene) -> npt.NDArray[np.complex64]:
    """F{φ_ice}: structural noise ∝ √t, a support film's, Bragg spots (before the transfer)."""
    shape, p = scene.canvas_shape, spec.pixel_size_a
    phase = np.zeros((shape[0], shape[1] // 2 + 1), dtype=np.complex64)
    if spec.ice_noise_scale > 0 and spec.ice_nm > 0:
        ice_seed = _derived_seed(spec.seed, _STREAM_ICE)
        if scene.flat_ice:  # √t is one number: stay in Fourier space
            amp0 = math.sqrt(spec.ice_noise_scale * spec.ice_nm)
            phase += np.float32(amp0) * ice_phase_rfft_per_nm(shape, p, ice_seed)
        else:
            x, y = scene.canvas_xy_a()
            amp = np.sqrt(spec.ice_noise_scale * scene.thickness_nm(x, y))
            phase += sfft.rfft2((amp * ice_phase_per_nm(shape, p, ice_seed)).astype(np.float32), workers=-1)
    if spec.support_nm > 0:
        support_seed = _derived_seed(spec.seed, _STREAM_SUPPORT)
        amp_s = math.sqrt(_SUPPORT_NOISE_PER_NM * spec.support_nm)
        phase += np.float32(amp_s) * ice_phase_rfft_per_nm(shape, p, support_seed, water_ring=False)
    if spec.crystalline_ice_rad > 0:
        rng = np.random.default_rng([spec.seed, _STREAM_CRYSTAL])
        phase += crystalline_phase_rfft(shape, p, spec.crystalline_ice_rad, rng).astype(np.complex64)
    return phase


def _contrast(scene: StaticScene, phase_rfft: npt.NDArray[np.complex64]) -> npt.NDArray[np.complex64]:
    """F{T · c} with the weak-phase contrast c = 2 F⁻¹{transfer · Φ}."""
    if scene.flat_ice:
        t0 = scene.transmission(np.zeros(2))
        return np.asarray(np.float32(2.0 * float(t0)) * phase_rfft, dtype=np.complex64)
    c = 2.0 * sfft.irfft2(phase_rfft, s=scene.canvas_shape, workers=-1)
    return np.asarray(sfft.rfft2(c * scene.transmission(np.zeros(2)), workers=-1), dtype=np.complex64)


def _derived_seed(seed: int, stream: int) -> int:
    """An integer seed for a sub-stream (for functions that take an int, not a generator)."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def _truth(
    spec: ExposureSpec,
    placed: PlacedParticles,
    drift_xy_a: npt.NDArray[np.float64],
    substeps_xy_a: npt.NDArray[np.float64],
    doming: DomingField | None,
    thickness: Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], npt.NDArray[np.float64]],
) -> ExposureTruth:
    w_a, h_a = spec.field_xy_a
    p = spec.pixel_size_a
    particles = tuple(
        ParticleTruth(
            species=s, x_a=float(x), y_a=float(y), z_a=float(z), x_px=float(x / p), y_px=float(y / p),
            defocus1_a=spec.defocus1_a + float(z), defocus2_a=spec.defocus2_a + float(z),
            quaternion=(float(q[0]), float(q[1]), float(q[2]), float(q[3])), aggregated=bool(a),
        )
        for s, (x, y, z), q, a in zip(placed.species, placed.xyz_a, placed.quaternions, placed.aggregated, strict=True)
        if 0.0 <= x < w_a and 0.0 <= y < h_a
    )
    grid = np.linspace(0.0, 1.0, 33)
    gx, gy = np.meshgrid(grid * w_a, grid * h_a)
    mean_t = float(np.mean(transmission(thickness(gx, gy), spec.ice_attenuation_nm)))
    doses = np.full(spec.n_frames, spec.dose_per_frame_e_per_a2)
    return ExposureTruth(
        shape=spec.shape, pixel_size_a=p, n_frames=spec.n_frames, seed=spec.seed, particles=particles,
        defocus1_a=spec.defocus1_a, defocus2_a=spec.defocus2_a, astig_angle_rad=spec.astig_angle_rad,
        drift_xy_a=drift_xy_a, drift_substeps_xy_a=substeps_xy_a, dose_per_frame_e_per_a2=doses,
        exposure_mid_e_per_a2=np.cumsum(doses) - 0.5 * doses, ice_nm=spec.ice_nm,
        ice_gradient_nm_per_um=spec.ice_gradient_nm_per_um, ice_transmission=mean_t,
        support_nm=spec.support_nm, crystalline_ice=spec.crystalline_ice_rad > 0, doming=doming,
    )
