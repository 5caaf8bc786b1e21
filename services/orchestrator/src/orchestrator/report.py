"""The per-grid report, as HTML and JSON, built from the database and the stored images.

The atlas with every detected square drawn in its class colour (chosen ones labelled), each
visited square with its holes drawn by intensity bin (rejected darkest bin in red) and chosen
ones labelled, the exposures with their CTF and motion figures, timings, and what was skipped
and why. The figures are what the session measured.

::

    report, data = await build_grid_report(engine, store, "s1_g1")
    html = render_report(report)
    page, everything = await build_session_report(engine, store, "s1")  # every grid, one page
"""

from __future__ import annotations

import json
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sqlalchemy import Engine, select

from gridpilot.errors import NotFound
from gridpilot.storage import ObjectStore, keys

from .db import get_row, session_scope
from .models import Atlas, Exposure, Grid, Hole, Session, Square
from .report_page import (
    ExposureRow,
    Figure,
    Overlay,
    Report,
    render_report,
    render_session_report,
    to_png,
)

__all__ = ["build_grid_report", "build_session_report", "preview_png", "write_grid_report"]

_CLASS_COLOURS: Final[dict[str, str]] = {
    "good": "#2ecc71", "small": "#e67e22", "dry": "#f1c40f", "contaminated": "#9b59b6",
    "cracked": "#e74c3c", "partial": "#3498db", "broken": "#95a5a6"}
#: Largest PNG side of a map (atlas, square) and of an exposure thumbnail: a session's page
#: carries every exposure inline, and a noisy 1024² PNG is about a megabyte.
_MAP_SIDE_PX: Final[int] = 1024
_EXPOSURE_SIDE_PX: Final[int] = 512
_BIN_COLOURS: Final[tuple[str, ...]] = ("#e74c3c", "#f39c12", "#f1c40f", "#2ecc71", "#1abc9c",
                                        "#3498db")


def preview_png(image: npt.NDArray[Any]) -> bytes:
    """A contrast-stretched PNG of an image (a movie's frames are summed)."""
    return to_png(image)


async def _figure(store: ObjectStore, key: str, title: str, caption: str,
                  overlays: list[Overlay], *, max_side: int = _MAP_SIDE_PX) -> Figure | None:
    try:
        array, _ = await store.get_array(key)
    except NotFound:
        return None
    img = np.asarray(array, dtype=np.float32)
    if img.ndim == 3:
        img = img.sum(axis=0)
    h, w = img.shape
    return Figure(title, to_png(img, max_side=max_side), w, h, caption, overlays)


def _square_overlays(squares: list[Square]) -> list[Overlay]:
    out = []
    for s in squares:
        x0, y0, x1, y1 = s.box_px["v"]
        label = f"{s.number} {s.label}" + (" ✓" if s.selected else "")
        out.append(Overlay(x0, y0, x1 - x0, y1 - y0, label if s.selected else "",
                           _CLASS_COLOURS.get(s.label, "#fff")))
    return out


def _hole_overlays(holes: list[Hole]) -> list[Overlay]:
    out = []
    for h in holes:
        b = h.intensity_bin or 0
        colour = "#9b59b6" if h.label != "hole" else _BIN_COLOURS[min(b, len(_BIN_COLOURS) - 1)]
        label = f"{h.number}·b{b}" if h.selected else ""
        out.append(Overlay(h.x_px - h.radius_px, h.y_px - h.radius_px, 2 * h.radius_px,
                           2 * h.radius_px, label, colour, circle=True))
    return out


def _exposure_json(x: Exposure) -> dict[str, Any]:
    return {
        "id": x.id, "hole_id": x.hole_id, "shot": x.shot, "status": x.status,
        "defocus_target_um": x.defocus_target_um, "defocus_measured_um": x.defocus_measured_um,
        "ctf_defocus_um": x.ctf_defocus_um, "ctf_astig_a": x.ctf_astig_a,
        "ctf_fit_resolution_a": x.ctf_fit_resolution_a, "ctf_confident": x.ctf_confident,
        "motion_total_drift_a": x.motion_total_drift_a, "ice_thickness_nm": x.ice_thickness_nm,
        "image_shift_um": [x.image_shift_x_um, x.image_shift_y_um],
        "offset_um": [x.offset_x_um, x.offset_y_um], "movie_key": x.movie_key,
        "acquired_at": x.acquired_at.isoformat() if x.acquired_at else None,
        "message": x.message,
    }


def _fmt(value: float | None, spec: str, unit: str) -> str:
    return "—" if value is None else f"{value:{spec}} {unit}"


