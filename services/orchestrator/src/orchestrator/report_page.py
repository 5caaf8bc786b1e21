"""Report pages: self-contained HTML over images that were really acquired.

Images are converted from the stored MRC files to PNG (contrast-stretched, downsampled); the
targets chosen on each image are drawn as SVG overlays on top, never into the pixels. One
grid is one :class:`Report` (:func:`render_report`); a session's page puts its grids one
after the other (:func:`render_session_report`).

>>> html = render_report(Report(title="t", session_id="s", scope_id="x", grid_id="g"))
>>> "<h1>t</h1>" in html
True
>>> page = render_session_report("s", [Report(title="g1", session_id="s", scope_id="x",
...                                           grid_id="g1")], summary={"grids": "1"})
>>> '<section class="grid" id="g1">' in page
True
"""

from __future__ import annotations

import base64
import html as html_lib
import io
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image

__all__ = ["ExposureRow", "Figure", "Overlay", "Report", "render_report",
           "render_session_report", "to_png"]

_MAX_PNG_SIDE: Final[int] = 1024
_CLIP_LOW_PCT: Final[float] = 0.5
_CLIP_HIGH_PCT: Final[float] = 99.5


def to_png(image: npt.NDArray[np.floating] | npt.NDArray[np.integer], *, max_side: int = _MAX_PNG_SIDE) -> bytes:
    """A contrast-stretched 8-bit PNG of a 2D image (frames of a stack are summed first)."""
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3:
        a = a.sum(axis=0)
    step = max(1, int(np.ceil(max(a.shape) / max_side)))
    if step > 1:
        h, w = (a.shape[0] // step) * step, (a.shape[1] // step) * step
        a = a[:h, :w].reshape(h // step, step, w // step, step).mean(axis=(1, 3))
    lo, hi = np.percentile(a, [_CLIP_LOW_PCT, _CLIP_HIGH_PCT])
    scaled = np.clip((a - lo) / max(float(hi - lo), 1e-12), 0, 1)
    buf = io.BytesIO()
    Image.fromarray((scaled * 255).astype(np.uint8)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@dataclass(frozen=True)
class Overlay:
    """A mark on a figure, in the figure's full-resolution pixel coordinates."""

    x_px: float
    y_px: float
    w_px: float
    h_px: float
    label: str
    color: str = "#2ecc71"
    circle: bool = False


@dataclass
class Figure:
    title: str
    png: bytes
    width_px: int
    height_px: int
    caption: str = ""
    overlays: list[Overlay] = field(default_factory=list)


@dataclass
class ExposureRow:
    exposure_id: str
    image: Figure
    diagnostic_png: bytes | None
    figures: dict[str, str]


@dataclass
class Report:
    title: str
    session_id: str
    scope_id: str
    grid_id: str
    summary: dict[str, str] = field(default_factory=dict)
    maps: list[Figure] = field(default_factory=list)
    exposures: list[ExposureRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _img(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _figure(fig: Figure) -> str:
    e = html_lib.escape
    marks = []
    for o in fig.overlays:
        if o.circle:
            shape = (f'<circle cx="{o.x_px + o.w_px / 2:.1f}" cy="{o.y_px + o.h_px / 2:.1f}" '
                     f'r="{max(o.w_px, o.h_px) / 2:.1f}" />')
        else:
            shape = f'<rect x="{o.x_px:.1f}" y="{o.y_px:.1f}" width="{o.w_px:.1f}" height="{o.h_px:.1f}" />'
        marks.append(
            f'<g stroke="{e(o.color)}" fill="none" stroke-width="{max(fig.width_px, 400) / 300:.1f}">'
            f'{shape}<text x="{o.x_px:.1f}" y="{max(o.y_px - 4, 12):.1f}" fill="{e(o.color)}" '
            f'stroke="none" font-size="{max(fig.width_px, 400) / 40:.0f}">{e(o.label)}</text></g>'
        )
    return (
        f'<figure class="map"><figcaption><b>{e(fig.title)}</b> {e(fig.caption)}</figcaption>'
        f'<svg viewBox="0 0 {fig.width_px} {fig.height_px}" role="img" aria-label="{e(fig.title)}">'
        f'<image href="{_img(fig.png)}" width="{fig.width_px}" height="{fig.height_px}" />'
        f'{"".join(marks)}</svg></figure>'
    )


_CSS: Final[str] = """
body{font-family:system-ui,sans-serif;margin:1.5rem;background:#111;color:#eee}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse} td,th{padding:.25rem .6rem;border-bottom:1px solid #333;text-align:left}
.maps{display:grid;grid-template-columns:repeat(auto-fit,minmax(320px,1fr));gap:1rem}
figure{margin:0} svg{width:100%;height:auto;background:#000}
.exp{display:grid;grid-template-columns:minmax(240px,1fr) minmax(240px,1fr) minmax(220px,1fr);gap:1rem;
     margin-bottom:1.5rem;align-items:start}
.exp img{width:100%} .ok{color:#2ecc71} .warn{color:#f39c12}
"""


def _grid_body(report: Report, heading: str) -> str:
    """A grid's tables, maps, exposures and notes under an ``<h1>``/``<h2>`` heading."""
    e = html_lib.escape
    sub = "h3" if heading == "h2" else "h2"
    summary = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in report.summary.items())
    maps = "".join(_figure(f) for f in report.maps)
    rows = []
    for x in report.exposures:
        figs = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in x.figures.items())
        diag = (f'<img alt="power spectrum and CTF fit of {e(x.exposure_id)}" '
                f'src="{_img(x.diagnostic_png)}">' if x.diagnostic_png else "<p>no diagnostic</p>")
        rows.append(f'<section class="exp" id="{e(x.exposure_id)}">{_figure(x.image)}'
                    f'<div>{diag}</div><table>{figs}</table></section>')
    notes = "".join(f"<li>{e(n)}</li>" for n in report.notes) or "<li>nothing skipped</li>"
    return (
        f"<{heading}>{e(report.title)}</{heading}><table>"
        f"<tr><th>session</th><td>{e(report.session_id)}</td></tr>"
        f"<tr><th>microscope</th><td>{e(report.scope_id)}</td></tr>"
        f"<tr><th>grid</th><td>{e(report.grid_id)}</td></tr>{summary}</table>"
        f'<{sub}>Maps</{sub}><div class="maps">{maps}</div>'
        f"<{sub}>Exposures</{sub}>{''.join(rows)}"
        f"<{sub}>Notes</{sub}><ul>{notes}</ul>"
    )


def _page(title: str, body: str) -> str:
    return ("<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<title>{html_lib.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"{body}</body></html>")


def render_report(report: Report) -> str:
    """One grid's report as one HTML page with its images inline."""
    return _page(report.title, _grid_body(report, "h1"))


def render_session_report(session_id: str, grids: list[Report], *,
                          summary: dict[str, str] | None = None, title: str | None = None) -> str:
    """A session's report: its summary, then every grid's report in autoloader order."""
    e = html_lib.escape
    title = title or f"gridpilot session {session_id}"
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in (summary or {}).items())
    index = "".join(f'<li><a href="#{e(r.grid_id)}">{e(r.title)}</a></li>' for r in grids)
    sections = "".join(f'<section class="grid" id="{e(r.grid_id)}">{_grid_body(r, "h2")}</section>'
                       for r in grids)
    return _page(title, f"<h1>{e(title)}</h1><table>{rows}</table><ul>{index}</ul>{sections}")
