"""How far a CTF fit holds, and whether to trust it.

The spectrum is averaged along lines of equal CTF phase (equi-phase average, which undoes the
astigmatism), compared with CTF² in a sliding window whose width follows the local ring period,
and the fit is said to hold up to the last frequency before that correlation falls below 0.5
for good — cisTEM ctffind's "significance" level (thresholds there: 0.1 low, 0.5 significance,
0.66 high). A fit is flagged *not confident*, with reasons, when its correlation is low, when it
holds only to low resolution or over fewer than two rings, when the defocus sits on a bound of
the search, when the rings explain little of the rotational average, or — given two halves of
the data with independent noise (even and odd frames) — when the halves disagree on the
defocus: noise can mimic a few rings in one spectrum, not the same rings in two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from gridpilot.optics import CTFParams, ctf_1d, electron_wavelength_a

from .powerspec import PowerSpectrum, equiphase_frequency, radial_average

__all__ = ["FitQuality", "assess_fit", "half_agreement_tolerance_a", "normalised_ring_signal", "ring_half_windows", "windowed_correlation"]

#: cisTEM ctffind's significance threshold for the fit-resolution curve.
FRC_SIGNIFICANCE: Final[float] = 0.5
#: The curve must stay below the threshold this many bins for the fit to be said to end.
_BELOW_RUN_BINS: Final[int] = 3
#: The fit is said to hold from the first bin that starts a run of this many bins above it.
_MIN_HELD_BINS: Final[int] = 6
_MIN_HALF_WINDOW_BINS: Final[int] = 3
#: A dip in the fit-resolution curve no wider than this many ring periods does not end the fit.
_MAX_DIP_RINGS: Final[float] = 1.0
#: Nor does a *sag*: a stretch below the threshold whose correlation never falls under
#: ``_SAG_FLOOR``, up to ``_MAX_SAG_RINGS`` ring periods wide. Where the signal is gone the curve
#: swings about zero; on thin ice it sags to 0.3–0.5 over a ring or two and recovers (issue 14:
#: fits cut at 14–22 Å whose rings held to 7–9 Å). Chosen on the bench's session tuning sets.
_SAG_FLOOR: Final[float] = 0.2
_MAX_SAG_RINGS: Final[float] = 5.0
#: Window half-width in ring periods.
_HALF_WINDOW_PERIODS: Final[float] = 0.75
#: Rings closer than this many spectrum pixels are not resolved by the spectrum.
_MIN_RING_PERIOD_BINS: Final[float] = 2.5
# Confidence rules (brief: flag low CC, fit resolution worse than ~10–15 Å, defocus at a bound).
MIN_CONFIDENT_CC: Final[float] = 0.05
#: 12 Å, within the brief's 10–15 Å: on thin ice (15–30 nm) correct fits hold to 10–12 Å.
MAX_CONFIDENT_FIT_RESOLUTION_A: Final[float] = 12.0
MIN_CONFIDENT_SCORE_1D: Final[float] = 0.05
#: The stretch over which the fit holds must span at least this many Thon rings (a noise
#: spectrum can match CTF² over a ring or two by chance, not over several in a row).
MIN_CONFIDENT_RINGS: Final[float] = 3.0
#: With two halves that agree (below), the CC and ring-count bars are lowered to these.
MIN_CONFIDENT_CC_WITH_HALVES: Final[float] = 0.03
MIN_CONFIDENT_RINGS_WITH_HALVES: Final[float] = 2.0
#: Two halves of the data with independent noise (even/odd frames) must find the same defocus
#: to within the largest of these (a floor, a share of the defocus, and
#: ``HALF_AGREEMENT_RINGS`` ring periods at the fit resolution — see
#: :func:`half_agreement_tolerance_a`), plus half the astigmatism: chance matches in noise do
#: not repeat in the other half.
MIN_HALF_AGREEMENT_A: Final[float] = 500.0
HALF_AGREEMENT_FRACTION: Final[float] = 0.03
#: Largest phase disagreement between the halves' CTFs at the fit resolution, in ring periods
#: (π of phase): half a ring keeps the two halves' rings in phase (|Δχ| < π/2) over the whole
#: stretch where the full fit holds.
#: On the bench's 20 tuning movies: 15 % not confident against 20 % with the fixed tolerance
#: (0 rings), no confident fit off by > 500 Å either way; 1 ring gave 10 % (not yet adopted).
HALF_AGREEMENT_RINGS: Final[float] = 0.5
#: Halves that disagree are overruled when the full data's 1D defocus search stands out this
#: far from its own trials, (best − median) / (1.4826 MAD): on thin ice each half alone often
#: has too little signal to find the rings (a half 15 kÅ off beside a full fit 50 Å from the
#: truth), while the full fit's peak is clear. On the session tuning sets (defocus searched
#: ±5 kÅ around the target) the wrong fits stood at 2.6–3.0, correct ones mostly at 3.5–6.
#: Only a search centred on the session's target (at most ``MAX_TARGETED_SEARCH_A`` wide) may
#: overrule: across the default 3–50 kÅ range there are several times more trials, and the
#: best of them in pure noise already stands 3.3 out (test_ctf's noise-halves case).
MIN_SIGNIFICANCE_OVER_HALVES: Final[float] = 3.2
MAX_TARGETED_SEARCH_A: Final[float] = 10000.0
#: A defocus within this fraction of the search range from a bound counts as "at the bound".
_BOUND_MARGIN: Final[float] = 0.01


@dataclass(frozen=True)
class FitQuality:
    """Fit resolution, the curves behind it, and the verdict.

    Attributes
    ----------
    fit_resolution_a : resolution to which the fit holds, Å
    fit_start_a : resolution from which it holds, Å
    k_per_a : (n,) equi-phase frequencies (bins of the spectrum's frequency step)
    equiphase : (n,) equi-phase average of the amplitude spectrum
    model : (n,) CTF² at the mean defocus
    correlation : (n,) sliding-window correlation (NaN where not evaluated)
    confident : whether the fit may be trusted
    reason : why not ("" when confident)
    """

    fit_resolution_a: float
    fit_start_a: float
    k_per_a: npt.NDArray[np.float64]
    equiphase: npt.NDArray[np.float64]
    model: npt.NDArray[np.float64]
    correlation: npt.NDArray[np.float64]
    confident: bool
    reason: str


def _ring_period_per_a(k: npt.NDArray[np.float64], params: CTFParams) -> npt.NDArray[np.float64]:
    """Period of CTF² in k near k: π / |dχ/dk| = 1 / |2 λ Δf k − 2 C_s λ³ k³|."""
    lam = electron_wavelength_a(params.voltage_kv)
    slope = np.abs(2.0 * lam * params.defocus_mean_a * k - 2.0 * params.cs_mm * 1e7 * lam**3 * k**3)
    return np.asarray(1.0 / np.maximum(slope, 1e-12))


def _window_sums(values: npt.NDArray[np.float64], lo: npt.NDArray[np.int64], hi: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Σ values[..., lo:hi] for every window, by cumulative sums along the last axis."""
    c = np.concatenate([np.zeros((*values.shape[:-1], 1)), np.cumsum(values, axis=-1)], axis=-1)
    return np.asarray(np.take_along_axis(c, hi, axis=-1) - np.take_along_axis(c, lo, axis=-1))


def windowed_correlation(
    data: npt.NDArray[np.float64], models: npt.NDArray[np.float64], half_widths: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Pearson correlation of ``data`` (n,) with each of ``models`` (..., n) in a window of
    ± ``half_widths`` (..., n) bins around every bin, after removing a straight line from both
    inside the window (a sloping background or envelope does not count).

    Notes
    -----
    With window sums S over t (bin index), the residual covariance after the linear fit is
    C_dm = S_dm − [S_d, S_dt] G⁻¹ [S_m, S_mt]ᵀ, G = [[S_1, S_t], [S_t, S_tt]]; the correlation
    is C_dm / sqrt(C_dd C_mm). Cumulative sums make every window O(1).
    """
    n = data.shape[-1]
    models = np.asarray(models, dtype=np.float64)
    j = np.arange(n)
    lo = np.clip(j - half_widths, 0, n).astype(np.int64)
    hi = np.clip(j + half_widths + 1, 0, n).astype(np.int64)
    lo, hi = np.broadcast_arrays(lo, hi)
    lo = np.broadcast_to(lo, models.shape)
    hi = np.broadcast_to(hi, models.shape)
    t = np.broadcast_to(j.astype(np.float64) - n / 2, models.shape)
    d = np.broadcast_to(data, models.shape)

    def s(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return _window_sums(v, lo, hi)

    s1, st, stt = s(np.ones_like(t)), s(t), s(t * t)
    sd, sdt, sdd = s(d), s(d * t), s(d * d)
    sm, smt, smm, sdm = s(models), s(models * t), s(models * models), s(d * models)
    det = s1 * stt - st * st
    ok = det > 1e-9

    def proj(a0: npt.NDArray[np.float64], a1: npt.NDArray[np.float64], b0: npt.NDArray[np.float64], b1: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # [a0, a1] G⁻¹ [b0, b1]ᵀ with G⁻¹ = [[stt, −st], [−st, s1]] / det
        return np.asarray((a0 * (stt * b0 - st * b1) + a1 * (s1 * b1 - st * b0)) / np.where(ok, det, 1.0))

    cdm = sdm - proj(sd, sdt, sm, smt)
    cdd = sdd - proj(sd, sdt, sd, sdt)
    cmm = smm - proj(sm, smt, sm, smt)
    denom = np.sqrt(np.maximum(cdd, 0.0) * np.maximum(cmm, 0.0))
    enough = ok & (hi - lo >= 2 * _MIN_HALF_WINDOW_BINS) & (denom > 1e-12 * (np.abs(sdd) + 1.0))
    return np.asarray(np.where(enough, cdm / np.where(denom > 0, denom, 1.0), 0.0))


def ring_half_windows(k_per_a: npt.NDArray[np.float64], defocus_a: npt.ArrayLike, params: CTFParams, dk_per_a: float) -> npt.NDArray[np.int64]:
    """Half-widths (bins) of ±0.75 ring periods (at least 3) for each defocus (..., n)."""
    lam = electron_wavelength_a(params.voltage_kv)
    dz = np.asarray(defocus_a, dtype=np.float64)[..., None]
    k = np.maximum(k_per_a, dk_per_a)
    slope = np.abs(2.0 * lam * dz * k - 2.0 * params.cs_mm * 1e7 * lam**3 * k**3)
    period_bins = 1.0 / np.maximum(slope, 1e-12) / dk_per_a
    return np.maximum(_MIN_HALF_WINDOW_BINS, np.ceil(_HALF_WINDOW_PERIODS * np.minimum(period_bins, k.size))).astype(np.int64)


def _rings_between(k_start: float, k_end: float, params: CTFParams) -> float:
    """Number of CTF² periods between two frequencies: Δχ / π, χ = π λ Δf k² − ½ π C_s λ³ k⁴."""
    lam = electron_wavelength_a(params.voltage_kv)
    cs_a = params.cs_mm * 1e7

    def chi(k: float) -> float:
        return float(np.pi * lam * params.defocus_mean_a * k * k - 0.5 * np.pi * cs_a * lam**3 * k**4)

    return abs(chi(k_end) - chi(k_start)) / np.pi


def normalised_ring_signal(quality: FitQuality, params: CTFParams) -> npt.NDArray[np.float64]:
    """The equi-phase average minus its mean over ±0.75 ring periods, over its RMS there."""
    k = quality.k_per_a
    dk = float(k[1] - k[0])
    half = ring_half_windows(k, np.array([params.defocus_mean_a]), params, dk)[0]
    n = k.size
    j = np.arange(n)
    lo, hi = np.clip(j - half, 0, n), np.clip(j + half + 1, 0, n)

    def running(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        c = np.concatenate([[0.0], np.cumsum(v)])
        return np.asarray((c[hi] - c[lo]) / np.maximum(hi - lo, 1))

    resid = quality.equiphase - running(quality.equiphase)
    return np.asarray(resid / np.sqrt(np.maximum(running(resid**2), 1e-30)))


def _fit_resolution(
    k: npt.NDArray[np.float64], corr: npt.NDArray[np.float64], indices: range, params: CTFParams
) -> tuple[float, float]:
    """(end, start) of the stretch over which the fit holds, as resolutions in Å.

    A stretch starts at a bin from which the correlation stays at or above the threshold for
    ``_MIN_HELD_BINS`` bins and ends at the last bin before it stays below for
    ``_BELOW_RUN_BINS`` bins. The fit holds over the *first* stretch (the lowest frequencies)
    and over each following one that starts within ``_MAX_DIP_RINGS`` ring periods of where
    the previous one ended (a dip where the background turns steeply), or within
    ``_MAX_SAG_RINGS`` when the curve stays at or above ``_SAG_FLOOR`` in between (a sag, not a
    loss); it ends at the first gap it cannot bridge. A stretch beyond such a gap is not counted: at high frequency the rings
    are a few bins apart and noise matches CTF² over several of them by chance (issue 14: a
    fit said to hold to 2.4 Å at a CC of 0.045). None: both are the band's low limit.
    """
    above = np.isfinite(corr) & (corr >= FRC_SIGNIFICANCE)
    stretches: list[tuple[int, int]] = []
    j = indices.start
    while j < indices.stop:
        if j + _MIN_HELD_BINS <= indices.stop and above[j : j + _MIN_HELD_BINS].all():
            first = last = j
            run = 0
            for i in range(j, indices.stop):
                if above[i]:
                    last, run = i, 0
                else:
                    run += 1
                    if run >= _BELOW_RUN_BINS:
                        break
            stretches.append((first, last))
            j = last + 1
        else:
            j += 1
    if not stretches:
        return float(1.0 / k[indices.start]), float(1.0 / k[indices.start])
    first, last = stretches[0]
    for nxt_first, nxt_last in stretches[1:]:
        rings = _rings_between(float(k[last]), float(k[nxt_first]), params)
        gap = corr[last + 1 : nxt_first]
        sag = gap.size == 0 or float(np.nanmin(gap)) >= _SAG_FLOOR
        if rings > _MAX_DIP_RINGS and not (sag and rings <= _MAX_SAG_RINGS):
            break
        last = nxt_last
    return float(1.0 / k[last]), float(1.0 / k[first])


def half_agreement_tolerance_a(
    params: CTFParams, fit_resolution_a: float, rings: float = HALF_AGREEMENT_RINGS
) -> float:
    """How far apart the defoci of two half-movies may be before the fit is not trusted, Å.

    Notes
    -----
    A defocus change δ shifts the CTF phase χ = π λ Δf k² by π λ δ k², so one ring period at
    frequency k corresponds to δ = 1 / (λ k²). Each half has only half the dose, and its 1D fit
    of the rotational average can pin the defocus no better than a fraction of a ring at the
    highest frequency where rings are seen: the expected half-to-half scatter therefore grows
    as 1 / (λ k_fit²) — a few hundred Å at 3 Å, several thousand at 9 Å (thin ice, low dose,
    rings fading early). A fixed tolerance rejects correct fits that only reach 7–10 Å; allowing
    ``HALF_AGREEMENT_RINGS`` (half a ring: the halves' rings stay in phase, |Δχ| < π/2, up to
    the fit resolution) still catches halves locked onto different ring systems, which
    disagree by one ring or more. The previous fixed bars (``MIN_HALF_AGREEMENT_A``, a
    ``HALF_AGREEMENT_FRACTION`` of the defocus) stay as floors, and half the astigmatism is
    added because a rotational average smears astigmatic rings, loosening each half's 1D fit.
    """
    lam = electron_wavelength_a(params.voltage_kv)
    k_fit = 1.0 / max(fit_resolution_a, 1e-6)
    ring_a = rings / (lam * k_fit * k_fit)
    return max(MIN_HALF_AGREEMENT_A, HALF_AGREEMENT_FRACTION * params.defocus_mean_a, ring_a) + 0.5 * params.astigmatism_a


def assess_fit(
    spectrum: PowerSpectrum,
    params: CTFParams,
    *,
    cc: float,
    score_1d: float,
    k_band: tuple[float, float],
    defocus_range_a: tuple[float, float],
    half_defoci_a: tuple[float, float] | None = None,
    half_agreement_rings: float = HALF_AGREEMENT_RINGS,
    significance_1d: float = 0.0,
) -> FitQuality:
    """Fit resolution and confidence of a CTF fit to an amplitude spectrum.

    ``half_agreement_rings`` is the half-movie tolerance in ring periods at the fit resolution
    (:func:`half_agreement_tolerance_a`); the benchmark sweeps it on its tuning set.
    ``significance_1d`` is how far the 1D search's best trial stands out of its trials; at or
    above ``MIN_SIGNIFICANCE_OVER_HALVES``, in a search centred on a target, a disagreement of
    the halves does not count.

    Notes
    -----
    Equi-phase average: every pixel (k, θ) is binned at the frequency k' where a round CTF of
    the mean defocus has the same phase (:func:`preprocess.powerspec.equiphase_frequency`).
    The sliding window spans ±0.75 ring periods (at least ±3 bins); the curve is evaluated from
    the band's low limit up to where rings get closer than 2.5 bins or Nyquist.
    """
    k, theta = spectrum.frequencies()
    kp = equiphase_frequency(
        k, theta, defocus1_a=params.defocus1_a, defocus2_a=params.defocus2_a,
        astig_angle_rad=params.astig_angle_rad, voltage_kv=params.voltage_kv, cs_mm=params.cs_mm,
    )
    dk = spectrum.dk_per_a
    n_bins = spectrum.tile_px // 2
    eq = radial_average(spectrum.amplitude, kp, dk, n_bins)
    k_bins = (np.arange(n_bins) * dk).astype(np.float64)
    model = ctf_1d(
        k_bins, params.defocus_mean_a, voltage_kv=params.voltage_kv, cs_mm=params.cs_mm,
        amplitude_contrast=params.amplitude_contrast, phase_shift_rad=params.phase_shift_rad,
    ) ** 2
    period_bins = _ring_period_per_a(np.maximum(k_bins, dk), params) / dk
    half = ring_half_windows(k_bins, np.array([params.defocus_mean_a]), params, dk)[0]
    j_lo = int(np.ceil(k_band[0] / dk))
    resolvable = np.nonzero(period_bins[j_lo:] < _MIN_RING_PERIOD_BINS)[0]
    j_hi = j_lo + int(resolvable[0]) if resolvable.size else n_bins - 1
    indices = range(j_lo, max(j_lo + 1, j_hi))
    corr = np.full(n_bins, np.nan)
    corr[indices.start : indices.stop] = windowed_correlation(eq, model[None, :], half[None, :])[0][indices.start : indices.stop]
    fit_res, fit_start = _fit_resolution(k_bins, corr, indices, params)
    reasons = []
    min_cc = MIN_CONFIDENT_CC if half_defoci_a is None else MIN_CONFIDENT_CC_WITH_HALVES
    min_rings = MIN_CONFIDENT_RINGS if half_defoci_a is None else MIN_CONFIDENT_RINGS_WITH_HALVES
    if not np.isfinite(cc) or cc < min_cc:
        reasons.append(f"low CTF correlation ({cc:.3f} < {min_cc})")
    if fit_res > MAX_CONFIDENT_FIT_RESOLUTION_A:
        reasons.append(f"Thon rings fit only to {fit_res:.1f} Å (worse than {MAX_CONFIDENT_FIT_RESOLUTION_A:.0f} Å)")
    elif (rings := _rings_between(1.0 / fit_start, 1.0 / fit_res, params)) < min_rings:
        reasons.append(f"the fit holds over {rings:.1f} Thon rings only ({fit_start:.1f}–{fit_res:.1f} Å)")
    if score_1d < MIN_CONFIDENT_SCORE_1D:
        reasons.append(f"rings explain little of the rotational average (score {score_1d:.3f})")
    if half_defoci_a is not None:
        gap = abs(half_defoci_a[0] - half_defoci_a[1])
        allowed = half_agreement_tolerance_a(params, min(fit_res, MAX_CONFIDENT_FIT_RESOLUTION_A), half_agreement_rings)
        targeted = defocus_range_a[1] - defocus_range_a[0] <= MAX_TARGETED_SEARCH_A + 1e-6
        if gap > allowed and not (targeted and significance_1d >= MIN_SIGNIFICANCE_OVER_HALVES):
            reasons.append(
                f"two half-movies give defoci {half_defoci_a[0]:.0f} and {half_defoci_a[1]:.0f} Å "
                f"({gap:.0f} Å apart, more than {allowed:.0f} Å)"
                + ("" if not targeted else f" and the full fit's peak stands only {significance_1d:.1f} "
                   f"MAD out (< {MIN_SIGNIFICANCE_OVER_HALVES})")
            )
    lo, hi = defocus_range_a
    margin = _BOUND_MARGIN * (hi - lo)
    if params.defocus_mean_a <= lo + margin or params.defocus_mean_a >= hi - margin:
        reasons.append(f"defocus {params.defocus_mean_a:.0f} Å at the search bound [{lo:.0f}, {hi:.0f}] Å")
    return FitQuality(fit_res, fit_start, k_bins, eq, model, corr, not reasons, "; ".join(reasons))
