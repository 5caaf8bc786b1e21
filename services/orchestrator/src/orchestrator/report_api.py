"""Routes of the reports: per grid ``/v1/grids/{grid_id}/report.{html,json}``, and per session
``/v1/sessions/{session_id}/report.{html,json}`` (every grid of the session on one page)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from .api import OrchDep
from .report import build_grid_report, build_session_report
from .report_page import render_report

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["reports"])


@router.get("/grids/{grid_id}/report.json")
async def grid_report_json(grid_id: str, orch: OrchDep) -> dict[str, Any]:
    """The grid's report as JSON: counts, exposures with their CTF figures, what was skipped."""
    return (await build_grid_report(orch.engine, orch.store, grid_id))[1]


@router.get("/grids/{grid_id}/report.html", response_class=HTMLResponse)
async def grid_report_html(grid_id: str, orch: OrchDep) -> HTMLResponse:
    """The grid's report page: atlas, squares and holes drawn by class, exposures and figures."""
    report, _ = await build_grid_report(orch.engine, orch.store, grid_id)
    return HTMLResponse(render_report(report))


@router.get("/sessions/{session_id}/report.json")
async def session_report_json(session_id: str, orch: OrchDep) -> dict[str, Any]:
    """The session's report as JSON: the session, then every grid's report in autoloader order."""
    return (await build_session_report(orch.engine, orch.store, session_id))[1]


@router.get("/sessions/{session_id}/report.html", response_class=HTMLResponse)
async def session_report_html(session_id: str, orch: OrchDep) -> HTMLResponse:
    """The session's report page: every grid's atlas, squares, holes and exposures."""
    page, _ = await build_session_report(orch.engine, orch.store, session_id)
    return HTMLResponse(page)
