"""Commands the microscope's state refuses because of the client: 409, on HTTP and on the bus.

A driver reports every refused step as a :class:`~gridpilot.errors.ScopeError` (502: the
instrument failed). Two of them are the client's doing, and retrying them unchanged cannot help:
a verb that images the grid while none is loaded, and a grid load from an empty slot. Both
transports (``POST /v1/commands/{verb}`` and ``scope.<id>.<verb>``) answer them as
:class:`~gridpilot.errors.Conflict` through :func:`execute_for_client`.
"""

from __future__ import annotations

import re
from typing import Final

from gridpilot.contracts import ScopeCommand, ScopeReply, ScopeState
from gridpilot.errors import Conflict, OperatorTookOver, ScopeError

from .gateway import Gateway

__all__ = ["client_state_error", "execute_for_client"]

#: Verbs that image or measure the specimen, so need a grid on the stage.
_NEEDS_GRID: Final[frozenset[str]] = frozenset({"atlas", "acquire", "autofocus", "eucentric_height"})
#: How both drivers word a load from an empty slot ("slot 3 … is empty", "… empty or unreadable").
_EMPTY_SLOT: Final = re.compile(r"\bslot\b.*\bempty\b", re.IGNORECASE)


async def execute_for_client(gateway: Gateway, command: ScopeCommand) -> ScopeReply:
    """Run ``command``; a refusal caused by the client's state is raised as :class:`Conflict`."""
    try:
        return await gateway.execute(command)
    except ScopeError as exc:
        conflict = client_state_error(command.verb, exc, await gateway.state())
        if conflict is None:
            raise
        raise conflict from exc


def client_state_error(verb: str, exc: ScopeError, state: ScopeState) -> Conflict | None:
    """The :class:`Conflict` that ``exc`` really is, when the client's state caused it.

    >>> from gridpilot.contracts import StagePosition
    >>> state = ScopeState(scope_id="k1", driver="twin", stage=StagePosition(x_um=0, y_um=0,
    ...                    z_um=0, tilt_deg=0), image_shift_um=(0, 0), defocus_um=-2,
    ...                    target_defocus_um=-2, magnification="search")
    >>> client_state_error("acquire", ScopeError("no grid is loaded"), state).http_status
    409
    >>> client_state_error("move_stage", ScopeError("stage stuck"), state) is None
    True
    """
    if isinstance(exc, OperatorTookOver):
        return None
    if verb in _NEEDS_GRID and state.slot is None:
        return Conflict(f"{verb} needs a loaded grid and none is loaded; send load_grid "
                        f"first ({exc.message})", verb=verb)
    if verb == "load_grid" and _EMPTY_SLOT.search(exc.message):
        return Conflict(f"the autoloader slot is empty; choose an occupied slot "
                        f"({exc.message})", verb=verb)
    return None
