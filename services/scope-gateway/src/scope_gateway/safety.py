"""What the gateway lets through: an allow-list of verbs, valid parameters, stage limits.

Every check here runs before anything moves. A verb outside :data:`SCOPE_VERBS` and a position
outside the stage limits are :class:`~gridpilot.errors.UnsafeCommand` (HTTP 403); parameters
that do not fit the verb's model are :class:`~gridpilot.errors.InvalidInput` (HTTP 422). There
is no verb for the column valves, the gun or the vacuum: the gateway drives those only inside
the autoloader sequence of ``load_grid``, as SmartScope does.

>>> limits = StageLimits()
>>> check_stage_target(limits, x_um=1000.0, y_um=0.0, z_um=None)
Traceback (most recent call last):
...
gridpilot.errors.UnsafeCommand: stage target (1000.0, 0.0) µm is 1000.0 µm from the centre; the limit is 975.0 µm
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from gridpilot.contracts import SCOPE_VERBS, Message
from gridpilot.contracts.scope import ImageShiftParams, MoveStageParams, TiltParams
from gridpilot.errors import InvalidInput, UnsafeCommand

__all__ = [
    "DEFAULT_STAGE_RADIUS_UM",
    "StageLimits",
    "check_allowed",
    "check_limits",
    "check_stage_target",
    "parse_params",
]

#: SmartScope's stage-limit radius around the grid centre (SMARTSCOPE-NOTES 2.11).
DEFAULT_STAGE_RADIUS_UM: Final[float] = 975.0
#: Krios stage tilt range used for screening and tilted collection.
DEFAULT_TILT_LIMIT_DEG: Final[float] = 70.0
#: SmartScope only moves z within ±200 µm (SMARTSCOPE-NOTES 2.9, eucentric search).
DEFAULT_Z_LIMIT_UM: Final[float] = 200.0
#: Largest total image shift SerialEM is asked for (BIS radius ≤ 4 µm in practice).
DEFAULT_IMAGE_SHIFT_LIMIT_UM: Final[float] = 20.0


@dataclass(frozen=True)
class StageLimits:
    """Where the stage may go: a disc of ``radius_um`` around (0, 0), |z| and |tilt| bounds."""

    radius_um: float = DEFAULT_STAGE_RADIUS_UM
    z_limit_um: float = DEFAULT_Z_LIMIT_UM
    tilt_limit_deg: float = DEFAULT_TILT_LIMIT_DEG
    image_shift_limit_um: float = DEFAULT_IMAGE_SHIFT_LIMIT_UM


def check_allowed(verb: str) -> None:
    """Raise :class:`UnsafeCommand` unless ``verb`` is in the allow-list."""
    if verb not in SCOPE_VERBS:
        raise UnsafeCommand(
            f"verb {verb!r} is not allowed; allowed verbs: {', '.join(sorted(SCOPE_VERBS))}",
            verb=verb)


def parse_params(verb: str, params: dict[str, Any]) -> Message:
    """Validate ``params`` against the verb's model.

    Raises:
        UnsafeCommand: the verb is not in the allow-list.
        InvalidInput: the parameters do not fit; the message names the first bad field.
    """
    check_allowed(verb)
    try:
        return SCOPE_VERBS[verb].model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first.get("loc", ())) or "params"
        raise InvalidInput(f"{verb}: {where}: {first.get('msg', 'invalid')}", verb=verb,
                           field=where) from None


def check_stage_target(limits: StageLimits, *, x_um: float, y_um: float,
                       z_um: float | None) -> None:
    """Raise :class:`UnsafeCommand` when (x, y, z) lies outside the stage limits."""
    r_um = math.hypot(x_um, y_um)
    if not math.isfinite(r_um) or r_um > limits.radius_um:
        raise UnsafeCommand(
            f"stage target ({x_um}, {y_um}) µm is {r_um:.1f} µm from the centre; "
            f"the limit is {limits.radius_um} µm", x_um=x_um, y_um=y_um)
    if z_um is not None and not abs(z_um) <= limits.z_limit_um:
        raise UnsafeCommand(f"stage z {z_um} µm is outside ±{limits.z_limit_um} µm", z_um=z_um)


def check_limits(limits: StageLimits, verb: str, params: Message,
                 image_shift_um: tuple[float, float],
                 stage_um: tuple[float, float] = (0.0, 0.0)) -> None:
    """Raise :class:`UnsafeCommand` when a parsed command would leave the limits.

    Args:
        limits: the stage limits.
        verb: the command's verb.
        params: its parsed parameters.
        image_shift_um: the current image shift, for relative image shifts.
        stage_um: the current stage (x, y): ``reset_image_shift`` moves it by the image shift.
    """
    if verb == "reset_image_shift":
        check_stage_target(limits, x_um=stage_um[0] + image_shift_um[0],
                           y_um=stage_um[1] + image_shift_um[1], z_um=None)
    elif isinstance(params, MoveStageParams):
        check_stage_target(limits, x_um=params.x_um, y_um=params.y_um, z_um=params.z_um)
    elif isinstance(params, TiltParams):
        if not abs(params.angle_deg) <= limits.tilt_limit_deg:
            raise UnsafeCommand(f"tilt {params.angle_deg}° is outside ±{limits.tilt_limit_deg}°",
                                angle_deg=params.angle_deg)
    elif isinstance(params, ImageShiftParams):
        x, y = (params.dx_um, params.dy_um) if params.absolute else (
            image_shift_um[0] + params.dx_um, image_shift_um[1] + params.dy_um)
        if math.hypot(x, y) > limits.image_shift_limit_um:
            raise UnsafeCommand(
                f"image shift would reach ({x:.2f}, {y:.2f}) µm, beyond "
                f"{limits.image_shift_limit_um} µm", verb=verb)
