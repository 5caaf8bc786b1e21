"""Routes of the per-grid report: ``/v1/grids/{grid_id}/report.html`` and ``report.json``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gridpilot.demo.report import render_report
from gridpilot.service import DepsDep

from .report import build_grid_report

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["reports"])


@router.get("/grids/{grid_id}/report.json")
async def grid_report_json(grid_id: str, deps: DepsDep) -> dict[str, Any]:
    """The grid's report as JSON: counts, exposures with their CTF figures, what was skipped."""
    orch = deps.extras["orchestrator"]
    _, data = await build_grid_report(orch.engine, orch.store, grid_id)
    return data


@router.get("/grids/{grid_id}/report.html", response_class=HTMLResponse)
async def grid_report_html(grid_id: str, deps: DepsDep) -> HTMLResponse:
    """The grid's report page: atlas, squares and holes drawn by class, exposures and figures."""
    orch = deps.extras["orchestrator"]
    report, _ = await build_grid_report(orch.engine, orch.store, grid_id)
    return HTMLResponse(render_report(report))
