"""The REST API: sessions, grids, squares, holes and exposures; control; changes; downloads.

Every change a person makes (selection, skip, bad hole, parameters) is written to the change log
with the user named in ``X-User`` (or the session's owner). Control requests are honoured by the
flow at its next step. Downloads are the stored MRC files and PNG previews of them; the session's
exposures export as a RELION STAR file (:mod:`orchestrator.star`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session as DB

from gridpilot.errors import Conflict, InvalidInput, NotFound
from gridpilot.service import DepsDep
from gridpilot.storage import ObjectStore

from .db import get_row, session_scope
from .grid_work import regroup_square
from .models import Atlas, ChangeLog, Exposure, Grid, Hole, Microscope, Session, Square
from .params import SessionParams, merged_params
from .policies import intensity_classes
from .protocols import load_protocol
from .report import preview_png
from .runner import SessionRunner
from .schemas import (
    ExposureOut,
    GridOut,
    GridPatch,
    HoleOut,
    HolePatch,
    SessionCreate,
    SessionOut,
    SquareOut,
    SquarePatch,
)
from .star import exposures_star

__all__ = ["Orchestrator", "router"]

router = APIRouter(prefix="/v1", tags=["orchestrator"])


@dataclass
class Orchestrator:
    """What the routes need, built once in the lifespan."""

    engine: Engine
    runner: SessionRunner
    store: ObjectStore


def _orch(deps: DepsDep) -> Orchestrator:
    orch: Orchestrator = deps.extras["orchestrator"]
    return orch


OrchDep = Annotated[Orchestrator, Depends(_orch)]
UserHeader = Annotated[str | None, Header(alias="X-User")]


def _log(db: DB, session_id: str, user: str | None, entity: str, entity_id: str, field: str,
         old: Any, new: Any) -> None:
    owner = user or get_row(db, Session, session_id).owner
    db.add(ChangeLog(session_id=session_id, user=owner, entity=entity, entity_id=entity_id,
                     field=field, old_value={"value": old}, new_value={"value": new}))


def _invalid(exc: ValidationError, prefix: str = "") -> InvalidInput:
    first = exc.errors()[0]
    return InvalidInput(f"{prefix}{first['msg']} at {first['loc']}")


def _apply(db: DB, orch: Orchestrator, row: Any, entity: str, changes: dict[str, Any],
           user: str | None) -> None:
    """Set each changed field on ``row``, logging the old and the new value.

    A status change reaches the running flow's control state too (a skip is honoured at its
    next step).
    """
    for field, value in changes.items():
        _log(db, row.session_id, user, entity, row.id, field, getattr(row, field), value)
        setattr(row, field, value)
    if changes.get("selected") and row.status == "detected":
        row.status = "queued"
    if changes.get("selected") is False and row.status == "queued":
        row.status = "detected"
    if (state := orch.runner.control_state(row.session_id)) is not None:
        state.status_changed(row.id, row.status)


# ---- sessions -----------------------------------------------------------------------------------
@router.post("/sessions", status_code=201)
async def create_session(body: SessionCreate, orch: OrchDep) -> SessionOut:
    """Create a session with its grids (autoloader entries), protocol and parameters."""
    protocol = load_protocol(body.protocol)
    try:
        params = SessionParams.model_validate(body.params)
        for g in body.grids:
            merged_params(body.params, g.params)
    except ValidationError as exc:
        raise _invalid(exc, "params: ") from None
    if len({g.position for g in body.grids}) != len(body.grids):
        raise InvalidInput("two grids share an autoloader position")
    with session_scope(orch.engine) as db:
        if db.get(Session, body.id) is not None:
            raise Conflict(f"session {body.id!r} exists")
        if db.get(Microscope, body.microscope_id) is None:
            db.add(Microscope(id=body.microscope_id, name=body.microscope_id))
            db.flush()
        session = Session(id=body.id, name=body.name, group=body.group, owner=body.owner,
                          microscope_id=body.microscope_id, detector_id=None,
                          params=params.model_dump(mode="json", exclude_defaults=False),
                          protocol=protocol.to_mapping())
        db.add(session)
        db.flush()
        for g in body.grids:
            db.add(Grid(id=f"{body.id}_g{g.position}", session_id=body.id, position=g.position,
                        name=g.name, hole_type=g.hole_type, hole_diameter_um=g.hole_diameter_um,
                        mesh_size=g.mesh_size, mesh_material=g.mesh_material,
                        film_material=g.film_material, params=g.params))
        out = SessionOut.model_validate(session)
    if body.start:
        orch.runner.start(body.id)
    return out


@router.get("/sessions")
async def list_sessions(orch: OrchDep, owner: str | None = None, group: str | None = None,
                        state: str | None = None) -> list[SessionOut]:
    with session_scope(orch.engine) as db:
        q = select(Session).order_by(Session.created_at)
        for col, value in ((Session.owner, owner), (Session.group, group), (Session.state, state)):
            if value is not None:
                q = q.where(col == value)
        return [SessionOut.model_validate(s) for s in db.scalars(q).all()]


@router.get("/sessions/{session_id}")
async def get_session(session_id: str, orch: OrchDep) -> SessionOut:
    with session_scope(orch.engine) as db:
        return SessionOut.model_validate(get_row(db, Session, session_id))


Action = Literal["start", "pause", "resume", "stop", "abort"]


@router.post("/sessions/{session_id}/{action}")
async def control_session(session_id: str, action: Action, orch: OrchDep,
                          user: UserHeader = None) -> SessionOut:
    """Start, pause, resume, stop or abort; honoured by the flow at its next step."""
    with session_scope(orch.engine) as db:
        session = get_row(db, Session, session_id)
        if session.state in ("completed", "aborted", "failed") and action != "start":
            raise Conflict(f"session {session_id} is {session.state}")
        old = session.request
        session.request = request = None if action in ("start", "resume") else action
        _log(db, session_id, user, "session", session_id, "request", old, action)
    if (state := orch.runner.control_state(session_id)) is not None:
        state.request = request
    if action in ("start", "resume"):
        orch.runner.start(session_id)
    with session_scope(orch.engine) as db:
        return SessionOut.model_validate(get_row(db, Session, session_id))


@router.patch("/sessions/{session_id}/params")
async def change_params(session_id: str, changes: dict[str, Any], orch: OrchDep,
                        user: UserHeader = None) -> SessionOut:
    """Change parameters of a session, running or not; they apply from the next decision."""
    with session_scope(orch.engine) as db:
        session = get_row(db, Session, session_id)
        try:
            new = merged_params(session.params, None, changes)
        except ValidationError as exc:
            raise _invalid(exc) from None
        for k, v in changes.items():
            _log(db, session_id, user, "session", session_id, f"params.{k}",
                 session.params.get(k), v)
        session.params = new.model_dump(mode="json")
        return SessionOut.model_validate(session)


@router.get("/sessions/{session_id}/changes")
async def list_changes(session_id: str, orch: OrchDep) -> list[dict[str, Any]]:
    with session_scope(orch.engine) as db:
        rows = db.scalars(select(ChangeLog).where(ChangeLog.session_id == session_id)
                          .order_by(ChangeLog.id)).all()
        return [{"user": c.user, "entity": c.entity, "entity_id": c.entity_id, "field": c.field,
                 "old": (c.old_value or {}).get("value"), "new": (c.new_value or {}).get("value"),
                 "at": c.at.isoformat()} for c in rows]


# ---- grids, squares, holes ----------------------------------------------------------------------
@router.get("/sessions/{session_id}/grids")
async def list_grids(session_id: str, orch: OrchDep) -> list[GridOut]:
    with session_scope(orch.engine) as db:
        rows = db.scalars(select(Grid).where(Grid.session_id == session_id)
                          .order_by(Grid.position)).all()
        return [GridOut.model_validate(g) for g in rows]


@router.patch("/grids/{grid_id}")
async def change_grid(grid_id: str, body: GridPatch, orch: OrchDep,
                      user: UserHeader = None) -> GridOut:
    """Choose a grid after the atlas-only pass, skip it, or change its parameters."""
    with session_scope(orch.engine) as db:
        grid = get_row(db, Grid, grid_id)
        session = get_row(db, Session, grid.session_id)
        for field, value in body.model_dump(exclude_none=True).items():
            if field == "params":
                try:
                    merged_params(session.params, value)
                except ValidationError as exc:
                    raise _invalid(exc) from None
            _log(db, grid.session_id, user, "grid", grid_id, field, getattr(grid, field), value)
            setattr(grid, field, value)
        if (state := orch.runner.control_state(grid.session_id)) is not None:
            state.status_changed(grid_id, grid.status)
        return GridOut.model_validate(grid)


@router.get("/grids/{grid_id}/squares")
async def list_squares(grid_id: str, orch: OrchDep, label: str | None = None,
                       selected: bool | None = None, status: str | None = None) -> list[SquareOut]:
    with session_scope(orch.engine) as db:
        q = select(Square).where(Square.grid_id == grid_id).order_by(Square.number)
        for col, value in ((Square.label, label), (Square.selected, selected),
                           (Square.status, status)):
            if value is not None:
                q = q.where(col == value)
        return [SquareOut.model_validate(s) for s in db.scalars(q).all()]


@router.patch("/squares/{square_id}")
async def change_square(square_id: str, body: SquarePatch, orch: OrchDep,
                        user: UserHeader = None) -> SquareOut:
    """Add a square to the selection, remove it, or skip it (at the flow's next step)."""
    with session_scope(orch.engine) as db:
        sq = get_row(db, Square, square_id)
        if sq.status in ("acquired",) and body.status is not None:
            raise Conflict(f"square {square_id} is already acquired")
        _apply(db, orch, sq, "square", body.model_dump(exclude_none=True), user)
        return SquareOut.model_validate(sq)


@router.get("/squares/{square_id}/holes")
async def list_holes(square_id: str, orch: OrchDep, selected: bool | None = None,
                     status: str | None = None, min_bin: int | None = None) -> list[HoleOut]:
    with session_scope(orch.engine) as db:
        q = select(Hole).where(Hole.square_id == square_id).order_by(Hole.number)
        if selected is not None:
            q = q.where(Hole.selected == selected)
        if status is not None:
            q = q.where(Hole.status == status)
        if min_bin is not None:
            q = q.where(Hole.intensity_bin >= min_bin)
        return [HoleOut.model_validate(h) for h in db.scalars(q).all()]


@router.patch("/holes/{hole_id}")
async def change_hole(hole_id: str, body: HolePatch, orch: OrchDep,
                      user: UserHeader = None) -> HoleOut:
    """Select, deselect, mark bad or skip a hole (a bad hole leaves BIS grouping on regroup)."""
    with session_scope(orch.engine) as db:
        h = get_row(db, Hole, hole_id)
        _apply(db, orch, h, "hole", body.model_dump(exclude_none=True), user)
        return HoleOut.model_validate(h)


@router.post("/squares/{square_id}/regroup_bis")
async def regroup_bis(square_id: str, orch: OrchDep, user: UserHeader = None) -> list[HoleOut]:
    """Re-run BIS grouping over the square's remaining holes (after some were marked bad)."""
    with session_scope(orch.engine) as db:
        sq = get_row(db, Square, square_id)
        grid = get_row(db, Grid, sq.grid_id)
        p = merged_params(get_row(db, Session, sq.session_id).params, grid.params)
        if p.bis_max_distance_um <= 0:
            raise InvalidInput("BIS is off for this grid (bis_max_distance_um = 0)")
        holes = list(db.scalars(select(Hole).where(Hole.square_id == square_id)
                                .order_by(Hole.number)).all())
        from .grid_work import hole_candidates, hole_policy_options

        classes = intensity_classes(hole_candidates(holes), **hole_policy_options(p, sq))
        strata = {h.id: f"i{classes[h.id]}" for h in holes if classes[h.id] > 0
                  and h.status in ("detected", "queued")}
        regroup = [h for h in holes if h.status in ("detected", "queued")]
        for h in regroup:
            h.selected, h.status, h.bis_group, h.bis_center = False, "detected", None, False
        groups = regroup_square(holes, p, np.random.default_rng(p.seed), strata)
        by_id = {h.id: h for h in holes}
        for group in groups:
            for i, hid in enumerate(group):
                by_id[hid].selected, by_id[hid].status = True, "queued"
                by_id[hid].bis_group, by_id[hid].bis_center = group[0], i == 0
        _log(db, sq.session_id, user, "square", square_id, "regroup_bis", None, len(groups))
        return [HoleOut.model_validate(h) for h in holes]


# ---- exposures, downloads, export ---------------------------------------------------------------
@router.get("/sessions/{session_id}/exposures")
async def list_exposures(session_id: str, orch: OrchDep, grid_id: str | None = None,
                         square_id: str | None = None, status: str | None = None,
                         confident: bool | None = None,
                         max_ice_nm: float | None = Query(None, gt=0)) -> list[ExposureOut]:
    with session_scope(orch.engine) as db:
        q = select(Exposure).where(Exposure.session_id == session_id).order_by(Exposure.id)
        for col, value in ((Exposure.grid_id, grid_id), (Exposure.square_id, square_id),
                           (Exposure.status, status), (Exposure.ctf_confident, confident)):
            if value is not None:
                q = q.where(col == value)
        if max_ice_nm is not None:
            q = q.where(Exposure.ice_thickness_nm <= max_ice_nm)
        return [ExposureOut.model_validate(x) for x in db.scalars(q).all()]


@router.get("/exposures/{exposure_id}")
async def get_exposure(exposure_id: str, orch: OrchDep) -> ExposureOut:
    with session_scope(orch.engine) as db:
        return ExposureOut.model_validate(get_row(db, Exposure, exposure_id))


def _image_key(db: DB, kind: str, entity_id: str) -> str:
    key: str | None
    if kind == "atlas":
        atlas = db.scalar(select(Atlas).where(Atlas.grid_id == entity_id))
        key = atlas.key if atlas is not None else None
    elif kind == "square":
        key = get_row(db, Square, entity_id).image_key
    elif kind == "view":
        key = get_row(db, Hole, entity_id).view_key
    elif kind == "exposure":
        x = get_row(db, Exposure, entity_id)
        key = x.aligned_key or x.movie_key
    else:
        raise NotFound(f"no image kind {kind!r}; kinds: atlas, square, view, exposure")
    if key is None:
        raise NotFound(f"{kind} {entity_id} has no image yet")
    return key


@router.get("/images/{kind}/{entity_id}.mrc", response_class=Response)
async def download_mrc(kind: str, entity_id: str, orch: OrchDep) -> Response:
    """The stored MRC file of an atlas (by grid id), square, hole view or exposure."""
    with session_scope(orch.engine) as db:
        key = _image_key(db, kind, entity_id)
    return Response(await orch.store.get_bytes(key), media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{entity_id}.mrc"'})


@router.get("/images/{kind}/{entity_id}.png", response_class=Response)
async def download_png(kind: str, entity_id: str, orch: OrchDep) -> Response:
    """A contrast-stretched PNG preview of the same image."""
    with session_scope(orch.engine) as db:
        key = _image_key(db, kind, entity_id)
    array, _ = await orch.store.get_array(key)
    png = await asyncio.to_thread(preview_png, np.asarray(array))
    return Response(png, media_type="image/png")


@router.get("/sessions/{session_id}/export.star", response_class=Response)
async def export_star(session_id: str, orch: OrchDep) -> Response:
    """The session's exposures as RELION STAR, one optics group per BIS group."""
    with session_scope(orch.engine) as db:
        session = get_row(db, Session, session_id)
        microscope = get_row(db, Microscope, session.microscope_id)
        rows = db.scalars(select(Exposure).where(Exposure.session_id == session_id,
                                                 Exposure.movie_key.is_not(None))
                          .order_by(Exposure.id)).all()
        holes = {h.id: h for h in db.scalars(select(Hole).where(
            Hole.id.in_([x.hole_id for x in rows]))).all()}
        text = exposures_star(rows, holes, voltage_kv=microscope.voltage_kv,
                              cs_mm=microscope.cs_mm)
    return Response(text, media_type="text/plain",
                    headers={"Content-Disposition": f'attachment; filename="{session_id}.star"'})

