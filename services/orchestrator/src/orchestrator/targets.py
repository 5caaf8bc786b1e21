"""The target level: medium magnification, focus, drift, then the exposures of one target group.

A target group is one stage position: a hole alone, or a BIS group (its centre first). The
stage goes to the centre; the medium-magnification image is stored; autofocus sets the rolling
defocus; a drift wait runs when ``drift crit`` > 0; then every hole of the group, and every
shot of the several-shots-per-hole pattern, is exposed by image shift, each with its own offset
and (tilted collection) corrected defocus, and queued for preprocessing at once.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from typing import TYPE_CHECKING, Final

from sqlalchemy import select

from gridpilot.contracts import PreprocessMovieJob, PreprocessParams, TargetUpdated, subjects
from gridpilot.contracts.scope import AcquireResult, AutofocusResult, StageResult
from gridpilot.errors import GridpilotError

from .control import Skip
from .db import session_scope
from .models import Exposure, Grid, Hole, Square
from .params import SessionParams
from .policies import (
    defocus_for_target,
    focus_change_um,
    needs_zlp_refinement,
    offset_for_target,
    tilted_defocus_um,
    wait_for_drift,
)
from .protocols import Protocol

if TYPE_CHECKING:
    from .flow import SessionFlow

__all__ = ["TargetWork"]

logger = logging.getLogger(__name__)

#: The gateway's image-shift limit (contracts.scope.ImageShiftParams), µm.
_MAX_IMAGE_SHIFT_UM: Final[float] = 20.0


class TargetWork:
    """Medium- and high-magnification steps of one grid's target groups."""

    def __init__(self, flow: SessionFlow, grid_id: str, protocol: Protocol) -> None:
        self.flow, self.grid_id, self.protocol = flow, grid_id, protocol
        self.journal = flow.journal
        with session_scope(flow.engine) as db:
            grid = db.get(Grid, grid_id)
            assert grid is not None
            self.film = grid.film_material or "carbon"
            diameter_um, _ = grid.hole_geometry
            self.hole_radius_um = diameter_um / 2 if diameter_um else None
        self._last_focus: tuple[float, float, float] | None = None

    def _next_group(self, square_id: str) -> list[str] | None:
        """The first unfinished target group of the square, re-read (edits apply at once).

        A group left ``acquiring`` by a process that died comes first: it is resumed.
        """
        with session_scope(self.flow.engine) as db:
            holes = sorted(db.scalars(select(Hole).where(
                Hole.square_id == square_id, Hole.selected.is_(True),
                Hole.status.in_(("queued", "acquiring")))).all(),
                key=lambda h: (h.status != "acquiring", h.number))
            if not holes:
                return None
            first = next((h for h in holes if h.bis_center), holes[0])
            if first.bis_group is None:
                return [first.id]
            members = [h.id for h in holes if h.bis_group == first.bis_group and h.id != first.id]
            return [first.id, *members]

    async def run_square(self, square_id: str, groups: list[list[str]]) -> None:
        del groups  # the stored selection is re-read group by group
        with session_scope(self.flow.engine) as db:
            sq = db.get(Square, square_id)
            assert sq is not None
            z_um = (sq.image_meta or {}).get("z_um")
        while (group := self._next_group(square_id)) is not None:
            self.flow.control.hole_ids = group
            try:
                await self.run_group(group, z_um)
            except Skip as exc:
                if exc.level != "target":
                    raise
                self._hole_status(group, "skipped", only_from=("queued", "acquiring", "skipped"))
                self.flow.say(f"target {group[0]} skipped")
            finally:
                self.flow.control.hole_ids = []

    def _hole_status(self, ids: list[str], status: str,
                     only_from: tuple[str, ...] = ("queued", "acquiring")) -> None:
        with session_scope(self.flow.engine) as db:
            for h in db.scalars(select(Hole).where(Hole.id.in_(ids))).all():
                if h.status in only_from:
                    h.status = status
                    self.flow.control.state.status_changed(h.id, status)

    def _defocus_index(self, key: str) -> int:
        return self.journal.count("/defocus", besides=key)

    async def run_group(self, group: list[str], z_um: float | None) -> None:
        center = group[0]
        p = self.flow.params(self.grid_id)
        with session_scope(self.flow.engine) as db:
            holes = {h.id: (h.stage_x_um, h.stage_y_um)
                     for h in db.scalars(select(Hole).where(Hole.id.in_(group))).all()}
        cx, cy = holes[center]
        stage = (cx, cy)
        dkey = f"{center}/defocus"
        decided = self.journal.decided(dkey)
        defocus = float(decided["um"]) if decided else defocus_for_target(
            self._defocus_index(dkey), p.target_defocus_min_um, p.target_defocus_max_um,
            p.step_defocus_um)
        self.journal.decide(dkey, {"um": defocus})
        measured: float | None = None
        for step in self.protocol.steps("mediumMag"):
            if step.name == "tiltToAngle" and p.tilt_angle_deg != 0:
                await self.journal.command(f"{self.grid_id}/tilt/{p.tilt_angle_deg:g}", "tilt",
                                           angle_deg=p.tilt_angle_deg)
            elif step.name == "moveStage":
                res = StageResult.model_validate(await self.journal.command(
                    f"{center}/move", "move_stage", x_um=cx, y_um=cy, z_um=z_um,
                    target_id=center))
                stage = (res.stage.x_um, res.stage.y_um)
            elif step.name == "mediumMagHole":
                view = AcquireResult.model_validate(await self.journal.command(
                    f"{center}/view", "acquire", preset="view", target_id=center)).image
                with session_scope(self.flow.engine) as db:
                    hole = db.get(Hole, center)
                    if hole is not None:
                        hole.view_key = view.key
            elif step.name == "autoFocus":
                measured = await self._focus(center, stage, defocus,
                                             float(step.args.get("after_distance_um", 0.0)))
            elif step.name == "waitDrift":
                wait = wait_for_drift(p.drift_crit_a_per_s, p.drift_timeout_s)
                if wait is not None:
                    await self.journal.command(f"{center}/drift", "drift_wait",
                                               threshold_a_per_s=wait.threshold_a_per_s,
                                               timeout_s=wait.timeout_s)
            elif step.name == "refineZLP":
                await self._zlp(center, p.zeroloss_delay_h)
        self._hole_status(group, "acquiring")
        shifted = False
        for hole_id in group:
            hx, hy = holes[hole_id]
            for shot_i, shot in enumerate(p.shots_per_hole):
                shifted |= await self._expose(hole_id, shot_i, (hx + shot.dx_um, hy + shot.dy_um),
                                              stage, defocus, measured, p)
            self._hole_status([hole_id], "acquired", only_from=("acquiring",))
            await self._target_event(hole_id, "acquired")
        if shifted:
            await self.journal.command(f"{center}/is-reset", "image_shift", dx_um=0.0, dy_um=0.0,
                                       absolute=True)

    async def _focus(self, center: str, stage: tuple[float, float], defocus: float,
                     after_distance_um: float) -> float | None:
        last = self._last_focus
        if (last is not None and after_distance_um > 0 and last[2] == defocus
                and math.hypot(stage[0] - last[0], stage[1] - last[1]) < after_distance_um):
            return None  # close to the last measurement, same target: the focus still holds
        res = AutofocusResult.model_validate(await self.journal.command(
            f"{center}/autofocus", "autofocus", target_defocus_um=defocus))
        self._last_focus = (stage[0], stage[1], defocus)
        return res.measured_defocus_um

    async def _zlp(self, center: str, delay_h: float) -> None:
        """Refine the zero-loss peak when ``zeroloss delay`` hours passed since the last time.

        Hours are the microscope's: the gateway's clock in the latest reply (wall time where
        the driver keeps none). The refinement is a journalled command; when it was due is a
        decision, so a restart neither repeats nor forgets it.
        """
        last = self.journal.latest("/zlp-at")
        last_s = float(last["at_s"]) if last is not None else None
        now_s = self.journal.scope_clock_s or time.time()
        if not needs_zlp_refinement(last_s, now_s, delay_h):
            return
        await self.journal.command(f"{center}/zlp", "refine_zlp")
        self.journal.decide(f"{center}/zlp-at", {"at_s": now_s})
        self.flow.say(f"zero-loss peak refined at {center}")

    async def _expose(self, hole_id: str, shot: int, aim: tuple[float, float],
                      stage: tuple[float, float], defocus: float, measured: float | None,
                      p: SessionParams) -> bool:
        xid = f"{hole_id}_x{shot}"
        okey = f"{xid}/offset"
        off = self.journal.decided(okey)
        if off is None:
            dx, dy = offset_for_target(self.journal.rng(okey), hole_radius_um=self.hole_radius_um,
                                       film_material=self.film,
                                       offset_targeting=p.offset_targeting,
                                       offset_distance_um=p.offset_distance_um,
                                       collection_mode=p.collection_mode)
            off = self.journal.decide(okey, {"dx_um": dx, "dy_um": dy})
        ox, oy = float(off["dx_um"]), float(off["dy_um"])
        isx, isy = aim[0] + ox - stage[0], aim[1] + oy - stage[1]
        if max(abs(isx), abs(isy)) > _MAX_IMAGE_SHIFT_UM:
            logger.warning("%s: image shift (%.1f, %.1f) µm is beyond the limit; not shot",
                           xid, isx, isy)
            return False
        target_df = tilted_defocus_um(defocus, image_shift_y_um=isy, tilt_deg=p.tilt_angle_deg)
        # Tilted collection: the focus follows the target's height along the tilt for this
        # exposure only, changed after its image shift and given back after its record; both
        # are journalled, so a restart between them gives it back and never applies it twice.
        tilt_delta = focus_change_um(target_df, defocus_um=defocus, applied_um=0.0)
        tilt_key = f"{xid}/tilt-focus"
        square_id = hole_id.rsplit("_h", 1)[0]
        with session_scope(self.flow.engine) as db:
            x = db.get(Exposure, xid)
            if x is None:
                db.add(Exposure(id=xid, session_id=self.flow.session_id, grid_id=self.grid_id,
                                square_id=square_id, hole_id=hole_id, shot=shot,
                                image_shift_x_um=isx, image_shift_y_um=isy, offset_x_um=ox,
                                offset_y_um=oy, stage_x_um=stage[0], stage_y_um=stage[1],
                                tilt_deg=p.tilt_angle_deg, defocus_target_um=target_df,
                                defocus_measured_um=measured))
                acquired_before = False
            else:
                acquired_before = x.status != "acquiring"
        if acquired_before:  # acquired before a restart
            if tilt_delta and self.journal.step_state(tilt_key) is not None:
                await self.journal.command(tilt_key, "change_focus", delta_um=tilt_delta)
                await self.journal.command(f"{xid}/tilt-focus-back", "change_focus",
                                           delta_um=-tilt_delta)
            return True
        shifted = isx != 0.0 or isy != 0.0
        await self.journal.command(f"{xid}/is", "image_shift", dx_um=isx, dy_um=isy,
                                   absolute=True)
        if tilt_delta:
            await self.journal.command(tilt_key, "change_focus", delta_um=tilt_delta)
        single = not p.save_frames or bool(
            (self.protocol.step("highMag", "highMag") or _NO_STEP).args.get("single_frame"))
        frames = 1 if single else p.frames
        fresh = self.journal.step_state(f"{xid}/record") != "done"
        movie = AcquireResult.model_validate(await self.journal.command(
            f"{xid}/record", "acquire", preset="record", frames=frames,
            total_dose_e_per_a2=p.total_dose_e_per_a2, target_id=hole_id)).image
        if tilt_delta:
            await self.journal.command(f"{xid}/tilt-focus-back", "change_focus",
                                       delta_um=-tilt_delta)
        if fresh:
            self.flow.stats.exposure_acquired()
        job_id = None
        if frames > 1:
            job = PreprocessMovieJob(session_id=self.flow.session_id, grid_id=self.grid_id,
                                     exposure_id=xid, movie_key=movie.key,
                                     pixel_size_a=movie.pixel_size_a, voltage_kv=movie.voltage_kv,
                                     dose_per_frame_e_per_a2=p.total_dose_e_per_a2 / frames,
                                     params=PreprocessParams().around_target(target_df))
            job_id = self.journal.job_id(f"{xid}/preprocess", job)
        with session_scope(self.flow.engine) as db:
            x = db.get(Exposure, xid)
            assert x is not None
            x.image_id, x.movie_key, x.pixel_size_a = movie.image_id, movie.key, movie.pixel_size_a
            x.acquired_at, x.status, x.preprocess_job_id = movie.acquired_at, "acquired", job_id
        if job_id is not None:
            await self.journal.submit(f"{xid}/preprocess", job)
        return shifted

    async def _target_event(self, hole_id: str, state: str) -> None:
        with contextlib.suppress(GridpilotError):
            await self.flow.bus.publish_event(subjects.EVT_TARGET_UPDATED, TargetUpdated(
                session_id=self.flow.session_id, grid_id=self.grid_id, target_id=hole_id,
                target_kind="hole", state=state))


class _NoStep:
    args: dict[str, object] = {}  # noqa: RUF012 - read-only stand-in


_NO_STEP = _NoStep()
