"""The diagnostic picture of one exposure, drawn with pillow (no matplotlib).

Left, as in CTFFIND's diagnostic: the averaged amplitude spectrum divided by its smooth radial
background, with the fitted CTF² drawn over its right half. Top right: the equi-phase average
against CTF² and the sliding-window correlation that sets the fit resolution. Bottom right:
the drift trajectory (Å), frame 0 marked, with the local-motion RMS. A line of numbers below.
"""

from __future__ import annotations

import io
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from gridpilot.optics import ctf_2d

from .ctf import CTFEstimate
from .ctfquality import FRC_SIGNIFICANCE, normalised_ring_signal
from .ice import IceEstimate
from .patchmotion import LocalMotion

__all__ = ["render_diagnostic_png", "spectrum_image"]

_Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

_SPECTRUM_PX: Final[int] = 512
_PLOT_W: Final[int] = 480
_PLOT_H: Final[int] = 250
_TEXT_H: Final[int] = 64
_MARGIN: Final[int] = 36
_BG: Final[tuple[int, int, int]] = (255, 255, 255)
_AXIS: Final[tuple[int, int, int]] = (90, 90, 90)
_DATA: Final[tuple[int, int, int]] = (30, 30, 30)
_MODEL: Final[tuple[int, int, int]] = (200, 40, 40)
_CORR: Final[tuple[int, int, int]] = (40, 110, 200)
_PERCENTILES: Final[tuple[float, float]] = (1.0, 99.0)
#: The spectrum is shown out to this multiple of the fit band's high-resolution limit.
_ZOOM_BEYOND_BAND: Final[float] = 1.2
_DISPLAY_SMOOTH_PX: Final[float] = 0.8
_ASCII: Final[dict[str, str]] = {"Å": "A", "²": "^2", "°": " deg", "–": "-", "—": "-", "×": "x", "≥": ">=", "≤": "<="}


