"""Ice thickness where the data support it, by two independent methods.

* **intensity ratio** — the fraction of electrons an energy filter (or the objective aperture)
  keeps falls as T = I/I₀ = exp(−t/Λ), so t = Λ ln(I₀/I). I is the mean count per pixel per
  frame; I₀ is the dose the same frame would have given through vacuum, which is the nominal
  dose per frame when that dose was measured over an empty hole, as it usually is
  (TWIN-PHYSICS.md, ice; Rice et al. 2018 for the method). Valid for frames in electrons
  (gain-normalised counts); raw integer counts carry the detector's DQE(0) and read thick.
* **Thon-ring nodes** (CTFFIND5, Elferich et al. 2024) — a specimen of thickness t averages the
  CTF over a defocus range t, which multiplies the ring modulation by sinc(π λ t k²): the rings
  fade and flip contrast at λ t k² = 1, 2, … . Reported only when a node falls where the rings
  were fitted and modelling it improves the fit clearly.

>>> round(thickness_from_intensity(mean_e_per_px=0.8920, vacuum_e_per_px=1.0), 1)
40.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from gridpilot.optics import CTFParams, ctf_1d, electron_wavelength_a

from .ctfquality import FitQuality, normalised_ring_signal

__all__ = [
    "ICE_ATTENUATION_LENGTH_NM",
    "IceEstimate",
    "estimate_ice",
    "thickness_from_intensity",
    "thickness_from_rings",
]

#: Λ of vitreous ice for zero-loss (energy-filtered) imaging at 300 kV, nm (TWIN-PHYSICS.md:
#: 300–400 nm; the twin's default 350 nm; parakeet uses 315 nm).
ICE_ATTENUATION_LENGTH_NM: Final[float] = 350.0
#: A transmission above this (noise around vacuum) or below the lower limit is not trusted.
_MAX_TRANSMISSION: Final[float] = 1.05
_MIN_TRANSMISSION: Final[float] = 0.02
_THICKNESS_GRID_A: Final[npt.NDArray[np.float64]] = np.arange(0.0, 8000.0, 20.0)
#: The defocus fit must hold at least to this resolution (Å) for its rings to be read.
_MAX_RINGS_FIT_RESOLUTION_A: Final[float] = 15.0
#: Defocus offsets (Å) searched with the thickness.
_DEFOCUS_SLACK_GRID_A: Final[npt.NDArray[np.float64]] = np.arange(-2000.0, 2001.0, 50.0)
#: The node model must raise the ring correlation at least this much over a thin specimen.
_MIN_NODE_GAIN: Final[float] = 0.1

IceMethod = Literal["intensity_ratio", "thon_ring_nodes"]


@dataclass(frozen=True)
class IceEstimate:
    """Ice thickness and how it was found.

    Attributes
    ----------
    thickness_nm : the reported thickness, or ``None`` when the data do not support one
    method : "intensity_ratio" or "thon_ring_nodes" (the reported one), or ``None``
    intensity_nm : the intensity-ratio estimate, if any
    rings_nm : the Thon-ring-node estimate, if any
    transmission : I / I₀, if a vacuum dose was given
    rings_defocus_offset_a : defocus correction found jointly with the ring-node thickness, Å
    note : why an estimate is missing
    """

    thickness_nm: float | None
    method: IceMethod | None
    intensity_nm: float | None
    rings_nm: float | None
    transmission: float | None
    rings_defocus_offset_a: float = 0.0
    note: str = ""


def thickness_from_intensity(
    *, mean_e_per_px: float, vacuum_e_per_px: float, attenuation_length_nm: float = ICE_ATTENUATION_LENGTH_NM
) -> float:
    """t = Λ ln(I₀ / I) in nm (Beer–Lambert on the electrons kept by the filter)."""
    return attenuation_length_nm * math.log(vacuum_e_per_px / mean_e_per_px)


def thickness_from_rings(
    quality: FitQuality, params: CTFParams, *, k_low_per_a: float
) -> tuple[float, float] | None:
    """(thickness nm, defocus correction Å) from the sinc(π λ t k²) modulation of the rings,
    or ``None`` when the rings do not show a node.

    Notes
    -----
    Averaging sin²χ over a defocus range t gives ½[1 − sinc(π λ t k²) cos 2χ]; the oscillating
    part −sinc · cos 2χ (cos 2χ = 1 − 2 CTF²) is correlated with the locally normalised
    equi-phase average from the band's low limit to where the spectrum still resolves the
    rings (beyond a node the rings come back inverted), for t on a 2 nm grid and, jointly, the
    defocus within ±2000 Å of the fit (inverted rings pull a thickness-blind fit; CTFFIND5 refines
    both). The estimate is
    kept when the CTF fit holds to 15 Å at least, the first node (λ t k² = 1) lies inside
    that range, and the correlation beats a thin specimen's by at least 0.1.
    """
    if quality.fit_resolution_a > _MAX_RINGS_FIT_RESOLUTION_A:
        return None
    data, k = normalised_ring_signal(quality, params), quality.k_per_a
    evaluated = np.nonzero(np.isfinite(quality.correlation))[0]
    if evaluated.size == 0:
        return None
    k_high = float(k[evaluated[-1]])
    sel = (k >= k_low_per_a) & (k <= k_high)
    if sel.sum() < 8:
        return None
    kk = k[sel]
    d = data[sel]
    lam = electron_wavelength_a(params.voltage_kv)
    envelope = np.sinc(lam * _THICKNESS_GRID_A[:, None] * kk[None, :] ** 2)  # sin(πx)/(πx)
    table = []
    for offset in _DEFOCUS_SLACK_GRID_A:
        cos2chi = 1.0 - 2.0 * ctf_1d(
            kk, params.defocus_mean_a + float(offset), voltage_kv=params.voltage_kv, cs_mm=params.cs_mm,
            amplitude_contrast=params.amplitude_contrast, phase_shift_rad=params.phase_shift_rad,
        ) ** 2
        models = -envelope * cos2chi[None, :]
        norms = np.sqrt((models**2).sum(axis=1) * (d**2).sum())
        table.append((models @ d) / np.maximum(norms, 1e-30))
    cc = np.stack(table)  # (defocus offsets, thicknesses)
    i, j = np.unravel_index(int(np.argmax(cc)), cc.shape)
    t_a = float(_THICKNESS_GRID_A[j])
    if t_a <= 0 or cc[i, j] - float(cc[:, 0].max()) < _MIN_NODE_GAIN:
        return None
    if 1.0 / math.sqrt(lam * t_a) > k_high:  # the first node lies beyond the resolved rings
        return None
    return t_a / 10.0, float(_DEFOCUS_SLACK_GRID_A[i])


def estimate_ice(
    *,
    mean_e_per_px_per_frame: float,
    dose_per_frame_e_per_a2: float | None,
    pixel_size_a: float,
    quality: FitQuality,
    ctf: CTFParams,
    k_low_per_a: float,
    attenuation_length_nm: float = ICE_ATTENUATION_LENGTH_NM,
) -> IceEstimate:
    """Both estimates, the intensity ratio preferred when it is valid.

    Parameters
    ----------
    mean_e_per_px_per_frame : mean of the (gain-corrected) frames, electrons per pixel
    dose_per_frame_e_per_a2 : the vacuum dose per frame; ``None`` when unknown
    pixel_size_a : Å per pixel
    quality, ctf : the CTF fit (for the ring-node method)
    k_low_per_a : low-frequency limit of the CTF fit band, 1/Å
    """
    notes = []
    intensity_nm = transmission = None
    if dose_per_frame_e_per_a2 is not None and mean_e_per_px_per_frame > 0:
        vacuum = dose_per_frame_e_per_a2 * pixel_size_a**2
        transmission = mean_e_per_px_per_frame / vacuum
        if _MIN_TRANSMISSION <= transmission <= _MAX_TRANSMISSION:
            intensity_nm = max(0.0, thickness_from_intensity(
                mean_e_per_px=mean_e_per_px_per_frame, vacuum_e_per_px=vacuum,
                attenuation_length_nm=attenuation_length_nm,
            ))
        else:
            notes.append(f"mean intensity is {transmission:.2f} × the vacuum dose: not an energy-filtered counting movie")
    else:
        notes.append("no vacuum dose for the intensity ratio")
    rings = thickness_from_rings(quality, ctf, k_low_per_a=k_low_per_a)
    rings_nm, offset = rings if rings is not None else (None, 0.0)
    if rings is None:
        notes.append("no Thon-ring node inside the resolved rings")
    note = "; ".join(notes)
    if intensity_nm is not None:
        return IceEstimate(intensity_nm, "intensity_ratio", intensity_nm, rings_nm, transmission, offset, note)
    if rings_nm is not None:
        return IceEstimate(rings_nm, "thon_ring_nodes", None, rings_nm, transmission, offset, note)
    return IceEstimate(None, None, None, None, transmission, 0.0, note)
