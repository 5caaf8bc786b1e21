"""A dose-symmetric tilt series of a cell: per-tilt CTF, dose, radiation damage and shot noise.

Each tilt is a parallel projection of the cell tilted about y (:mod:`~gridpilot_sim.tomo.projector`),
turned into a phase by the interaction constant, imaged through the twin's transfer function
(:func:`gridpilot_sim.exposure.transfer.slab_transfer_rfft`: CTF × coherence envelopes, weak-phase
approximation I = 1 + 2 (T ⊛ φ)), faded by the dose already received (Grant & Grigorieff's
critical exposure, :func:`gridpilot.optics.dose_filter`), attenuated by inelastic scattering through
a slab that is 1 / cos θ thicker at tilt θ (zero-loss filtered), and given Poisson noise at the
tilt's dose. Tilts are acquired in Hagen's dose-symmetric order (0, +s, +2s, −s, −2s, +3s, …);
the stack is stored sorted by angle, as IMOD and AreTomo expect, with each tilt's acquisition
index, dose and defocus in the truth.

>>> dose_symmetric_angles(6.0, 3.0, group_size=1).tolist()
[0.0, 3.0, -3.0, 6.0, -6.0]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import scipy.fft as sfft

from gridpilot.errors import InvalidInput
from gridpilot.optics import dose_filter, frequency_grid, interaction_constant
from gridpilot_sim.exposure.transfer import LensParams, slab_transfer_rfft
from gridpilot_sim.tomo.cell import Cell
from gridpilot_sim.tomo.projector import project_volume

__all__ = ["TiltSeries", "TiltSeriesSpec", "dose_symmetric_angles", "simulate_tilt_series"]

# Inelastic mean free path of 300 keV electrons in vitreous ice, Å (≈ 350 nm; zero-loss image).
_INELASTIC_MFP_A: Final[float] = 3500.0
# The weak-phase image is clipped here before the shot noise (gold beads are not weak phase).
_MIN_INTENSITY: Final[float] = 0.02


@dataclass(frozen=True)
class TiltSeriesSpec:
    """How the tilt series is taken (a typical cellular cryo-ET scheme by default)."""

    tilt_max_deg: float = 60.0
    tilt_step_deg: float = 3.0
    group_size: int = 2
    total_dose_e_per_a2: float = 120.0
    defocus_um: float = 4.0
    defocus_jitter_um: float = 0.15
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    b_factor_a2: float = 0.0
    noise: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.tilt_max_deg <= 80.0:
            raise InvalidInput(f"tilt_max_deg must be in (0, 80], got {self.tilt_max_deg}")
        if not 0.5 <= self.tilt_step_deg <= self.tilt_max_deg:
            raise InvalidInput(f"tilt_step_deg must be 0.5 … tilt_max_deg, got {self.tilt_step_deg}")
        if self.group_size < 1:
            raise InvalidInput(f"group_size must be >= 1, got {self.group_size}")
        if not 0.0 < self.total_dose_e_per_a2 <= 1000.0:
            raise InvalidInput(f"total_dose_e_per_a2 must be in (0, 1000], got {self.total_dose_e_per_a2}")
        if not 0.0 < self.defocus_um <= 20.0:
            raise InvalidInput(f"defocus_um must be in (0, 20], got {self.defocus_um}")


@dataclass(frozen=True, eq=False)
class TiltSeries:
    """A tilt series sorted by angle.

    Attributes
    ----------
    images : (T, Y, X) float32, electrons per pixel
    angles_deg : (T,) tilt angles about y, increasing
    order : (T,) acquisition index of each tilt (0 = first taken)
    dose_e_per_a2 : (T,) dose of each tilt
    prior_dose_e_per_a2 : (T,) dose received before each tilt
    defocus_a : (T,) underfocus of each tilt, Å
    pixel_size_a : Å per pixel
    thickness_vox : z size of the specimen box in voxels (what a reconstruction needs)
    spec : how it was taken
    """

    images: npt.NDArray[np.float32]
    angles_deg: npt.NDArray[np.float64]
    order: npt.NDArray[np.int64]
    dose_e_per_a2: npt.NDArray[np.float64]
    prior_dose_e_per_a2: npt.NDArray[np.float64]
    defocus_a: npt.NDArray[np.float64]
    pixel_size_a: float
    thickness_vox: int
    spec: TiltSeriesSpec

    def truth(self) -> dict[str, Any]:
        return {
            "kind": "tiltseries",
            "pixel_size_a": self.pixel_size_a,
            "thickness_vox": self.thickness_vox,
            "tilts": [
                {"angle_deg": float(a), "acquisition_index": int(o), "dose_e_per_a2": float(d),
                 "prior_dose_e_per_a2": float(p), "defocus_a": float(f)}
                for a, o, d, p, f in zip(self.angles_deg, self.order, self.dose_e_per_a2,
                                         self.prior_dose_e_per_a2, self.defocus_a, strict=True)
            ],
            "spec": asdict(self.spec),
        }


def dose_symmetric_angles(tilt_max_deg: float, tilt_step_deg: float, *, group_size: int = 2) -> npt.NDArray[np.float64]:
    """Tilt angles in Hagen's dose-symmetric acquisition order (Hagen et al., JSB 2017).

    Zero first, then groups of ``group_size`` steps alternating between the positive and the
    negative side, outwards to ±``tilt_max_deg``.
    """
    n = math.floor(tilt_max_deg / tilt_step_deg + 1e-9)
    pos = [tilt_step_deg * i for i in range(1, n + 1)]
    neg = [-a for a in pos]
    order = [0.0]
    while pos or neg:
        order += pos[:group_size]
        order += neg[:group_size]
        pos, neg = pos[group_size:], neg[group_size:]
    return np.asarray(order, dtype=np.float64)


def simulate_tilt_series(cell: Cell, spec: TiltSeriesSpec | None = None, *, seed: int = 0) -> TiltSeries:
    """Take a tilt series of ``cell`` (deterministic in ``seed``).

    Notes
    -----
    At tilt θ with prior dose N₀ and dose n: φ = σ_e ∫ΔV dl, Î = FFT(φ)·T(k; Δf_θ)·q(k, N₀ + n/2),
    I = (1 + 2 IFFT(Î)) · exp(−t / (λ_in cos θ)), counts ~ Poisson(n · a² · I) with a the pixel
    size and t the specimen thickness.
    """
    spec = spec or TiltSeriesSpec()
    rng = np.random.default_rng([seed, 0x7117])
    acquisition = dose_symmetric_angles(spec.tilt_max_deg, spec.tilt_step_deg, group_size=spec.group_size)
    n_tilts = acquisition.size
    dose = np.full(n_tilts, spec.total_dose_e_per_a2 / n_tilts)
    prior = np.concatenate([[0.0], np.cumsum(dose)[:-1]])
    defocus = (spec.defocus_um + spec.defocus_jitter_um * rng.standard_normal(n_tilts)) * 1e4
    sort = np.argsort(acquisition, kind="stable")
    angles = acquisition[sort]
    nz, ny, nx = cell.potential_v.shape
    vs = cell.voxel_size_a
    proj = project_volume(cell.potential_v, angles)  # V·voxel
    sigma_e = interaction_constant(spec.voltage_kv)
    kx, ky = frequency_grid((ny, nx), vs, rfft=True)
    k = np.sqrt(kx**2 + ky**2)
    thickness_a = nz * vs
    images = np.empty((n_tilts, ny, nx), dtype=np.float32)
    for i, j in enumerate(sort):
        lens = LensParams(defocus1_a=float(defocus[j]), defocus2_a=float(defocus[j]), voltage_kv=spec.voltage_kv,
                          cs_mm=spec.cs_mm, amplitude_contrast=spec.amplitude_contrast,
                          b_factor_a2=spec.b_factor_a2)
        transfer = slab_transfer_rfft((ny, nx), vs, lens) * dose_filter(k, prior[j] + 0.5 * dose[j], spec.voltage_kv)
        phase = sigma_e * vs * proj[i].astype(np.float64)
        contrast = sfft.irfft2(sfft.rfft2(phase) * transfer, s=(ny, nx))
        attenuation = math.exp(-thickness_a / (_INELASTIC_MFP_A * math.cos(math.radians(angles[i]))))
        mean = np.clip(1.0 + 2.0 * contrast, _MIN_INTENSITY, None) * attenuation * dose[j] * vs * vs
        images[i] = rng.poisson(mean) if spec.noise else mean
    return TiltSeries(images, angles, sort.astype(np.int64), dose[sort], prior[sort], defocus[sort], vs, nz, spec)
