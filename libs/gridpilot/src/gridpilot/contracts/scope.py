"""Microscope commands and replies (``scope.<scope_id>.<verb>``) and ``evt.image.acquired``.

Every command carries a ``command_id``; the gateway answers a repeat with the first answer.
Positions are stage coordinates in µm, angles in degrees, defocus in µm (negative = underfocus,
SerialEM's convention for *target* defocus), doses in e/Å².

A command's ``params`` are validated against ``SCOPE_VERBS[verb]``; a successful reply's
``result`` is the JSON form of ``SCOPE_RESULTS[verb]``. The lease is taken, renewed and released
on ``scope.<scope_id>.lease`` (:data:`LEASE_VERB`) with a :class:`LeaseRequest` and answered
with a :class:`LeaseInfo`.

>>> cmd = ScopeCommand(session_id="s1", verb="move_stage", params={"x_um": 10.0, "y_um": -5.0})
>>> SCOPE_VERBS[cmd.verb].model_validate(cmd.params).x_um
10.0
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field

from .base import Id, Message, ObjectKey, new_id, utcnow

__all__ = [
    "LEASE_VERB",
    "SCOPE_RESULTS",
    "SCOPE_VERBS",
    "AbortResult",
    "AcquireParams",
    "AcquireResult",
    "AtlasParams",
    "AtlasResult",
    "AutofocusParams",
    "AutofocusResult",
    "ChangeFocusParams",
    "DriftWaitParams",
    "DriftWaitResult",
    "EucentricParams",
    "EucentricResult",
    "FocusResult",
    "ImageAcquired",
    "ImageKind",
    "ImageShiftParams",
    "ImageShiftResult",
    "LeaseInfo",
    "LeaseRequest",
    "LoadGridParams",
    "LoadGridResult",
    "MoveStageParams",
    "NoParams",
    "NoResult",
    "Preset",
    "ScopeCommand",
    "ScopeReply",
    "ScopeState",
    "StagePosition",
    "StageResult",
    "TiltParams",
    "ZlpResult",
]

ImageKind = Literal["atlas", "atlas_tile", "search", "view", "record"]
#: Low-dose presets (SerialEM low-dose areas Search, View, Record) plus the atlas optics.
Preset = Literal["atlas", "search", "view", "record"]

#: The subject token of lease requests: ``scope.<scope_id>.lease``.
LEASE_VERB: Final[str] = "lease"

_Finite = Annotated[float, Field(allow_inf_nan=False)]


class StagePosition(Message):
    x_um: float
    y_um: float
    z_um: float = 0.0
    tilt_deg: float = 0.0


# ---- command parameters -------------------------------------------------------------------------
class NoParams(Message):
    pass


class LoadGridParams(Message):
    """Exchange grids: load the cartridge in autoloader ``slot`` and call it ``grid_id``."""

    slot: int = Field(ge=1, le=12, description="autoloader cassette slot")
    grid_id: Id


class AtlasParams(Message):
    tiles_x: int = Field(3, ge=1, le=12)
    tiles_y: int = Field(3, ge=1, le=12)


class MoveStageParams(Message):
    """Move the stage to absolute (x, y[, z]) µm, e.g. to a square or a hole found earlier.

    The stage limits (a 975 µm radius, the z range) are checked by the gateway, which refuses
    a move outside them with ``UnsafeCommand`` before anything moves.
    """

    x_um: _Finite
    y_um: _Finite
    z_um: _Finite | None = None
    target_id: Id | None = Field(None, description="the square or hole this move goes to")


class TiltParams(Message):
    angle_deg: _Finite


class EucentricParams(Message):
    mode: Literal["rough", "refine", "both"] = "rough"


class AutofocusParams(Message):
    target_defocus_um: float = Field(-2.0, ge=-10.0, le=0.0)


class DriftWaitParams(Message):
    threshold_a_per_s: float = Field(1.0, gt=0, le=100)
    timeout_s: float = Field(60.0, gt=0, le=3600)


class ImageShiftParams(Message):
    """Shift the image by (dx, dy) µm, or set it to (dx, dy) µm when ``absolute``."""

    dx_um: float = Field(ge=-20.0, le=20.0)
    dy_um: float = Field(ge=-20.0, le=20.0)
    absolute: bool = False


class ChangeFocusParams(Message):
    """Change the objective focus by ``delta_um`` (e.g. the defocus after an image shift)."""

    delta_um: float = Field(ge=-10.0, le=10.0)


class AcquireParams(Message):
    """An acquisition with one of the low-dose presets (``record`` saves a movie)."""

    preset: Literal["search", "view", "record"]
    frames: int = Field(1, ge=1, le=200)
    total_dose_e_per_a2: float | None = Field(None, gt=0, le=200)
    exposure_time_s: float | None = Field(None, gt=0, le=60)
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
    #: Zero the image shift and move the stage to keep the same area (limits checked first).
    "reset_image_shift": NoParams,
    "change_focus": ChangeFocusParams,
    #: Refine the energy filter's zero-loss peak (SerialEM ``RefineZLP``) at the current area.
    "refine_zlp": NoParams,
    "acquire": AcquireParams,
    "state": NoParams,
    "abort": NoParams,
    "resume": NoParams,
}


class ScopeCommand(Message):
    """A command to one microscope; ``params`` is validated against ``SCOPE_VERBS[verb]``."""

    summary: ClassVar[str] = "A command to a microscope (request/reply)."
    command_id: Id = Field(default_factory=lambda: new_id("cmd_"))
    session_id: Id
    verb: str
    params: dict[str, Any] = Field(default_factory=dict)


class ScopeState(Message):
    """What the microscope is doing and where it is."""

    scope_id: Id
    driver: Literal["twin", "serialem"]
    grid_id: Id | None = None
    slot: int | None = None
    stage: StagePosition
    image_shift_um: tuple[float, float] = (0.0, 0.0)
    defocus_um: float = 0.0
    target_defocus_um: float = -2.0
    magnification: Preset = "atlas"
    busy: bool = False
    #: The verb being executed, when busy.
    current_verb: str | None = None
    lease_holder: Id | None = None
    #: SerialEM's STOP was pressed: commands are refused until ``resume``.
    paused_by_operator: bool = False
    dewars_filling: bool = False
    #: Microscope seconds the instrument has spent working (the twin's clock).
    scope_clock_s: float = 0.0


class ImageAcquired(Message):
    """An image was acquired and stored; pixels are at ``key`` in object storage.

    Ground truth never travels on the bus: the twin driver keeps it beside the image (at
    ``storage.keys.truth_key(key)``), where only tests and benches look for it.
    """

    summary: ClassVar[str] = "An image was acquired and stored (atlas, square, view, movie)."
    image_id: Id = Field(default_factory=lambda: new_id("img_"))
    scope_id: Id
    session_id: Id
    grid_id: Id | None = None
    target_id: Id | None = None
    command_id: Id | None = None
    key: ObjectKey
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
    #: (column, row) of an atlas tile in its montage.
    tile: tuple[int, int] | None = None
    acquired_at: datetime = Field(default_factory=utcnow)


# ---- results ------------------------------------------------------------------------------------
class NoResult(Message):
    pass


class LoadGridResult(Message):
    grid_id: Id
    slot: int


class AtlasResult(Message):
    """The stitched atlas, and the keys of its tiles (each also announced by an event)."""

    atlas: ImageAcquired
    tile_keys: list[ObjectKey]


class StageResult(Message):
    """Where the stage is after a move or a tilt (it may differ from where it was sent)."""

    stage: StagePosition


class EucentricResult(Message):
    z_um: float
    dz_um: float


class AutofocusResult(Message):
    #: The defocus measured before the focus was corrected, µm.
    measured_defocus_um: float
    target_defocus_um: float


class DriftWaitResult(Message):
    drift_a_per_s: float
    settled: bool
    waited_s: float


class ImageShiftResult(Message):
    image_shift_um: tuple[float, float]


class FocusResult(Message):
    #: The defocus at the specimen after the change, µm (negative = underfocus).
    defocus_um: float


class ZlpResult(Message):
    """The energy filter's zero-loss peak was refined (its slit re-centred on the ZLP)."""

    #: The microscope's clock when it was done (the twin's; 0 where the driver has none), s.
    scope_clock_s: float = 0.0


