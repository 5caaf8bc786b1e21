"""Microscope commands and replies (``scope.<scope_id>.<verb>``) and ``evt.image.acquired``.

Every command carries a ``command_id``; the gateway answers a repeat with the first answer.
Positions are stage coordinates in µm, angles in degrees, defocus in µm (negative = underfocus,
SerialEM's convention for *target* defocus), doses in e/Å².
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from .base import Id, Message, new_id, utcnow

__all__ = [
    "AcquireParams",
    "AtlasParams",
    "AutofocusParams",
    "DriftWaitParams",
    "EucentricParams",
    "ImageAcquired",
    "ImageKind",
    "ImageShiftParams",
    "LeaseInfo",
    "LeaseRequest",
    "LoadGridParams",
    "MoveStageParams",
    "NoParams",
    "SCOPE_VERBS",
    "ScopeCommand",
    "ScopeReply",
    "ScopeState",
    "StagePosition",
    "TiltParams",
]

ImageKind = Literal["atlas", "atlas_tile", "search", "view", "record"]


class StagePosition(Message):
    x_um: float
    y_um: float
    z_um: float = 0.0
    tilt_deg: float = 0.0


class NoParams(Message):
    pass


class LoadGridParams(Message):
    slot: int = Field(ge=1, le=12, description="autoloader cassette slot")
    grid_id: Id


class AtlasParams(Message):
    tiles_x: int = Field(3, ge=1, le=12)
    tiles_y: int = Field(3, ge=1, le=12)


class MoveStageParams(Message):
    x_um: float
    y_um: float
    z_um: float | None = None


class TiltParams(Message):
    angle_deg: float


class EucentricParams(Message):
    mode: Literal["rough", "refine", "both"] = "rough"


class AutofocusParams(Message):
    target_defocus_um: float = Field(-2.0, ge=-10.0, le=0.0)


class DriftWaitParams(Message):
    threshold_a_per_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(60.0, gt=0, le=3600)


class ImageShiftParams(Message):
    dx_um: float = Field(ge=-20.0, le=20.0)
    dy_um: float = Field(ge=-20.0, le=20.0)


class AcquireParams(Message):
    """An acquisition with one of the low-dose presets."""

    preset: Literal["search", "view", "record"]
    frames: int = Field(1, ge=1, le=200)
    total_dose_e_per_a2: float | None = Field(None, gt=0, le=200)
    target_id: Id | None = None


#: Verb → its parameter model. The gateway refuses any verb not listed here.
SCOPE_VERBS: dict[str, type[Message]] = {
    "load_grid": LoadGridParams,
    "atlas": AtlasParams,
    "move_stage": MoveStageParams,
    "tilt": TiltParams,
    "eucentric_height": EucentricParams,
    "autofocus": AutofocusParams,
    "drift_wait": DriftWaitParams,
    "image_shift": ImageShiftParams,
    "acquire": AcquireParams,
    "state": NoParams,
    "abort": NoParams,
}


class ScopeCommand(Message):
    """A command to one microscope; ``params`` is validated against ``SCOPE_VERBS[verb]``."""

    summary: ClassVar[str] = "A command to a microscope (request/reply)."
    command_id: Id = Field(default_factory=lambda: new_id("cmd_"))
    session_id: Id
    verb: str
    params: dict[str, Any] = Field(default_factory=dict)


class ScopeState(Message):
    scope_id: Id
    driver: Literal["twin", "serialem"]
    grid_id: Id | None = None
    stage: StagePosition
    image_shift_um: tuple[float, float] = (0.0, 0.0)
    defocus_um: float = 0.0
    target_defocus_um: float = -2.0
    magnification: Literal["atlas", "search", "view", "record"] = "atlas"
    busy: bool = False
    lease_holder: Id | None = None
    paused_by_operator: bool = False


class ScopeReply(Message):
    summary: ClassVar[str] = "The reply to a microscope command."
    command_id: Id
    verb: str
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    state: ScopeState | None = None
    repeated: bool = False


class LeaseRequest(Message):
    session_id: Id
    ttl_s: Annotated[float, Field(gt=0, le=3600)] = 60.0


class LeaseInfo(Message):
    scope_id: Id
    holder: Id | None
    expires_at: datetime | None
    summary: ClassVar[str] = "Who holds a microscope's lease (evt.scope.lease.changed)."


class ImageAcquired(Message):
    """An image was acquired and stored; pixels are at ``key`` in object storage."""

    summary: ClassVar[str] = "An image was acquired and stored (atlas, square, view, movie)."
    image_id: Id = Field(default_factory=lambda: new_id("img_"))
    scope_id: Id
    session_id: Id
    grid_id: Id | None = None
    target_id: Id | None = None
    command_id: Id | None = None
    key: str
    truth_key: str | None = None
    kind: ImageKind
    shape: tuple[int, ...]
    pixel_size_a: float = Field(gt=0)
    stage: StagePosition
    magnification: int = Field(gt=0, description="nominal magnification")
    target_defocus_um: float | None = None
    dose_e_per_a2: float | None = None
    frame_count: int = Field(1, ge=1)
    voltage_kv: float = 300.0
    #: 2×3 affine mapping (column, row, 1) in pixels to stage (x, y) in µm.
    image_to_stage: tuple[tuple[float, float, float], tuple[float, float, float]]
    acquired_at: datetime = Field(default_factory=utcnow)
