"""The stateful twin microscope: a Krios-like instrument over the simulated world.

:class:`TwinMicroscope` keeps what a real microscope keeps — the loaded grid, the stage
(x, y, z, tilt), the image shift, the objective focus and the target defocus, the current
preset, the drift since the last move — and offers the operations the scope-gateway needs:
grid exchange from the autoloader cassette, atlas montage, stage moves and tilts, eucentric
height, autofocus, drift wait, image shift, Search/View/Record acquisitions, and abort. Every
operation costs the microscope time of a :class:`~gridpilot_sim.instrument.timing.TimingModel` (waited as
``time / speedup``, interrupted by :meth:`TwinMicroscope.abort`), and draws the imperfections
of an :class:`~gridpilot_sim.instrument.imperfections.ImperfectionProfile` from its own seeded generator:
given a seed and the same sequence of operations, the twin answers identically.

Heights: each grid has its own eucentric height surface ``z_eucentric_um(x, y)`` (the grid is
never perfectly flat). The defocus at the specimen is the objective focus plus the height
error, ``defocus_um = focus_um − (z_stage − z_eucentric)``; autofocus measures it and sets the
focus so that it equals the target (negative = underfocus, SerialEM's sign).

>>> import asyncio
>>> from gridpilot_sim.instrument.timing import TimingModel
>>> twin = TwinMicroscope(seed=3, timing=TimingModel.instant(), optics=TwinOptics.tiny())
>>> asyncio.run(twin.move_stage(120.0, -40.0))
StagePose(x_um=120.0, y_um=-40.0, z_um=0.0, tilt_deg=0.0)
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from gridpilot.errors import ScopeError, TransientError
from gridpilot_sim.instrument.cassette import CASSETTE_SLOTS, CassetteSlot, default_cassette
from gridpilot_sim.instrument.imperfections import ImperfectionProfile
from gridpilot_sim.instrument.presets import PresetName, TwinOptics
from gridpilot_sim.instrument.render_scope import (
    StagePose,
    TwinAtlas,
    TwinImage,
    render_atlas,
    render_image,
    render_movie,
    world_for,
)
from gridpilot_sim.instrument.timing import EucentricMode, TimingModel

__all__ = [
    "AutofocusOutcome",
    "DriftWaitOutcome",
    "StagePose",
    "TwinAtlas",
    "TwinImage",
    "TwinMicroscope",
    "TwinState",
]

logger = logging.getLogger(__name__)

#: Physical travel of the twin's stage; the gateway's own limits are tighter.
STAGE_TRAVEL_UM: Final[float] = 1000.0
Z_TRAVEL_UM: Final[float] = 375.0
TILT_TRAVEL_DEG: Final[float] = 80.0
IMAGE_SHIFT_TRAVEL_UM: Final[float] = 25.0
_REFINE_FACTOR: Final[float] = 0.25
_SLOT_STATUS_IN_CASSETTE: Final[int] = 1
_SLOT_STATUS_ON_STAGE: Final[int] = 0
_SLOT_STATUS_EMPTY: Final[int] = -1


@dataclass(frozen=True)
class AutofocusOutcome:
    """What an autofocus measured (defocus before the correction, µm) and whether it worked."""

    measured_defocus_um: float
    ok: bool


@dataclass(frozen=True)
class DriftWaitOutcome:
    drift_a_per_s: float
    settled: bool
    waited_s: float


@dataclass(frozen=True)
class TwinState:
    """A snapshot of the twin (see :meth:`TwinMicroscope.state`)."""

    slot: int | None
    grid_name: str | None
    stage: StagePose
    image_shift_um: tuple[float, float]
    focus_um: float
    defocus_um: float
    target_defocus_um: float
    preset: PresetName
    busy_with: str | None
    dewars_filling: bool
    clock_s: float
    drift_a_per_s: float


class TwinMicroscope:
    """A simulated microscope with state, timing, imperfections and an autoloader.

    Args:
        seed: seeds the imperfections and the noise of every image.
        cassette: slot → grid; :func:`~gridpilot_sim.instrument.cassette.default_cassette` by default.
        timing: durations and speed-up; the default waits in real time (``speedup=1``).
        imperfections: what goes wrong; nothing by default.
        optics: the presets' magnifications, pixel sizes and image sizes.
    """

    def __init__(self, *, seed: int = 0, cassette: Mapping[int, CassetteSlot] | None = None,
                 timing: TimingModel | None = None,
                 imperfections: ImperfectionProfile | None = None,
                 optics: TwinOptics | None = None) -> None:
        self.seed = seed
        self.cassette: dict[int, CassetteSlot] = dict(
            cassette if cassette is not None else default_cassette(seed))
        bad = [s for s in self.cassette if s not in CASSETTE_SLOTS]
        if bad:
            raise ValueError(f"cassette slots must be in 1..12, got {bad}")
        self.timing = timing if timing is not None else TimingModel()
        self.imperfections = imperfections if imperfections is not None else ImperfectionProfile()
        self.optics = optics if optics is not None else TwinOptics.sized()
        self._rng = np.random.default_rng([seed, 0x5C0FE])
        self._slot: int | None = None
        self._stage = StagePose(0.0, 0.0)
        self._image_shift_um = (0.0, 0.0)
        self._focus_um = 0.0
        self._target_defocus_um = -2.0
        self._preset: PresetName = "atlas"
        self._clock_s = 0.0
        self._last_move_s = 0.0
        self._dewar_until_s = -1.0
        self._shots = 0
        self._busy: str | None = None
        self._abort_requested = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    # ---- reading ------------------------------------------------------------------------------
    @property
    def clock_s(self) -> float:
        """Microscope seconds spent so far (the sum of every operation's time)."""
        return self._clock_s

    @property
    def loaded(self) -> CassetteSlot | None:
        return self.cassette[self._slot] if self._slot is not None else None

    @property
    def dewars_filling(self) -> bool:
        return self._clock_s < self._dewar_until_s

    def z_eucentric_um(self, x_um: float, y_um: float) -> float:
        """The stage z (µm) that puts the loaded grid's film at the eucentric height at (x, y)."""
        loaded = self.loaded
        return world_for(loaded).height_um(x_um, y_um) if loaded is not None else 0.0

    def defocus_um(self) -> float:
        """The defocus at the specimen now (negative = underfocus), µm."""
        x, y = self._image_centre()
        return self._focus_um - (self._stage.z_um - self.z_eucentric_um(x, y))

    def drift_a_per_s(self) -> float:
        """The specimen drift rate now, Å/s."""
        return self.imperfections.drift_rate_a_per_s(self._clock_s - self._last_move_s)

    def slot_status(self, slot: int) -> int:
        """SerialEM's ``ReportSlotStatus`` code: 1 in the cassette, 0 on the stage, −1 empty."""
        if slot not in self.cassette:
            return _SLOT_STATUS_EMPTY
        return _SLOT_STATUS_ON_STAGE if slot == self._slot else _SLOT_STATUS_IN_CASSETTE

    def state(self) -> TwinState:
        loaded = self.loaded
        return TwinState(
            slot=self._slot, grid_name=loaded.name if loaded else None, stage=self._stage,
            image_shift_um=self._image_shift_um, focus_um=self._focus_um,
            defocus_um=self.defocus_um(), target_defocus_um=self._target_defocus_um,
            preset=self._preset, busy_with=self._busy, dewars_filling=self.dewars_filling,
            clock_s=self._clock_s, drift_a_per_s=self.drift_a_per_s(),
        )

    # ---- settings without motion ---------------------------------------------------------------
    def set_target_defocus(self, defocus_um: float) -> None:
        """The defocus the next autofocus aims for, µm (negative = underfocus)."""
        if not -20.0 <= defocus_um <= 5.0:
            raise ScopeError(f"target defocus {defocus_um} µm is outside [-20, 5] µm")
        self._target_defocus_um = defocus_um

    def set_focus(self, focus_um: float) -> None:
        """Set the objective focus directly (SerialEM ``SetDefocus``), µm."""
        self._focus_um = focus_um

    def abort(self) -> bool:
        """Stop the running operation (thread-safe); False when nothing was running."""
        with self._lock:
            if self._busy is None:
                return False
            self._abort_requested = True
            loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)
        return True

    # ---- operations ----------------------------------------------------------------------------
    async def load_grid(self, slot: int) -> CassetteSlot:
        """Exchange grids: put the loaded one back and load the cartridge in ``slot``."""
        if slot not in self.cassette:
            raise ScopeError(f"slot {slot} of the autoloader cassette is empty")
        async with self._operation("load_grid"):
            if self._slot == slot:
                return self.cassette[slot]
            await self._spend(self.timing.grid_load_s())
            self._slot = slot
            self._stage = StagePose(0.0, 0.0)
            self._image_shift_um = (0.0, 0.0)
            self._focus_um = 0.0
            self._preset = "atlas"
            self._last_move_s = self._clock_s
            logger.info("twin loaded slot %d (%s)", slot, self.cassette[slot].name)
            return self.cassette[slot]

    async def atlas(self, tiles_x: int, tiles_y: int) -> TwinAtlas:
        """A montage of ``tiles_x × tiles_y`` atlas tiles around the stage, and its stitch."""
        async with self._operation("atlas"):
            slot = self._require_grid()
            await self._spend(self.timing.atlas_s(tiles_x, tiles_y))
            self._preset = "atlas"
            centre = (self._stage.x_um, self._stage.y_um)
            return await asyncio.to_thread(
                render_atlas, slot, self.optics, centre, tiles_x, tiles_y, self._stage_for_image(),
                self.imperfections.stage_error_um)

    async def move_stage(self, x_um: float, y_um: float, z_um: float | None = None) -> StagePose:
        """Move to (x, y[, z]) µm; the stage lands within ``stage_error_um`` of it."""
        z = self._stage.z_um if z_um is None else z_um
        if math.hypot(x_um, y_um) > STAGE_TRAVEL_UM or abs(z) > Z_TRAVEL_UM:
            raise ScopeError(f"stage position ({x_um}, {y_um}, {z}) µm is beyond the stage travel")
        async with self._operation("move_stage"):
            ex, ey = self._disc_sample(self.imperfections.stage_error_um)
            s = self._stage
            distance = math.sqrt((x_um - s.x_um) ** 2 + (y_um - s.y_um) ** 2 + (z - s.z_um) ** 2)
            await self._spend(self.timing.stage_move_s(distance))
            self._stage = StagePose(x_um + ex, y_um + ey, z, s.tilt_deg)
            if distance > 0:
                self._last_move_s = self._clock_s
            return self._stage

    async def tilt(self, angle_deg: float) -> StagePose:
        """Tilt the stage to ``angle_deg``."""
        if abs(angle_deg) > TILT_TRAVEL_DEG:
            raise ScopeError(f"tilt {angle_deg}° is beyond the stage's ±{TILT_TRAVEL_DEG}°")
        async with self._operation("tilt"):
            delta = angle_deg - self._stage.tilt_deg
            await self._spend(self.timing.tilt_s(delta))
            s = self._stage
            self._stage = StagePose(s.x_um, s.y_um, s.z_um, angle_deg)
            if delta != 0:
                self._last_move_s = self._clock_s
            return self._stage

    async def eucentric_height(self, mode: EucentricMode = "rough") -> float:
        """Bring the specimen to the eucentric height; returns the z change, µm."""
        async with self._operation("eucentric_height"):
            self._require_grid()
            await self._spend(self.timing.eucentric_s(mode))
            limit = self.imperfections.eucentric_error_um
            if mode != "rough":
                limit *= _REFINE_FACTOR
            residual = self._uniform(limit)
            s = self._stage
            z = max(-Z_TRAVEL_UM, min(Z_TRAVEL_UM, self.z_eucentric_um(s.x_um, s.y_um) + residual))
            self._stage = StagePose(s.x_um, s.y_um, z, s.tilt_deg)
            return z - s.z_um

    async def autofocus(self, target_defocus_um: float | None = None) -> AutofocusOutcome:
        """Measure the defocus and set the focus to reach the target (unless it fails)."""
        if target_defocus_um is not None:
            self.set_target_defocus(target_defocus_um)
        async with self._operation("autofocus"):
            self._require_grid()
            await self._spend(self.timing.autofocus_s())
            measured = self.defocus_um()
            p_fail = self.imperfections.autofocus_failure_probability
            if p_fail > 0 and self._rng.random() < p_fail:
                return AutofocusOutcome(measured, ok=False)
            error = self._uniform(self.imperfections.defocus_error_um)
            self._focus_um += self._target_defocus_um + error - measured
            return AutofocusOutcome(measured, ok=True)

    async def drift_wait(self, threshold_a_per_s: float, timeout_s: float) -> DriftWaitOutcome:
        """Measure drift repeatedly until it is below the threshold or the time is up."""
        async with self._operation("drift_wait"):
            waited = 0.0
            while True:
                step = self.timing.drift_measurement_s()
                await self._spend(step)
                waited += step
                rate = self.drift_a_per_s()
                if rate <= threshold_a_per_s or waited >= timeout_s:
                    return DriftWaitOutcome(rate, rate <= threshold_a_per_s, waited)

    async def idle(self, seconds: float) -> None:
        """Let ``seconds`` of microscope time pass (SerialEM ``Delay``)."""
        async with self._operation("idle"):
            await self._spend(max(seconds, 0.0))

    async def image_shift(self, dx_um: float, dy_um: float, *,
                          absolute: bool = False) -> tuple[float, float]:
        """Shift the image by (dx, dy) µm, or set the shift to it when ``absolute``."""
        x, y = (dx_um, dy_um) if absolute else (self._image_shift_um[0] + dx_um,
                                                  self._image_shift_um[1] + dy_um)
        if math.hypot(x, y) > IMAGE_SHIFT_TRAVEL_UM:
            raise ScopeError(f"image shift ({x:.2f}, {y:.2f}) µm is beyond "
                             f"{IMAGE_SHIFT_TRAVEL_UM} µm")
        async with self._operation("image_shift"):
            await self._spend(self.timing.image_shift_s())
            self._image_shift_um = (x, y)
            return self._image_shift_um

    async def acquire(self, preset: PresetName, *, frames: int = 1,
                      dose_e_per_a2: float | None = None,
                      exposure_time_s: float | None = None) -> TwinImage:
        """One image with a low-dose preset; ``record`` gives a movie of ``frames`` frames."""
        if preset == "atlas":
            raise ScopeError("use atlas() for atlas tiles; acquire() takes search, view or record")
        async with self._operation("acquire"):
            self._require_grid()
            optics = self.optics.preset(preset)
            exposure_s = exposure_time_s if exposure_time_s is not None else optics.exposure_time_s
            dose = dose_e_per_a2 if dose_e_per_a2 is not None else optics.dose_e_per_a2
            if preset == "search":
                seconds = self.timing.square_image_s()
            elif preset == "view":
                seconds = self.timing.view_image_s()
            else:
                seconds = self.timing.exposure_s(frames, exposure_s)
            if self._preset == preset:
                seconds -= self.timing.mag_change_s()
            await self._spend(seconds)
            self._preset = preset
            self._shots += 1
            shot_seed = int(np.random.default_rng([self.seed, self._shots]).integers(2**31))
            args = (self._require_grid(), optics, self._stage_for_image(), self._image_shift_um,
                    self.defocus_um(), self._target_defocus_um, dose, exposure_s, shot_seed)
            if preset == "record":
                return await asyncio.to_thread(render_movie, *args, frames=frames,
                                               drift_a_per_s=self.drift_a_per_s())
            return await asyncio.to_thread(render_image, *args)

    # ---- internals -------------------------------------------------------------------------------
    @asynccontextmanager
    async def _operation(self, verb: str) -> AsyncIterator[None]:
        with self._lock:
            if self._busy is not None:
                raise ScopeError(f"the microscope is busy with {self._busy}; {verb} refused")
            self._busy = verb
            self._abort_requested = False
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
        try:
            p_lost = self.imperfections.connection_loss_probability
            if p_lost > 0 and self._rng.random() < p_lost:
                raise TransientError(f"lost the connection to the microscope during {verb}",
                                     verb=verb)
            p_fill = self.imperfections.dewar_fill_probability
            if p_fill > 0 and not self.dewars_filling and self._rng.random() < p_fill:
                self._dewar_until_s = self._clock_s + self.imperfections.dewar_fill_duration_s
            if self.dewars_filling:
                logger.info("twin waits %.0f s for the LN2 dewars to fill",
                            self._dewar_until_s - self._clock_s)
                await self._spend(self._dewar_until_s - self._clock_s)
            yield
        finally:
            with self._lock:
                self._busy = None
                self._wake = None
                self._loop = None

    async def _spend(self, scope_s: float) -> None:
        """Advance the clock by ``scope_s`` and wait for it, unless aborted."""
        self._check_abort()
        wall_s = self.timing.wall_s(scope_s)
        wake = self._wake
        if wall_s > 0 and wake is not None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            try:
                await asyncio.wait_for(wake.wait(), timeout=wall_s)
            except TimeoutError:
                pass
            done = min((loop.time() - start) / wall_s, 1.0)
            self._clock_s += scope_s * (1.0 if not self._abort_requested else done)
        else:
            self._clock_s += scope_s
        self._check_abort()

    def _check_abort(self) -> None:
        if self._abort_requested:
            verb = self._busy or "operation"
            raise ScopeError(f"{verb} was aborted", aborted=True, verb=verb)

    def _require_grid(self) -> CassetteSlot:
        if self._slot is None:
            raise ScopeError("no grid is loaded; load one from the cassette first")
        return self.cassette[self._slot]

    def _image_centre(self) -> tuple[float, float]:
        return (self._stage.x_um + self._image_shift_um[0],
                self._stage.y_um + self._image_shift_um[1])

    def _stage_for_image(self) -> dict[str, Any]:
        s = self._stage
        return {"x_um": s.x_um, "y_um": s.y_um, "z_um": s.z_um, "tilt_deg": s.tilt_deg}

    def _uniform(self, limit: float) -> float:
        return float(self._rng.uniform(-limit, limit)) if limit > 0 else 0.0

    def _disc_sample(self, radius: float) -> tuple[float, float]:
        """A point uniform in a disc of ``radius`` (0 → the centre, without drawing)."""
        if radius <= 0:
            return 0.0, 0.0
        r = radius * math.sqrt(float(self._rng.random()))
        theta = 2 * math.pi * float(self._rng.random())
        return r * math.cos(theta), r * math.sin(theta)
