"""One grid's work after its atlas: squares found and chosen, imaged, their holes found and chosen.

:class:`GridWork` holds the atlas- and square-level steps of the flow; the target level (medium
and high magnification) is :mod:`orchestrator.targets`. Detection results arrive through the
journal (stored by the result reader); selections are stored as decisions, so a restart never
re-draws them, and re-read from the database before each square and target, so an edit made
through the API applies from the next one on.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import insert, select

from gridpilot.contracts import AtlasDetected, HolesDetected, ImageAcquired
from gridpilot.contracts.scope import AcquireResult, EucentricResult
from gridpilot.errors import InvalidInput

from .db import session_scope
from .models import Grid, Hole, Square
from .params import STAGE_RADIUS_UM, SessionParams
from .plugins import Finder, HoleScorer, SquareImage, resolve_plugin
from .policies import HoleCandidate, SquareCandidate, group_holes_for_bis, intensity_classes
from .policies.types import stratified_pick
from .protocols import Level, Protocol
from .targets import TargetWork

if TYPE_CHECKING:
    from .flow import SessionFlow

__all__ = ["GridWork", "hole_candidates", "hole_policy_options", "regroup_square"]

logger = logging.getLogger(__name__)


def hole_candidates(holes: list[Hole]) -> list[HoleCandidate]:
    return [HoleCandidate(h.id, h.stage_x_um, h.stage_y_um, h.mean_intensity, label=h.label,
                          bad=h.bad, available=h.status in ("detected", "queued"))
            for h in holes]


def hole_policy_options(params: SessionParams, square: Square) -> dict[str, Any]:
    """The intensity-bins selector's keywords for one square (its image's centre included)."""
    return {"n_bins": params.hole_intensity_bins,
            "reject_fraction": params.hole_reject_dark_fraction,
            "window_sigmas": params.hole_window_sigmas,
            "core_fraction": params.hole_core_fraction,
            "square_center_um": (square.stage_x_um, square.stage_y_um)}


def regroup_square(holes: list[Hole], params: SessionParams, rng: np.random.Generator,
                   strata: dict[str, str]) -> list[list[str]]:
    """BIS groups of a square's eligible holes, then ``holes per square`` groups chosen.

    Holes marked bad or already acquired are left out, so this can be re-run at any time.
    Returns the chosen groups (centre first); ``strata`` maps eligible hole ids to their
    intensity stratum, and a group stands for its centre's stratum.
    """
    eligible = [h for h in holes if h.id in strata and not h.bad
                and h.status in ("detected", "queued")]
    if not eligible:
        return []
    xy = np.array([(h.stage_x_um, h.stage_y_um) for h in eligible], dtype=np.float64)
    grouping = group_holes_for_bis([h.id for h in eligible], xy,
                                   max_radius_um=params.bis_max_distance_um, rng=rng,
                                   min_group_size=params.min_bis_group_size,
                                   score_weight=params.bis_score_weight)
    groups = {g.center: list(g.members) for g in grouping.groups}
    picks = stratified_pick({c: strata[c] for c in groups}, params.holes_per_square, rng,
                            [h.id for h in eligible])
    return [groups[p.target_id] for p in picks]


class GridWork:
    """Atlas- and square-level steps of one grid (see the module docstring)."""

    def __init__(self, flow: SessionFlow, grid_id: str, protocol: Protocol) -> None:
        self.flow, self.grid_id, self.protocol = flow, grid_id, protocol
        self.journal = flow.journal
        self.session_id = flow.session_id
        with session_scope(flow.engine) as db:
            grid = db.get(Grid, grid_id)
            assert grid is not None
            self.hole_diameter_um, self.hole_pitch_um = grid.hole_geometry
        self.targets = TargetWork(flow, grid_id, protocol)

    def _finder(self, level: Level, step: str) -> Finder | None:
        s = self.protocol.step(level, step)
        return resolve_plugin("finder", s.args["finder"]) if s is not None else None

    # ---- atlas level ------------------------------------------------------------------------
    async def detect_squares(self, atlas: ImageAcquired) -> None:
        finder = self._finder("atlas", "detectSquares")
        if finder is None:
            return
        key = f"{self.grid_id}/detect-squares"
        job = finder.build_job(atlas, session_id=self.session_id, grid_id=self.grid_id,
                               square_id=None, hole_diameter_um=self.hole_diameter_um)
        await self.journal.submit(key, job)
        self.flow.say(f"atlas of {self.grid_id} sent to {finder.job_kind}")
        found = AtlasDetected.model_validate(await self.journal.result(key))
        with session_scope(self.flow.engine) as db:
            if db.scalar(select(Square).where(Square.grid_id == self.grid_id)) is not None:
                return
            for n, sq in enumerate(found.squares, start=1):
                db.add(Square(id=f"{self.grid_id}_s{n}", session_id=self.session_id,
                              grid_id=self.grid_id, number=n, box_px={"v": list(sq.box_px)},
                              label=sq.label, score=sq.score, stage_x_um=sq.stage_x_um,
                              stage_y_um=sq.stage_y_um, area_um2=sq.area_um2))
        self.flow.say(f"{len(found.squares)} squares found on {self.grid_id}")

    async def select_squares(self) -> None:
        step = self.protocol.step("atlas", "selectSquares")
        key = f"{self.grid_id}/select-squares"
        if step is None or self.journal.decided(key) is not None:
            return
        p = self.flow.params(self.grid_id)
        selector = resolve_plugin("selector", step.args["selector"])
        with session_scope(self.flow.engine) as db:
            squares = db.scalars(select(Square).where(Square.grid_id == self.grid_id)
                                 .order_by(Square.number)).all()
            cands = [SquareCandidate(s.id, s.label, s.area_um2, s.stage_x_um, s.stage_y_um,
                                     available=s.status == "detected") for s in squares]
            picks = selector(cands, p.squares_num, self.journal.rng(key),
                             area_bins=p.square_area_bins, **step.args.get("options", {}))
            chosen = {pk.target_id: pk.stratum for pk in picks}
            for s in squares:
                if s.id in chosen:
                    s.selected, s.status, s.stratum = True, "queued", chosen[s.id]
        self.journal.decide(key, {"squares": list(chosen)})
        self.flow.say(f"{len(chosen)} squares selected on {self.grid_id}: "
                      f"{', '.join(f'{k} ({v})' for k, v in chosen.items())}")

    # ---- square level -----------------------------------------------------------------------
    def _queued_squares(self) -> list[str]:
        with session_scope(self.flow.engine) as db:
            rows = db.scalars(select(Square).where(
                Square.grid_id == self.grid_id, Square.selected.is_(True),
                Square.status.in_(("queued", "acquiring"))).order_by(Square.number)).all()
            return [s.id for s in rows]

    async def run_squares(self) -> None:
        from .control import Skip

        # Image every queued square first: hole detection runs while the scope moves on.
        for square_id in self._queued_squares():
            self.flow.control.square_id = square_id
            try:
                await self.image_square(square_id)
            except Skip as exc:
                if exc.level != "square":
                    raise
            finally:
                self.flow.control.square_id = None
        while squares := self._queued_squares():
            square_id = squares[0]
            self.flow.control.square_id = square_id
            try:
                await self.image_square(square_id)  # a square added since: journal no-op otherwise
                await self.targets.run_square(square_id, await self.find_holes(square_id))
                self._square_status(square_id, "acquired")
            except Skip as exc:
                if exc.level != "square":
                    raise
                self.flow.say(f"square {square_id} skipped")
            finally:
                self.flow.control.square_id = None

    def _square_status(self, square_id: str, status: str) -> None:
        with session_scope(self.flow.engine) as db:
            sq = db.get(Square, square_id)
            assert sq is not None
            if sq.status != "skipped":
                sq.status = status

    async def image_square(self, square_id: str) -> None:
        with session_scope(self.flow.engine) as db:
            sq = db.get(Square, square_id)
            assert sq is not None
            x_um, y_um = sq.stage_x_um, sq.stage_y_um
        meta: dict[str, Any] = {}
        for step in self.protocol.steps("square"):
            if step.name == "moveStage":
                await self.journal.command(f"{square_id}/move", "move_stage", x_um=x_um,
                                           y_um=y_um, target_id=square_id)
            elif step.name == "eucentricHeight":
                res = EucentricResult.model_validate(await self.journal.command(
                    f"{square_id}/eucentric", "eucentric_height", mode=step.args.get("mode", "rough")))
                meta["z_um"] = res.z_um
            elif step.name == "square":
                image = AcquireResult.model_validate(await self.journal.command(
                    f"{square_id}/search", "acquire", preset="search", target_id=square_id)).image
                meta["image"] = image.model_dump(mode="json")
                with session_scope(self.flow.engine) as db:
                    sq = db.get(Square, square_id)
                    assert sq is not None
                    sq.image_key, sq.image_meta = image.key, meta
                    if sq.status == "queued":
                        sq.status = "acquiring"
            elif step.name == "detectHoles" and "image" in meta:
                finder = resolve_plugin("finder", step.args["finder"])
                image = ImageAcquired.model_validate(meta["image"])
                job = finder.build_job(image, session_id=self.session_id, grid_id=self.grid_id,
                                       square_id=square_id, hole_diameter_um=self.hole_diameter_um,
                                       hole_pitch_um=self.hole_pitch_um)
                await self.journal.submit(f"{square_id}/detect-holes", job)

    async def find_holes(self, square_id: str) -> list[list[str]]:
        """The square's holes (from its detection), the selection and the BIS groups: the targets."""
        key = f"{square_id}/detect-holes"
        if self.protocol.step("square", "detectHoles") is not None:
            found = HolesDetected.model_validate(await self.journal.result(key))
            with session_scope(self.flow.engine) as db:
                if db.scalar(select(Hole).where(Hole.square_id == square_id)) is None and found.holes:
                    # One bulk INSERT: a square has ~1000 holes, and row-by-row ORM adds
                    # took seconds while the microscope waited for the next square's targets.
                    rows = []
                    for m, h in enumerate(found.holes, start=1):
                        # A square near the rim has holes the stage may not reach: never targets.
                        reachable = math.hypot(h.stage_x_um, h.stage_y_um) <= STAGE_RADIUS_UM
                        rows.append({
                            "id": f"{square_id}_h{m}", "session_id": self.session_id,
                            "grid_id": self.grid_id, "square_id": square_id, "number": m,
                            "x_px": h.x_px, "y_px": h.y_px, "radius_px": h.radius_px,
                            "score": h.score, "label": h.label,
                            "mean_intensity": h.mean_intensity, "stage_x_um": h.stage_x_um,
                            "stage_y_um": h.stage_y_um,
                            "status": "detected" if reachable else "out_of_reach",
                            "message": "" if reachable else
                            f"beyond the {STAGE_RADIUS_UM:g} µm stage limit"})
                    db.execute(insert(Hole), rows)
            self.flow.say(f"square {square_id}: {len(found.holes)} holes found")
        return await self._select_holes(square_id)

    async def _select_holes(self, square_id: str) -> list[list[str]]:
        step = self.protocol.step("square", "selectHoles")
        key = f"{square_id}/select-holes"
        decided = self.journal.decided(key)
        if step is None:
            return []
        if decided is not None:
            return [list(g) for g in decided["groups"]]
        p = self.flow.params(self.grid_id)
        bis = p.bis_max_distance_um > 0 and self.protocol.step("square", "groupBIS") is not None
        selector = resolve_plugin("selector", step.args["selector"])
        scorer_name = step.args.get("scorer")
        rng = self.journal.rng(key)
        # A scorer may read storage: it runs before the database session opens, not inside it.
        scores = await self._scores(scorer_name, square_id) if scorer_name is not None else None
        with session_scope(self.flow.engine) as db:
            holes = list(db.scalars(select(Hole).where(Hole.square_id == square_id)
                                    .order_by(Hole.number)).all())
            square = db.get(Square, square_id)
            assert square is not None
            policy = hole_policy_options(p, square)
            options: dict[str, Any] = {**step.args.get("options", {}), **policy}
            cands = hole_candidates(holes)
            if scores is not None:
                options["scores"] = scores
            picks = selector(cands, 0 if bis else p.holes_per_square, rng, **options)
            strata = {pk.target_id: pk.stratum for pk in picks}
            classes = intensity_classes(cands, **policy)
            for h in holes:
                h.intensity_bin = classes[h.id]
            groups = (regroup_square(holes, p, rng, strata) if bis
                      else [[pk.target_id] for pk in picks])
            by_id = {h.id: h for h in holes}
            for group in groups:
                for i, hid in enumerate(group):
                    h = by_id[hid]
                    h.selected, h.status = True, "queued"
                    h.bis_group, h.bis_center = (group[0], i == 0) if bis else (None, False)
        self.journal.decide(key, {"groups": groups})
        n_targets = sum(len(g) for g in groups)
        self.flow.say(f"square {square_id}: {n_targets} holes selected in {len(groups)} "
                      f"target group(s)")
        return groups

    async def _scores(self, name: str, square_id: str) -> dict[str, float]:
        """The named scorer's scores of the square's holes; none before its image exists."""
        with session_scope(self.flow.engine) as db:
            square = db.get(Square, square_id)
            assert square is not None
            image_key = square.image_key
            holes = hole_candidates(list(db.scalars(select(Hole).where(Hole.square_id == square_id)
                                                    .order_by(Hole.number)).all()))
        if image_key is None:
            return {}
        if self.flow.store is None:
            raise InvalidInput(f"the scorer {name!r} needs the object store, and this "
                               "orchestrator has none", field="scorer")
        scorer: HoleScorer = resolve_plugin("scorer", name)
        return await scorer(SquareImage(square_id, image_key, self.flow.store), holes)
