"""The twin driver: the gateway's :class:`~scope_gateway.driver.Microscope` over the twin.

Runs :class:`~gridpilot_sim.instrument.microscope.TwinMicroscope` in the gateway's own event loop. The
twin's autofocus reports a failure as an outcome; this driver turns it into a
:class:`~gridpilot.errors.ScopeError`, as the SerialEM driver does with SerialEM's status code.
"""

from __future__ import annotations

from typing import Final, Literal

from gridpilot.contracts import StagePosition
from gridpilot.errors import ScopeError
from gridpilot_sim.instrument.microscope import StagePose, TwinImage, TwinMicroscope

from .driver import AtlasCapture, Capture, DriftOutcome, DriverName, InstrumentState

__all__ = ["ZLP_REFINE_S", "TwinDriver", "capture_from_twin"]

#: Microscope seconds of a zero-loss-peak refinement (SerialEM ``RefineZLP``: a few short
#: exposures while the slit scans the peak, with the mode changes around them; an estimate).
ZLP_REFINE_S: Final[float] = 20.0


def _stage(pose: StagePose) -> StagePosition:
    return StagePosition(x_um=pose.x_um, y_um=pose.y_um, z_um=pose.z_um, tilt_deg=pose.tilt_deg)


def capture_from_twin(image: TwinImage) -> Capture:
    """A driver :class:`Capture` of a twin image (truth included)."""
    return Capture(
        kind=image.kind, data=image.data, pixel_size_a=image.pixel_size_a,
        magnification=image.magnification, stage=_stage(image.stage),
        image_to_stage=image.image_to_stage, target_defocus_um=image.target_defocus_um,
        dose_e_per_a2=image.dose_e_per_a2, exposure_time_s=image.exposure_time_s,
        truth=image.truth, tile=image.tile,
    )


class TwinDriver:
    """Drive a :class:`TwinMicroscope` directly."""

    name: DriverName = "twin"

    def __init__(self, twin: TwinMicroscope) -> None:
        self.twin = twin

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        self.twin.abort()

    def connected(self) -> bool:
        return True

    async def load_grid(self, slot: int) -> None:
        await self.twin.load_grid(slot)

    async def atlas(self, tiles_x: int, tiles_y: int) -> AtlasCapture:
        atlas = await self.twin.atlas(tiles_x, tiles_y)
        return AtlasCapture(atlas=capture_from_twin(atlas.stitched),
                            tiles=[capture_from_twin(t) for t in atlas.tiles])

    async def move_stage(self, x_um: float, y_um: float, z_um: float | None) -> StagePosition:
        return _stage(await self.twin.move_stage(x_um, y_um, z_um))

    async def tilt(self, angle_deg: float) -> StagePosition:
        return _stage(await self.twin.tilt(angle_deg))

    async def eucentric_height(self, mode: Literal["rough", "refine", "both"]) -> float:
        return await self.twin.eucentric_height(mode)

    async def autofocus(self, target_defocus_um: float) -> float:
        outcome = await self.twin.autofocus(target_defocus_um)
        if not outcome.ok:
            raise ScopeError(f"autofocus failed (measured {outcome.measured_defocus_um:.2f} µm "
                             "with too little contrast); the focus was not changed",
                             measured_defocus_um=outcome.measured_defocus_um)
        return outcome.measured_defocus_um

    async def drift_wait(self, threshold_a_per_s: float, timeout_s: float) -> DriftOutcome:
        out = await self.twin.drift_wait(threshold_a_per_s, timeout_s)
        return DriftOutcome(out.drift_a_per_s, out.settled, out.waited_s)

    async def image_shift(self, dx_um: float, dy_um: float, absolute: bool) -> tuple[float, float]:
        return await self.twin.image_shift(dx_um, dy_um, absolute=absolute)

    async def reset_image_shift(self) -> StagePosition:
        s = self.twin.state()
        x_um, y_um = s.image_shift_um
        await self.twin.move_stage(s.stage.x_um + x_um, s.stage.y_um + y_um)
        await self.twin.image_shift(0.0, 0.0, absolute=True)
        return _stage(self.twin.state().stage)

    async def refine_zlp(self) -> None:
        # The twin has no energy filter to misalign; it spends the time a refinement takes.
        await self.twin.idle(ZLP_REFINE_S)

    async def change_focus(self, delta_um: float) -> float:
        self.twin.set_focus(self.twin.state().focus_um + delta_um)
        return self.twin.state().focus_um

    async def acquire(self, preset: Literal["search", "view", "record"], frames: int,
                      dose_e_per_a2: float | None, exposure_time_s: float | None) -> Capture:
        image = await self.twin.acquire(preset, frames=frames, dose_e_per_a2=dose_e_per_a2,
                                        exposure_time_s=exposure_time_s)
        return capture_from_twin(image)

    async def state(self) -> InstrumentState:
        s = self.twin.state()
        return InstrumentState(
            slot=s.slot, stage=_stage(s.stage), image_shift_um=s.image_shift_um,
            defocus_um=s.defocus_um, target_defocus_um=s.target_defocus_um, preset=s.preset,
            dewars_filling=s.dewars_filling, scope_clock_s=s.clock_s,
        )

    async def abort(self) -> bool:
        return self.twin.abort()