async def build_grid_report(engine: Engine, store: ObjectStore,
                            grid_id: str) -> tuple[Report, dict[str, Any]]:
    """The grid's report page and its JSON form."""
    with session_scope(engine) as db:
        grid = get_row(db, Grid, grid_id)
        session = get_row(db, Session, grid.session_id)
        atlas = db.scalar(select(Atlas).where(Atlas.grid_id == grid_id))
        squares = list(db.scalars(select(Square).where(Square.grid_id == grid_id)
                                  .order_by(Square.number)).all())
        holes = list(db.scalars(select(Hole).where(Hole.grid_id == grid_id)
                                .order_by(Hole.number)).all())
        exposures = list(db.scalars(select(Exposure).where(Exposure.grid_id == grid_id)
                                    .order_by(Exposure.id)).all())
        db.expunge_all()
    visited = [s for s in squares if s.image_key]
    skipped = ([{"kind": "square", "id": s.id, "why": s.message or "skipped by the user"}
                for s in squares if s.status == "skipped"]
               + [{"kind": "hole", "id": h.id, "why": h.message or "skipped by the user"}
                  for h in holes if h.status == "skipped"]
               + [{"kind": "exposure", "id": x.id, "why": x.message}
                  for x in exposures if x.status == "failed"])
    minutes = ((grid.finished_at - grid.started_at).total_seconds() / 60
               if grid.finished_at and grid.started_at else None)
    data: dict[str, Any] = {
        "session_id": session.id, "grid_id": grid.id, "name": grid.name,
        "position": grid.position, "status": grid.status, "message": grid.message,
        "started_at": grid.started_at.isoformat() if grid.started_at else None,
        "finished_at": grid.finished_at.isoformat() if grid.finished_at else None,
        "minutes": minutes,
        "squares": {"detected": len(squares), "selected": sum(s.selected for s in squares),
                    "by_class": {c: sum(s.label == c for s in squares)
                                 for c in sorted({s.label for s in squares})}},
        "holes": {"detected": len(holes), "selected": sum(h.selected for h in holes),
                  "acquired": sum(h.status == "acquired" for h in holes)},
        "exposures": [_exposure_json(x) for x in exposures],
        "skipped": skipped,
    }
    maps: list[Figure] = []
    if atlas is not None:
        fig = await _figure(store, atlas.key, "Atlas", "squares by class; chosen ones labelled",
                            _square_overlays(squares))
        if fig is not None:
            maps.append(fig)
    for s in visited:
        mine = [h for h in holes if h.square_id == s.id]
        assert s.image_key is not None
        fig = await _figure(store, s.image_key, f"Square {s.number} ({s.stratum or s.label})",
                            f"{len(mine)} holes by intensity bin (red: rejected darkest); "
                            "chosen ones labelled", _hole_overlays(mine))
        if fig is not None:
            maps.append(fig)
    rows = []
    for x in exposures:
        if x.movie_key is None:
            continue
        fig = await _figure(store, x.aligned_key or x.movie_key, f"Exposure {x.id}",
                            "aligned, dose-weighted sum" if x.aligned_key else "frame sum", [],
                            max_side=_EXPOSURE_SIDE_PX)
        if fig is None:
            continue
        diagnostic = None
        if x.diagnostic_key:
            try:
                diagnostic = await store.get_bytes(x.diagnostic_key)
            except NotFound:
                diagnostic = None
        rows.append(ExposureRow(x.id, fig, diagnostic, {
            "target defocus": _fmt(x.defocus_target_um, ".2f", "µm"),
            "defocus (fit)": _fmt(x.ctf_defocus_um, ".3f", "µm"),
            "CTF fit": _fmt(x.ctf_fit_resolution_a, ".1f", "Å"),
            "astigmatism": _fmt(x.ctf_astig_a, ".0f", "Å"),
            "drift": _fmt(x.motion_total_drift_a, ".1f", "Å"),
            "ice (estimate)": _fmt(x.ice_thickness_nm, ".0f", "nm"),
            "status": x.status + (f" ({x.message})" if x.message else ""),
        }))
    summary = {
        "grid": f"{grid.name} (slot {grid.position}, {grid.mesh_size or '?'}-mesh "
                f"{grid.mesh_material} {grid.hole_type})",
        "status": grid.status + (f": {grid.message}" if grid.message else ""),
        "squares": f"{data['squares']['detected']} detected, {data['squares']['selected']} chosen",
        "holes": f"{data['holes']['detected']} detected, {data['holes']['selected']} chosen, "
                 f"{data['holes']['acquired']} acquired",
        "exposures": f"{len(exposures)} ({sum(x.status == 'processed' for x in exposures)} "
                     "preprocessed)",
        "time": _fmt(minutes, ".1f", "min"),
    }
    notes = [f"skipped {s['kind']} {s['id']}: {s['why']}" for s in skipped]
    report = Report(f"gridpilot — {session.name} — {grid.name}", session.id,
                    session.microscope_id, grid.id, summary, maps, rows, notes)
    return report, data


async def write_grid_report(engine: Engine, store: ObjectStore, grid_id: str) -> tuple[str, str]:
    """Store the grid's ``<grid>.html`` and ``<grid>.json`` reports; returns their keys."""
    report, data = await build_grid_report(engine, store, grid_id)
    html_key = keys.report_key(report.session_id, f"{grid_id}.html")
    json_key = keys.report_key(report.session_id, f"{grid_id}.json")
    await store.put_bytes(html_key, render_report(report).encode(), content_type="text/html")
    await store.put_bytes(json_key, json.dumps(data, indent=2).encode(),
                          content_type="application/json")
    return html_key, json_key


async def build_session_report(engine: Engine, store: ObjectStore,
                               session_id: str) -> tuple[str, dict[str, Any]]:
    """The session's report page (every grid in autoloader order) and its JSON form."""
    with session_scope(engine) as db:
        session = get_row(db, Session, session_id)
        grid_ids = list(db.scalars(select(Grid.id).where(Grid.session_id == session_id)
                                   .order_by(Grid.position)).all())
        head = {"session_id": session.id, "name": session.name, "group": session.group,
                "owner": session.owner, "microscope_id": session.microscope_id,
                "state": session.state, "message": session.message}
    reports, grids = [], []
    for grid_id in grid_ids:
        report, data = await build_grid_report(engine, store, grid_id)
        reports.append(report)
        grids.append(data)
    exposures = [x for g in grids for x in g["exposures"]]
    summary = {
        "state": f"{head['state']}: {head['message']}",
        "owner / group": f"{head['owner']} / {head['group']}",
        "grids": ", ".join(f"{g['name']} {g['status']}" for g in grids) or "none",
        "exposures": f"{len(exposures)} ({sum(x['status'] == 'processed' for x in exposures)} "
                     "preprocessed)",
    }
    page = render_session_report(session_id, reports, summary=summary,
                                 title=f"gridpilot — {head['name']}")
    return page, {**head, "grids": grids}
