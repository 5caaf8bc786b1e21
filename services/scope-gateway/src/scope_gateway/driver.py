"""The one interface the gateway drives a microscope through, and what it returns.

Two drivers implement :class:`Microscope`: :class:`~scope_gateway.twin_driver.TwinDriver`
(the digital twin, in-process) and :class:`~scope_gateway.serialem_driver.SerialEMDriver`
(SerialEM's Python module, or :mod:`scope_gateway.fake_serialem` in tests). The gateway checks
the lease, the allow-list and the stage limits before it calls a driver; a driver only drives.

Going to a square or a hole is a :meth:`Microscope.move_stage` to the target's stage
coordinates (found on the atlas or the square image through ``image_to_stage``).

Errors: a driver raises :class:`~gridpilot.errors.ScopeError` when the instrument refused or
failed a step (its message kept), :class:`~gridpilot.errors.OperatorTookOver` when the operator
pressed STOP, and :class:`~gridpilot.errors.TransientError` when the connection failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from gridpilot.contracts import StagePosition
from gridpilot.contracts.scope import ImageKind, Preset

__all__ = [
    "Affine",
    "AtlasCapture",
    "Capture",
    "DriftOutcome",
    "DriverName",
    "InstrumentState",
    "Microscope",
]

DriverName = Literal["twin", "serialem"]
Affine = tuple[tuple[float, float, float], tuple[float, float, float]]


@dataclass(frozen=True)
class Capture:
    """One image as the instrument delivered it.

    Attributes:
        kind: atlas, atlas_tile, search, view or record.
        data: (H, W) float32 image, or (N, H, W) frames of a movie.
        pixel_size_a: pixel size in Å.
        magnification: nominal magnification.
        stage: where the stage was.
        image_to_stage: (col, row, 1) → stage (x, y) µm.
        target_defocus_um: the target defocus when it was taken.
        dose_e_per_a2: total dose, when known.
        exposure_time_s: exposure time.
        truth: the twin's ground truth (JSON-able), None from a real microscope.
        tile: (column, row) of an atlas tile.
    """

    kind: ImageKind
    data: npt.NDArray[np.float32]
    pixel_size_a: float
    magnification: int
    stage: StagePosition
    image_to_stage: Affine
    target_defocus_um: float | None = None
    dose_e_per_a2: float | None = None
    exposure_time_s: float | None = None
    truth: dict[str, Any] | None = None
    tile: tuple[int, int] | None = None

    @property
    def frame_count(self) -> int:
        return int(self.data.shape[0]) if self.data.ndim == 3 else 1


@dataclass(frozen=True)
class AtlasCapture:
    """A stitched atlas and its tiles."""

    atlas: Capture
    tiles: list[Capture] = field(default_factory=list)


@dataclass(frozen=True)
class DriftOutcome:
    drift_a_per_s: float
    settled: bool
    waited_s: float


@dataclass(frozen=True)
class InstrumentState:
    """What the driver knows about the instrument now."""

    slot: int | None
    stage: StagePosition
    image_shift_um: tuple[float, float]
    defocus_um: float
    target_defocus_um: float
    preset: Preset
    dewars_filling: bool = False
    scope_clock_s: float = 0.0


class Microscope(Protocol):
    """What every driver offers (all calls are async; one instrument operation at a time)."""

    name: DriverName

    async def connect(self) -> None:
        """Open the connection and prepare the instrument (no motion)."""

    async def close(self) -> None:
        """Give control back (SerialEM: close the valves, ``Exit``)."""

    def connected(self) -> bool:
        """Whether the instrument answers (for ``/readyz``)."""

    async def load_grid(self, slot: int) -> None:
        """Exchange grids through the autoloader."""

    async def atlas(self, tiles_x: int, tiles_y: int) -> AtlasCapture:
        """A montage of tiles around the stage position, stitched."""

    async def move_stage(self, x_um: float, y_um: float, z_um: float | None) -> StagePosition:
        """Move the stage; returns where it arrived."""

    async def tilt(self, angle_deg: float) -> StagePosition:
        """Tilt the stage; returns the stage position."""

    async def eucentric_height(self, mode: Literal["rough", "refine", "both"]) -> float:
        """Find the eucentric height; returns the z change in µm."""

    async def autofocus(self, target_defocus_um: float) -> float:
        """Set the target, autofocus; returns the defocus measured before correcting."""

    async def drift_wait(self, threshold_a_per_s: float, timeout_s: float) -> DriftOutcome:
        """Wait until drift falls below the threshold or the time is up."""

    async def image_shift(self, dx_um: float, dy_um: float, absolute: bool) -> tuple[float, float]:
        """Shift the image; returns the image shift now (µm)."""

    async def reset_image_shift(self) -> StagePosition:
        """Zero the image shift and move the stage to keep the same area; the stage after."""

    async def change_focus(self, delta_um: float) -> float:
        """Change the objective focus by ``delta_um``; returns the focus reading after it."""

    async def refine_zlp(self) -> None:
        """Refine the energy filter's zero-loss peak; ScopeError where there is no filter."""

    async def acquire(self, preset: Literal["search", "view", "record"], frames: int,
                      dose_e_per_a2: float | None, exposure_time_s: float | None) -> Capture:
        """One image with a low-dose preset (a movie with ``record`` and frames > 1)."""

    async def state(self) -> InstrumentState:
        """The instrument's state (never waits for a running operation)."""

    async def abort(self) -> bool:
        """Stop the running acquisition; False when nothing was running."""
