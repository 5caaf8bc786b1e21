"""CTF estimation in the spirit of CTFFIND4 (Rohou & Grigorieff 2015), with an honest flag.

1. the amplitude spectrum averaged over overlapping tiles (:mod:`preprocess.powerspec`);
2. a 1D exhaustive defocus search on the rotational average over [min_res, max_res]. The
   background and the envelope are fitted *jointly* with the rings for every trial defocus, as
   smooth (Legendre) functions of k: a background model is then as wide as the whole band,
   far wider than any ring period, so it can never erase the rings (PREPROCESS-NOTES: a 9-bin
   box kernel failed at 1.5 µm);
3. a 2D refinement of (Δf₁, Δf₂, θ_ast [, φ]) by Powell on the background-subtracted,
   envelope-normalised 2D spectrum, started from the best of a small grid of astigmatisms and
   angles, scored by the correlation with CTF²;
4. the resolution to which the fit holds: a sliding-window correlation between the equi-phase
   average of the spectrum and CTF², up to where it stays below 0.5 (cisTEM's significance);
5. a confidence flag with the reasons when the rings do not support the fit.

The model is :func:`gridpilot.optics.ctf_2d` / :func:`gridpilot.optics.ctf_1d` (Δf > 0 is
underfocus; θ_ast from the x axis, counter-clockwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import optimize

from gridpilot.contracts import CTFFit, PreprocessParams
from gridpilot.optics import CTFParams, ctf_1d, ctf_2d, electron_wavelength_a

from .ctfquality import FitQuality, assess_fit, ring_half_windows, windowed_correlation
from .powerspec import PowerSpectrum, radial_average

__all__ = ["CTFEstimate", "estimate_ctf", "fit_ctf_1d", "refine_ctf_2d", "shift_defocus"]

#: Trial defoci are spaced so that the ring phase at the band's edge moves by at most π/4.
_PHASE_STEP_RAD: Final[float] = math.pi / 4
_PHASE_SHIFT_STEPS: Final[int] = 12
#: Half-astigmatisms (Å) and angles tried to start the 2D refinement (CTFFIND4's initialisation).
_START_HALF_ASTIG_A: Final[tuple[float, ...]] = (0.0, 100.0, 250.0, 500.0, 1000.0)
_START_ANGLES: Final[int] = 12
#: The band may not reach closer to Nyquist than this fraction.
_MAX_NYQUIST_FRACTION: Final[float] = 0.95
#: Astigmatism is kept only when it raises the 2D correlation above the round model's by this
#: many times 1/√n (n: pixels in the band): on thin ice a free astigmatism otherwise fits
#: noise (issue 14: 1.4–1.7 kÅ on a non-astigmatic twin exposure). Chosen on the bench's tuning
#: sets only: the gain was 0.0–0.69 on 20 round session exposures and 0.49–3.8 on 9 astigmatic (300–1000 Å)
#: benchmark movies; astigmatisms whose gain falls below it are reported as 0.
MIN_ASTIG_GAIN_SIGMAS: Final[float] = 0.75
#: Each half-movie's 1D search spans the full fit's defocus ± the larger of these: a weak half
#: searched over the whole range runs away to the densest rings its noise matches.
_HALF_SEARCH_A: Final[float] = 5000.0
_HALF_SEARCH_FRACTION: Final[float] = 0.3


@dataclass(frozen=True)
class CTFEstimate:
    """A CTF fit with everything needed to judge and draw it.

    Attributes
    ----------
    params : the fitted CTF (defocus Å, astigmatism angle rad, phase shift rad, optics)
    cc : correlation of the 2D spectrum with CTF² over the fit band
    score_1d : mean sliding-window correlation of the rotational average with CTF² (1D search)
    quality : fit resolution, equi-phase curves, confidence and its reasons
    spectrum : the averaged amplitude spectrum that was fitted
    band_a : (low, high) resolution limits of the fit, Å
    half_defoci_a : 1D defoci of two half-data spectra (even/odd frames), if given
    significance_1d : how far the 1D search's best trial stands out, (best − median) / MAD
    """

    params: CTFParams
    cc: float
    score_1d: float
    quality: FitQuality
    spectrum: PowerSpectrum
    band_a: tuple[float, float]
    half_defoci_a: tuple[float, float] | None = None
    significance_1d: float = 0.0

    def to_contract(self) -> CTFFit:
        """The :class:`gridpilot.contracts.CTFFit` of this estimate."""
        return CTFFit(
            defocus1_a=self.params.defocus1_a,
            defocus2_a=self.params.defocus2_a,
            astig_angle_deg=math.degrees(self.params.astig_angle_rad),
            phase_shift_rad=self.params.phase_shift_rad,
            cc=self.cc,
            fit_resolution_a=self.quality.fit_resolution_a,
            confident=self.quality.confident,
            reason=self.quality.reason,
        )


@dataclass(frozen=True)
class _Fit1D:
    defocus_a: float
    phase_shift_rad: float
    score: float
    k_range: tuple[float, float]
    #: How far the best trial stands out of all trials: (best − median) / (1.4826 MAD).
    significance: float = 0.0


def _ring_models(
    k_per_a: npt.NDArray[np.float64], defoci_a: npt.NDArray[np.float64], phase_rad: float, optics: CTFParams
) -> npt.NDArray[np.float64]:
    """CTF²(k) for every trial defocus, (C, n)."""
    return np.stack([
        ctf_1d(
            k_per_a, float(d), voltage_kv=optics.voltage_kv, cs_mm=optics.cs_mm,
            amplitude_contrast=optics.amplitude_contrast, phase_shift_rad=phase_rad,
        ) ** 2
        for d in defoci_a
    ])


def fit_ctf_1d(
    k_per_a: npt.NDArray[np.float64],
    profile: npt.NDArray[np.float64],
    *,
    band_per_a: tuple[float, float],
    optics: CTFParams,
    defocus_range_a: tuple[float, float],
    fit_phase_shift: bool = False,
) -> _Fit1D:
    """Exhaustive 1D search for the defocus whose rings best match a rotational average.

    Parameters
    ----------
    k_per_a : (n,) frequencies of the profile, j · dk from 0, 1/Å
    profile : (n,) rotationally averaged amplitude spectrum
    band_per_a : (k_low, k_high) scored
    optics : voltage, C_s and amplitude contrast (its defoci are ignored)
    defocus_range_a : (min, max) defocus searched, Å

    Notes
    -----
    The score of a trial (Δf, φ) is the mean over the band of the sliding-window correlation
    between the profile and CTF²(k; Δf, φ), each window ±0.75 ring periods of that trial with a
    straight line removed from both: a background subtraction and local variance normalisation
    whose kernel follows the ring period, so it can neither erase rings nor be fooled by a
    sloping background. Trials are spaced so that the ring phase at the band's edge moves by
    π/4; the best is refined by a bounded scalar search.
    """
    dk = float(k_per_a[1] - k_per_a[0])
    in_band = (k_per_a >= band_per_a[0]) & (k_per_a <= band_per_a[1])
    lam = electron_wavelength_a(optics.voltage_kv)
    step = _PHASE_STEP_RAD / (math.pi * lam * band_per_a[1] ** 2)
    lo, hi = defocus_range_a
    defoci = np.arange(lo, hi + step, step)
    phases = np.linspace(0.0, math.pi, _PHASE_SHIFT_STEPS, endpoint=False) if fit_phase_shift else np.zeros(1)

    def scores(ds: npt.NDArray[np.float64], phase: float) -> npt.NDArray[np.float64]:
        models = _ring_models(k_per_a, ds, phase, optics)
        half = ring_half_windows(k_per_a, ds, optics, dk)
        return np.asarray(windowed_correlation(profile, models, half)[:, in_band].mean(axis=1))

    table = np.stack([scores(defoci, float(p)) for p in phases], axis=1)
    i, j = np.unravel_index(int(np.argmax(table)), table.shape)
    phase = float(phases[j])
    res = optimize.minimize_scalar(
        lambda d: -float(scores(np.array([d]), phase)[0]),
        bounds=(max(lo, defoci[i] - step), min(hi, defoci[i] + step)), method="bounded", options={"xatol": 2.0},
    )
    best, score = (float(res.x), float(-res.fun)) if -res.fun >= table[i, j] else (float(defoci[i]), float(table[i, j]))
    med = float(np.median(table))
    mad = 1.4826 * float(np.median(np.abs(table - med)))
    return _Fit1D(best, phase, score, band_per_a, (score - med) / max(mad, 1e-12))


def _normalised_band(
    spectrum: PowerSpectrum, profile: npt.NDArray[np.float64], fit: _Fit1D, optics: CTFParams
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_], int]:
    """The cropped 2D spectrum, background-subtracted and divided by its local RMS, and the
    band mask.

    Notes
    -----
    Background B(k): the rotational average averaged over ±0.75 ring periods of the 1D fit.
    Local RMS E(k): the root of the ring-averaged (A − B)² over the same windows, which an
    astigmatism (rings smeared in the rotational average) cannot wash out.
    """
    amp, box = spectrum.cropped(fit.k_range[1])
    p_box = spectrum.tile_px * spectrum.pixel_size_a / box
    dk = spectrum.dk_per_a
    ky = np.fft.fftfreq(box, d=p_box)[:, None]
    kx = np.fft.rfftfreq(box, d=p_box)[None, :]
    k = np.sqrt(kx**2 + ky**2)
    n = profile.size
    k_bins = (np.arange(n) * dk).astype(np.float64)
    half = ring_half_windows(k_bins, np.array([fit.defocus_a]), optics, dk)[0]
    j = np.arange(n)
    lo, hi = np.clip(j - half, 0, n), np.clip(j + half + 1, 0, n)
    cum = np.concatenate([[0.0], np.cumsum(profile)])
    background = (cum[hi] - cum[lo]) / np.maximum(hi - lo, 1)
    idx = np.minimum(np.rint(k / dk).astype(np.int64), n - 1)
    resid = amp - background[idx]
    ms = radial_average(resid**2, k, dk, n)
    cum2 = np.concatenate([[0.0], np.cumsum(ms)])
    rms = np.sqrt(np.maximum((cum2[hi] - cum2[lo]) / np.maximum(hi - lo, 1), 1e-30))
    mask = (k >= fit.k_range[0]) & (k <= fit.k_range[1])
    return np.asarray(resid / rms[idx]), mask, box


def _params_from(x: npt.NDArray[np.float64], optics: CTFParams, fit_phase: bool, phase0: float) -> CTFParams:
    mean, a, b = float(x[0]), float(x[1]), float(x[2])
    half = math.hypot(a, b)
    angle = 0.5 * math.atan2(b, a)
    phase = float(x[3]) if fit_phase else phase0
    return CTFParams(mean + half, mean - half, angle, optics.voltage_kv, optics.cs_mm, optics.amplitude_contrast, phase)


def refine_ctf_2d(
    spectrum: PowerSpectrum,
    profile: npt.NDArray[np.float64],
    fit: _Fit1D,
    *,
    optics: CTFParams,
    defocus_range_a: tuple[float, float],
    fit_phase_shift: bool = False,
    min_astig_gain_sigmas: float = MIN_ASTIG_GAIN_SIGMAS,
) -> tuple[CTFParams, float]:
    """Refine (Δf₁, Δf₂, θ_ast [, φ]) against the 2D spectrum; returns the fit and its CC.

    Notes
    -----
    Two models are refined: round (Δf̄ [, φ] only) and astigmatic, the latter started from the
    round fit and a grid of astigmatisms and angles. The astigmatic one is kept only if its CC
    beats the round one's by ``min_astig_gain_sigmas`` / √n, n the pixels in the band (the
    standard error of a correlation): two more free parameters always fit some noise.

    Parameters are (Δf̄, a, b) with Δf(θ) = Δf̄ + a cos 2θ + b sin 2θ, which is smooth through
    zero astigmatism; Δf₁,₂ = Δf̄ ± √(a² + b²), θ_ast = ½ atan2(b, a). The score is the
    Pearson correlation of CTF² with the normalised spectrum over the band (CTFFIND4).
    """
    data, mask, box = _normalised_band(spectrum, profile, fit, optics)
    d = data[mask]
    d = (d - d.mean()) / max(float(d.std()), 1e-30)
    p_box = spectrum.tile_px * spectrum.pixel_size_a / box

    def cc(x: npt.NDArray[np.float64]) -> float:
        p = _params_from(x, optics, fit_phase_shift, fit.phase_shift_rad)
        if p.defocus2_a < 0.5 * defocus_range_a[0] or p.defocus1_a > 1.2 * defocus_range_a[1]:
            return -1.0
        model = ctf_2d(
            (box, box), p_box, p.defocus1_a, p.defocus2_a, p.astig_angle_rad, voltage_kv=p.voltage_kv,
            cs_mm=p.cs_mm, amplitude_contrast=p.amplitude_contrast, phase_shift_rad=p.phase_shift_rad, rfft=True,
        )[mask] ** 2
        sd = float(model.std())
        return float(np.mean(d * (model - model.mean())) / sd) if sd > 0 else -1.0

    extra = [fit.phase_shift_rad] if fit_phase_shift else []
    round_start = np.array([fit.defocus_a, 0.0, 0.0, *extra])
    # The round model: the mean defocus (and phase) alone, astigmatism held at zero.
    free = np.array([True, False, False, *([True] if fit_phase_shift else [])])
    round_scale = np.array([200.0, *([0.3] if fit_phase_shift else [])])

    def embed(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x = round_start.copy()
        x[free] += z * round_scale
        return x

    res_round = optimize.minimize(
        lambda z: -cc(embed(z)), np.zeros(int(free.sum())), method="Powell",
        options={"xtol": 1e-2, "ftol": 1e-5, "maxfev": 200},
    )
    round_best = embed(res_round.x)
    round_cc = cc(round_best)
    starts = [round_best]
    for half in _START_HALF_ASTIG_A[1:]:
        for i in range(_START_ANGLES):
            two_theta = 2.0 * math.pi * i / _START_ANGLES
            starts.append(np.array([fit.defocus_a, half * math.cos(two_theta), half * math.sin(two_theta), *extra]))
    start = max(starts, key=cc)
    scale = np.array([200.0, 200.0, 200.0, *([0.3] if fit_phase_shift else [])])
    res = optimize.minimize(
        lambda z: -cc(start + z * scale), np.zeros_like(start), method="Powell",
        options={"xtol": 1e-2, "ftol": 1e-5, "maxfev": 600},
    )
    best = start + res.x * scale
    astig_cc = cc(best)
    if (astig_cc - round_cc) * math.sqrt(max(int(mask.sum()), 1)) < min_astig_gain_sigmas:
        best, astig_cc = round_best, round_cc
    return _params_from(best, optics, fit_phase_shift, fit.phase_shift_rad), astig_cc


def _band(spectrum: PowerSpectrum, params: PreprocessParams) -> tuple[float, float]:
    nyquist = 0.5 / spectrum.pixel_size_a
    k_hi = min(1.0 / params.ctf_max_res_a, _MAX_NYQUIST_FRACTION * nyquist)
    k_lo = min(1.0 / params.ctf_min_res_a, 0.5 * k_hi)
    return k_lo, k_hi


def estimate_ctf(
    spectrum: PowerSpectrum,
    *,
    voltage_kv: float,
    cs_mm: float,
    amplitude_contrast: float,
    params: PreprocessParams,
    half_spectra: tuple[PowerSpectrum, PowerSpectrum] | None = None,
) -> CTFEstimate:
    """Fit the CTF of an averaged amplitude spectrum.

    Parameters
    ----------
    spectrum : from :func:`preprocess.powerspec.power_spectrum`
    voltage_kv, cs_mm, amplitude_contrast : microscope optics
    params : band (``ctf_min_res_a``, ``ctf_max_res_a``), defocus search range, phase shift
    half_spectra : spectra of two halves of the data with independent noise (even and odd
        frames); their separate 1D fits must agree for the fit to be confident

    Returns
    -------
    CTFEstimate (Δf₁ ≥ Δf₂; θ_ast in (−π/2, π/2]).
    """
    optics = CTFParams(0.0, 0.0, 0.0, voltage_kv, cs_mm, amplitude_contrast)
    k_lo, k_hi = _band(spectrum, params)
    dk = spectrum.dk_per_a
    n_bins = spectrum.tile_px // 2 + 1
    k_all, _ = spectrum.frequencies()
    profile = radial_average(spectrum.amplitude, k_all, dk, n_bins)
    k_bins = (np.arange(n_bins) * dk).astype(np.float64)
    drange = (params.defocus_min_a, params.defocus_max_a)
    fit1 = fit_ctf_1d(
        k_bins, profile, band_per_a=(k_lo, k_hi), optics=optics, defocus_range_a=drange,
        fit_phase_shift=params.fit_phase_shift,
    )
    fitted, cc = refine_ctf_2d(
        spectrum, profile, fit1, optics=optics, defocus_range_a=drange, fit_phase_shift=params.fit_phase_shift,
    )
    angle = fitted.astig_angle_rad
    if angle <= -math.pi / 2:
        angle += math.pi
    fitted = CTFParams(fitted.defocus1_a, fitted.defocus2_a, angle, voltage_kv, cs_mm, amplitude_contrast, fitted.phase_shift_rad)
    halves = None
    if half_spectra is not None:
        # Each half is searched on its own, over a window around the full fit (an equi-phase
        # average along the full fit's lines would lend noise the full fit's structure).
        width = max(_HALF_SEARCH_A, _HALF_SEARCH_FRACTION * fitted.defocus_mean_a)
        window = (max(drange[0], fitted.defocus_mean_a - width), min(drange[1], fitted.defocus_mean_a + width))
        halves = tuple(
            fit_ctf_1d(
                k_bins, radial_average(h.amplitude, k_all, dk, n_bins), band_per_a=(k_lo, k_hi), optics=optics,
                defocus_range_a=window if window[1] > window[0] else drange, fit_phase_shift=params.fit_phase_shift,
            ).defocus_a
            for h in half_spectra
        )
    quality = assess_fit(
        spectrum, fitted, cc=cc, score_1d=fit1.score, k_band=(k_lo, k_hi), defocus_range_a=drange,
        half_defoci_a=halves, significance_1d=fit1.significance,  # type: ignore[arg-type]
    )
    return CTFEstimate(fitted, cc, fit1.score, quality, spectrum, (1.0 / k_lo, 1.0 / k_hi), halves,  # type: ignore[arg-type]
                       fit1.significance)


def shift_defocus(estimate: CTFEstimate, offset_a: float, *, defocus_range_a: tuple[float, float]) -> CTFEstimate:
    """The estimate with both defoci moved by ``offset_a`` and its quality re-assessed.

    Used when the ring-node thickness fit (:func:`preprocess.ice.thickness_from_rings`) finds
    the thickness-blind defocus pulled by rings that a node has inverted.
    """
    p = estimate.params
    moved = CTFParams(
        p.defocus1_a + offset_a, p.defocus2_a + offset_a, p.astig_angle_rad, p.voltage_kv, p.cs_mm,
        p.amplitude_contrast, p.phase_shift_rad,
    )
    k_band = (1.0 / estimate.band_a[0], 1.0 / estimate.band_a[1])
    halves = estimate.half_defoci_a
    if halves is not None:
        halves = (halves[0] + offset_a, halves[1] + offset_a)
    quality = assess_fit(
        estimate.spectrum, moved, cc=estimate.cc, score_1d=estimate.score_1d, k_band=k_band,
        defocus_range_a=defocus_range_a, half_defoci_a=halves, significance_1d=estimate.significance_1d,
    )
    return CTFEstimate(moved, estimate.cc, estimate.score_1d, quality, estimate.spectrum, estimate.band_a, halves,
                       estimate.significance_1d)
