"""A counting direct detector: MTF, DQE(0), per-pixel gain, Poisson counts.

Expected electrons per pixel λ are blurred by the pixel MTF (in Fourier space, by the renderer),
then counted as Poisson(η λ g) with η = DQE(0) and g the pixel's sensitivity. Frames in
"float32" are rescaled to electrons, Poisson(η λ g) / η, so their mean is the dose; "uint16"
frames keep the raw integer counts (mean η λ g). The gain reference returned with a movie is
1/g: multiply raw frames by it to correct them (as MotionCor2's ``-Gain`` does).

>>> DetectorSpec(dqe_zero=0.9).frames_dtype
'float32'
>>> mtf = detector_mtf_rfft((8, 8))
>>> round(float(mtf[0, 0]), 3), round(float(mtf[0, 4]), 3)
(1.0, 0.637)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from gridpilot.errors import InvalidInput

__all__ = ["DetectorSpec", "detector_mtf_rfft", "pixel_sensitivity", "sample_counts"]

# Sensitivities are clipped to this range so that a wide gain spread cannot make negative pixels.
_SENSITIVITY_RANGE: Final[tuple[float, float]] = (0.5, 1.5)
_UINT16_MAX: Final[int] = 65535


@dataclass(frozen=True)
class DetectorSpec:
    """Detector parameters.

    Attributes
    ----------
    dqe_zero : η = DQE(0), in (0, 1] (0.8–0.95 for counting cameras)
    apply_mtf : blur the expected image by sinc(f_x) sinc(f_y) (f in cycles/pixel) before counting
    gain_rms : standard deviation of the per-pixel sensitivity (0.02–0.05 realistic; 0 = uniform,
        and no gain reference is returned)
    frames_dtype : "float32" (counts / η, electrons) or "uint16" (raw counts)
    """

    dqe_zero: float = 0.9
    apply_mtf: bool = True
    gain_rms: float = 0.0
    frames_dtype: Literal["float32", "uint16"] = "float32"

    def __post_init__(self) -> None:
        if not 0.0 < self.dqe_zero <= 1.0:
            raise InvalidInput(f"dqe_zero must be in (0, 1], got {self.dqe_zero}", field="dqe_zero")
        if not 0.0 <= self.gain_rms < 0.5:
            raise InvalidInput(f"gain_rms must be in [0, 0.5), got {self.gain_rms}", field="gain_rms")
        if self.frames_dtype not in ("float32", "uint16"):
            raise InvalidInput(f"frames_dtype must be float32 or uint16, got {self.frames_dtype!r}",
                               field="frames_dtype")


def detector_mtf_rfft(shape: tuple[int, int]) -> npt.NDArray[np.float64]:
    """The counting-mode MTF on the rfft grid of an (H, W) image.

    Notes
    -----
    MTF(f_x, f_y) = sinc(f_x) sinc(f_y), sinc(f) = sin(πf)/(πf), f in cycles per pixel:
    2/π ≈ 0.64 at Nyquist along an axis (TWIN-PHYSICS.md, detector).
    """
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    return np.asarray(np.sinc(fy) * np.sinc(fx))


def pixel_sensitivity(
    spec: DetectorSpec, shape: tuple[int, int], rng: np.random.Generator
) -> npt.NDArray[np.float32] | None:
    """Per-pixel sensitivity g (mean ≈ 1), or ``None`` for a uniform detector."""
    if spec.gain_rms == 0.0:
        return None
    g = 1.0 + spec.gain_rms * rng.standard_normal(shape, dtype=np.float32)
    return np.asarray(np.clip(g, *_SENSITIVITY_RANGE), dtype=np.float32)


def sample_counts(
    expected_e: npt.NDArray[np.floating],
    spec: DetectorSpec,
    sensitivity: npt.NDArray[np.float32] | None,
    rng: np.random.Generator,
) -> npt.NDArray[np.float32] | npt.NDArray[np.uint16]:
    """One frame of counts from expected electrons per pixel.

    Parameters
    ----------
    expected_e : (H, W) expected electrons per pixel λ (after the MTF), ≥ 0
    sensitivity : (H, W) per-pixel g, or ``None``

    Returns
    -------
    frame : (H, W) float32 Poisson(η λ g)/η, or uint16 Poisson(η λ g)

    Notes
    -----
    Poisson(η λ)/η has mean λ and variance λ/η, so DQE(f) = η MTF²(f) (TWIN-PHYSICS.md).
    """
    # Poisson sampling is fastest from float64 rates.
    lam = np.multiply(expected_e, spec.dqe_zero, dtype=np.float64)
    if sensitivity is not None:
        lam *= sensitivity
    np.maximum(lam, 0.0, out=lam)
    counts = rng.poisson(lam)
    if spec.frames_dtype == "uint16":
        return np.asarray(np.minimum(counts, _UINT16_MAX), dtype=np.uint16)
    return np.asarray(np.multiply(counts, np.float32(1.0 / spec.dqe_zero), dtype=np.float32))