def _full_plane(half: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """(T, T // 2 + 1) rfft layout → (T, T), centred (DC in the middle)."""
    t = half.shape[0]
    full = np.empty((t, t))
    full[:, : t // 2 + 1] = half
    rows = (-np.arange(t)) % t
    cols = np.arange(t // 2 + 1, t)
    full[:, t // 2 + 1 :] = half[rows][:, t - cols]
    return np.fft.fftshift(full)


def _to_uint8(values: npt.NDArray[np.floating]) -> npt.NDArray[np.uint8]:
    lo, hi = np.percentile(values, _PERCENTILES)
    scaled = (values - lo) / max(float(hi - lo), 1e-30)
    out: npt.NDArray[np.uint8] = (np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)
    return out


def spectrum_image(ctf: CTFEstimate) -> npt.NDArray[np.uint8]:
    """(2r, 2r) greyscale: the spectrum over its radial background, zoomed to the fit band,
    with CTF² on the right half."""
    spec = ctf.spectrum
    k, _ = spec.frequencies()
    dk = spec.dk_per_a
    n = spec.tile_px // 2 + 1
    idx = np.minimum(np.rint(k / dk).astype(np.int64), n - 1)
    counts = np.maximum(np.bincount(idx.ravel(), minlength=n), 1)
    profile = np.bincount(idx.ravel(), weights=spec.amplitude.ravel().astype(np.float64), minlength=n) / counts
    # The background is smoothed over ±4 bins: enough to flatten noise, too little to matter
    # for the display (the fit itself uses ring-period windows).
    kernel = np.ones(9) / 9.0
    background = np.convolve(np.pad(profile, 4, mode="edge"), kernel, mode="valid")
    data = _full_plane(spec.amplitude / np.maximum(background[idx], 1e-30))
    p = ctf.params
    model = np.fft.fftshift(ctf_2d(
        (spec.tile_px, spec.tile_px), spec.pixel_size_a, p.defocus1_a, p.defocus2_a, p.astig_angle_rad,
        voltage_kv=p.voltage_kv, cs_mm=p.cs_mm, amplitude_contrast=p.amplitude_contrast, phase_shift_rad=p.phase_shift_rad,
    ) ** 2)
    # Zoom to the fit band (as CTFFIND's diagnostic does) and smooth the speckle a little.
    t = spec.tile_px
    r = min(t // 2, int(np.ceil(_ZOOM_BEYOND_BAND / ctf.band_a[1] / dk)))
    sl = slice(t // 2 - r, t // 2 + r)
    data = ndimage.gaussian_filter(data[sl, sl], _DISPLAY_SMOOTH_PX)
    model = model[sl, sl]
    img = _to_uint8(data)
    img[:, r:] = (model[:, r:] * 255).astype(np.uint8)
    return img


def _plot_curves(draw: ImageDraw.ImageDraw, origin: tuple[int, int], ctf: CTFEstimate, font: _Font) -> None:
    x0, y0 = origin
    w, h = _PLOT_W - 2 * _MARGIN, _PLOT_H - 2 * _MARGIN
    q = ctf.quality
    valid = np.isfinite(q.correlation)
    if valid.sum() < 2:
        draw.text((x0 + _MARGIN, y0 + _MARGIN), "no fit curve", fill=_AXIS, font=font)
        return
    j = np.nonzero(valid)[0]
    k = q.k_per_a[j]
    eq = np.clip(0.5 + 0.25 * normalised_ring_signal(q, ctf.params)[j], 0.0, 1.0)
    series = ((eq, _DATA), (q.model[j], _MODEL), (np.clip(q.correlation[j], 0.0, 1.0), _CORR))
    left, top = x0 + _MARGIN, y0 + _MARGIN
    draw.rectangle((left, top, left + w, top + h), outline=_AXIS)

    def px(kv: float, v: float) -> tuple[float, float]:
        return left + w * (kv - k[0]) / max(float(k[-1] - k[0]), 1e-30), top + h * (1.0 - v)

    for values, colour in series:
        draw.line([px(float(a), float(b)) for a, b in zip(k, values, strict=True)], fill=colour, width=1)
    draw.line([px(float(k[0]), FRC_SIGNIFICANCE), px(float(k[-1]), FRC_SIGNIFICANCE)], fill=_AXIS, width=1)
    kr = 1.0 / q.fit_resolution_a
    if k[0] <= kr <= k[-1]:
        draw.line([px(kr, 0.0), px(kr, 1.0)], fill=_CORR, width=2)
    for kv in np.linspace(float(k[0]), float(k[-1]), 5):
        x, _ = px(float(kv), 0.0)
        draw.text((x - 14, top + h + 4), f"{1.0 / kv:.1f}", fill=_AXIS, font=font)
    draw.text((left, y0 + 6), "equi-phase rings (black), CTF^2 (red), fit correlation (blue); resolution in A", fill=_AXIS, font=font)


def _plot_drift(
    draw: ImageDraw.ImageDraw, origin: tuple[int, int], trajectory_a: npt.NDArray[np.float64],
    local: LocalMotion | None, pixel_size_a: float, font: _Font,
) -> None:
    x0, y0 = origin
    side = min(_PLOT_W, _PLOT_H) - 2 * _MARGIN
    left, top = x0 + _MARGIN, y0 + _MARGIN
    draw.rectangle((left, top, left + side, top + side), outline=_AXIS)
    traj = np.asarray(trajectory_a, dtype=np.float64)
    centre = 0.5 * (traj.min(axis=0) + traj.max(axis=0))
    span = max(float(np.ptp(traj, axis=0).max()) * 1.15, 2.0)

    def px(x: float, y: float) -> tuple[float, float]:
        return left + side * (0.5 + (x - centre[0]) / span), top + side * (0.5 + (y - centre[1]) / span)

    points = [px(float(x), float(y)) for x, y in traj]
    if len(points) > 1:
        draw.line(points, fill=_DATA, width=1)
    for x, y in points:
        draw.ellipse((x - 1.5, y - 1.5, x + 1.5, y + 1.5), fill=_CORR)
    sx, sy = points[0]
    draw.ellipse((sx - 4, sy - 4, sx + 4, sy + 4), outline=_MODEL, width=2)
    lines = ["drift trajectory", f"box {span:.1f} A", "frame 0 circled"]
    if local is not None:
        lines.append(f"local rms {local.rms_px * pixel_size_a:.2f} A" if local.significant else "no local motion")
    for i, line in enumerate(lines):
        draw.text((left + side + 10, top + 16 * i), line, fill=_AXIS, font=font)


def _ascii(text: str) -> str:
    """Pillow's built-in font has no Å, ², ° or dashes: spell them out."""
    for old, new in _ASCII.items():
        text = text.replace(old, new)
    return text


def render_diagnostic_png(
    ctf: CTFEstimate,
    trajectory_a: npt.NDArray[np.float64],
    *,
    ice: IceEstimate | None,
    local: LocalMotion | None,
    pixel_size_a: float,
) -> bytes:
    """The diagnostic picture as PNG bytes (about 1 000 × 580 px)."""
    spec = Image.fromarray(spectrum_image(ctf), mode="L").resize((_SPECTRUM_PX, _SPECTRUM_PX), Image.Resampling.BILINEAR)
    width = _SPECTRUM_PX + _PLOT_W
    canvas = Image.new("RGB", (width, _SPECTRUM_PX + _TEXT_H), _BG)
    canvas.paste(spec.convert("RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    _plot_curves(draw, (_SPECTRUM_PX, 0), ctf, font)
    _plot_drift(draw, (_SPECTRUM_PX, _PLOT_H), trajectory_a, local, pixel_size_a, font)
    p, q = ctf.params, ctf.quality
    verdict = "confident" if q.confident else f"NOT confident: {q.reason}"
    steps = np.linalg.norm(np.diff(np.asarray(trajectory_a), axis=0), axis=1)
    lines = [
        f"defocus {p.defocus1_a:.0f} / {p.defocus2_a:.0f} A at {np.degrees(p.astig_angle_rad):.1f} deg, "
        f"CC {ctf.cc:.3f}, rings fit to {q.fit_resolution_a:.1f} A; total drift {steps.sum():.1f} A",
        verdict[:150],
    ]
    if ice is not None:
        lines.append(
            f"ice {ice.thickness_nm:.0f} nm ({ice.method})" if ice.thickness_nm is not None else f"ice: {ice.note}"[:150]
        )
    for i, line in enumerate(lines):
        draw.text((8, _SPECTRUM_PX + 4 + 18 * i), _ascii(line), fill=_DATA, font=font)
    out = io.BytesIO()
    canvas.save(out, format="PNG", optimize=False)
    return out.getvalue()
