"""The twin's transfer function: the shared CTF of :mod:`gridpilot.optics` times coherence envelopes.

>>> t = slab_transfer_rfft((64, 64), 1.0, LensParams(defocus1_a=15000.0, defocus2_a=15000.0))
>>> t.shape, round(float(t[0, 0]), 3)
((64, 33), -0.07)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from gridpilot.optics import CTFParams, ctf_2d, electron_wavelength_a, frequency_grid

__all__ = ["LensParams", "coherence_envelope", "iter_slab_transfers_rfft", "slab_transfer_rfft"]


@dataclass(frozen=True)
class LensParams(CTFParams):
    """What the transfer of one depth slab depends on: the shared CTF parameters (defocus at
    that depth, positive = under) plus the two coherence envelopes.

    ``focal_spread_a`` is δ = C_c √((ΔE/E)² + (2ΔI/I)² + …) (≈ 70 Å for C_c = 2.7 mm);
    ``illumination_semi_angle_mrad`` is the beam's convergence α (0.01–0.1 mrad for a FEG).
    """

    focal_spread_a: float = 70.0
    illumination_semi_angle_mrad: float = 0.03

    def shifted(self, dz_a: float) -> LensParams:
        """The same lens seen from a plane ``dz_a`` further downstream (more underfocus)."""
        return replace(self, defocus1_a=self.defocus1_a + dz_a, defocus2_a=self.defocus2_a + dz_a)


def coherence_envelope(
    k_per_a: npt.ArrayLike, defocus_a: float, lens: LensParams
) -> npt.NDArray[np.float64]:
    """Temporal × spatial coherence envelope at spatial frequencies k (1/Å).

    Notes
    -----
    E_t = exp(−½ (π λ δ)² k⁴);
    E_s = exp(−(π α / λ)² (C_s λ³ k³ − Δf λ k)²)  (TWIN-PHYSICS.md, envelopes).
    """
    k = np.asarray(k_per_a, dtype=np.float64)
    lam = electron_wavelength_a(lens.voltage_kv)
    cs_a = lens.cs_mm * 1e7
    alpha = lens.illumination_semi_angle_mrad * 1e-3
    temporal = np.exp(-0.5 * (math.pi * lam * lens.focal_spread_a) ** 2 * k**4)
    spatial = np.exp(-((math.pi * alpha / lam) ** 2) * (cs_a * lam**3 * k**3 - defocus_a * lam * k) ** 2)
    return np.asarray(temporal * spatial)


def slab_transfer_rfft(
    shape: tuple[int, int], pixel_size_a: float, lens: LensParams
) -> npt.NDArray[np.float64]:
    """CTF × B-factor × coherence envelopes on the rfft grid of an (H, W) image.

    Returns
    -------
    transfer : (H, W // 2 + 1) float64, −sin χ · exp(−B k²/4) · E_t · E_s
    """
    ctf = ctf_2d(
        shape, pixel_size_a, lens.defocus1_a, lens.defocus2_a, lens.astig_angle_rad,
        voltage_kv=lens.voltage_kv, cs_mm=lens.cs_mm, amplitude_contrast=lens.amplitude_contrast,
        phase_shift_rad=lens.phase_shift_rad, b_factor_a2=lens.b_factor_a2, rfft=True,
    )
    kx, ky = frequency_grid(shape, pixel_size_a, rfft=True)
    k = np.sqrt(kx**2 + ky**2)
    mean_defocus = 0.5 * (lens.defocus1_a + lens.defocus2_a)
    return np.asarray(ctf * coherence_envelope(k, mean_defocus, lens))


def iter_slab_transfers_rfft(
    shape: tuple[int, int], pixel_size_a: float, lens: LensParams, step_a: float, slabs: Iterable[int]
) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
    """:func:`slab_transfer_rfft` of ``lens.shifted(b * step_a)`` for each slab index b, fast.

    Yields ``(b, transfer)`` (float32) in increasing b. Two calls of
    :func:`gridpilot.optics.ctf_2d` (phase shifts 0 and π/2) give S = −sin χ₀ and C = −cos χ₀ at
    the mid-plane; a defocus change z adds a z = π λ z k² to χ, so
    −sin(χ₀ + a z) = Re[(S − iC) e^{i a z}], and e^{i a z} for successive slabs is one complex
    multiplication by e^{i a Δz}. The spatial-coherence envelope is evaluated at each slab's
    defocus, the temporal one once.
    """
    order = sorted(set(slabs))
    if not order:
        return
    lam = electron_wavelength_a(lens.voltage_kv)
    d1, d2 = lens.defocus1_a, lens.defocus2_a
    sin_part, cos_part = (
        ctf_2d(shape, pixel_size_a, d1, d2, lens.astig_angle_rad, voltage_kv=lens.voltage_kv,
               cs_mm=lens.cs_mm, amplitude_contrast=lens.amplitude_contrast,
               phase_shift_rad=lens.phase_shift_rad + extra, b_factor_a2=lens.b_factor_a2, rfft=True)
        for extra in (0.0, 0.5 * math.pi)
    )
    kx, ky = frequency_grid(shape, pixel_size_a, rfft=True)
    k = np.sqrt(kx**2 + ky**2)
    temporal = coherence_envelope(k, 0.5 * (d1 + d2), replace(lens, illumination_semi_angle_mrad=0.0))
    base_re = (sin_part * temporal).astype(np.float32)
    base_im = (-cos_part * temporal).astype(np.float32)
    a_step = math.pi * lam * step_a * k**2
    rotation = np.exp(1j * a_step).astype(np.complex64)
    current = np.exp(1j * a_step * order[0]).astype(np.complex64)
    # E_s = exp(−c (C_s λ³ k³ − Δf λ k)²) = exp(−c (u − Δf v)²), see coherence_envelope.
    c = np.float32((math.pi * lens.illumination_semi_angle_mrad * 1e-3 / lam) ** 2)
    u = (lens.cs_mm * 1e7 * lam**3 * k**3).astype(np.float32)
    v = (lam * k).astype(np.float32)
    previous = order[0]
    for b in order:
        for _ in range(b - previous):
            current *= rotation
        previous = b
        transfer = base_re * current.real - base_im * current.imag
        if c > 0:
            dev = u - np.float32(0.5 * (d1 + d2) + b * step_a) * v
            transfer *= np.exp(-c * dev * dev)
        yield b, transfer