class AcquireResult(Message):
    image: ImageAcquired


class AbortResult(Message):
    #: Whether an operation was running and was asked to stop.
    aborted: bool


#: Verb → the model of a successful reply's ``result``.
SCOPE_RESULTS: dict[str, type[Message]] = {
    "load_grid": LoadGridResult,
    "atlas": AtlasResult,
    "move_stage": StageResult,
    "tilt": StageResult,
    "eucentric_height": EucentricResult,
    "autofocus": AutofocusResult,
    "drift_wait": DriftWaitResult,
    "image_shift": ImageShiftResult,
    "reset_image_shift": StageResult,
    "change_focus": FocusResult,
    "refine_zlp": ZlpResult,
    "acquire": AcquireResult,
    "state": NoResult,
    "abort": AbortResult,
    "resume": NoResult,
}


class ScopeReply(Message):
    """The reply to a command; a failed command is an error reply, not a ScopeReply.

    ``repeated`` is true when the gateway answered a repeated ``command_id`` from memory
    (nothing moved the second time).
    """

    summary: ClassVar[str] = "The reply to a microscope command."
    command_id: Id
    verb: str
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    state: ScopeState | None = None
    repeated: bool = False


class LeaseRequest(Message):
    """Take (or renew, by the holder) or release a microscope's exclusive lease."""

    session_id: Id
    #: Seconds the lease lasts from now; the gateway's default when not given.
    ttl_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    action: Literal["take", "renew", "release"] = "take"


class LeaseInfo(Message):
    summary: ClassVar[str] = "Who holds a microscope's lease (evt.scope.lease.changed)."
    scope_id: Id
    holder: Id | None
    expires_at: datetime | None
    ttl_s: float | None = None
