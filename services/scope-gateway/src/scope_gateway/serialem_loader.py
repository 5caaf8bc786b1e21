"""Grid exchange through SerialEM on a Thermo/FEI or a JEOL autoloader, behind one call.

The gateway's ``load_grid`` names a cassette *slot* (1–12). The two autoloaders differ
(see ``ReportSlotStatus``, ``ReportLoadedSlot``, ``LoadCartridge`` in
:data:`~scope_gateway.serialem_commands.COMMANDS`):

- Thermo/FEI takes slots. ``ReportLoadedSlot`` says which slot is on the stage;
  ``ReportSlotStatus`` is 1 for a cartridge waiting in the cassette and 0 for an empty slot
  *or the one on the stage*, -1 unknown, below that an error.
- JEOL takes indices into an inventory (``LongOperation('In')`` first); each entry reports
  its station (1 magazine, 3 stage) and its slot, so the slot's index is looked up.

Both follow SmartScope's sequence around the exchange: wait for the dewars, close the column
valves, load, check the cartridge is on the stage, open the valves again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final, Literal

from gridpilot.errors import ScopeError

__all__ = ["load_cartridge", "loaded_slot", "unload_cartridge"]

logger = logging.getLogger(__name__)

_THERMO_OCCUPIED: Final[int] = 1
_THERMO_EMPTY: Final[int] = 0
_THERMO_UNKNOWN: Final[int] = -1
_JEOL_STATION_STAGE: Final[int] = 3
_JEOL_FIELDS: Final[int] = 6
_JEOL_MAX_INDEX: Final[int] = 64

Autoloader = Literal["thermo", "jeol"]


def _values(reported: Any) -> tuple[Any, ...]:
    return tuple(reported) if isinstance(reported, tuple | list) else (reported,)


def _jeol_index_of(sem: Any, slot: int) -> tuple[int, bool]:
    """(inventory index from 1, whether it is on the stage) of the cartridge from ``slot``."""
    for index in range(1, _JEOL_MAX_INDEX + 1):
        entry = _values(sem.ReportSlotStatus(index))
        if len(entry) < _JEOL_FIELDS:
            break  # a single -1: past the end of the inventory
        if int(entry[2]) == slot:
            return index, int(entry[1]) == _JEOL_STATION_STAGE
    raise ScopeError(f"autoloader slot {slot} is empty: the JEOL inventory has no cartridge "
                     "from it", slot=slot)


def loaded_slot(sem: Any, autoloader: Autoloader) -> int | None:
    """The cassette slot whose cartridge is on the stage, or None."""
    first = float(_values(sem.ReportLoadedSlot())[0])
    if autoloader == "thermo":
        return int(first) if first > 0 else None
    if first < 0:
        return None
    entry = _values(sem.ReportSlotStatus(int(first) + 1))
    return int(entry[2]) if len(entry) >= _JEOL_FIELDS else None


def load_cartridge(sem: Any, slot: int, autoloader: Autoloader,
                   wait: Callable[[Any], None]) -> None:
    """Put the cartridge of ``slot`` on the stage (nothing when it is there already).

    Args:
        sem: the serialem module.
        slot: the cassette slot, from 1.
        autoloader: ``thermo`` or ``jeol``.
        wait: waits for the dewars (and honours an abort) before anything moves.

    Raises:
        ScopeError: the slot is empty, unknown or in error, or the cartridge did not arrive.
    """
    if loaded_slot(sem, autoloader) == slot:
        return
    if autoloader == "thermo":
        status = int(float(_values(sem.ReportSlotStatus(slot))[0]))
        if status == _THERMO_EMPTY:
            raise ScopeError(f"autoloader slot {slot} is empty", slot=slot)
        if status != _THERMO_OCCUPIED:
            what = "unknown" if status == _THERMO_UNKNOWN else f"in error ({status})"
            raise ScopeError(f"the status of autoloader slot {slot} is {what}", slot=slot)
        target = slot
    else:
        target, on_stage = _jeol_index_of(sem, slot)
        if on_stage:
            return
    wait(sem)
    sem.SetColumnOrGunValve(0)
    sem.LoadCartridge(target)
    if loaded_slot(sem, autoloader) != slot:
        raise ScopeError(f"the cartridge of slot {slot} is not on the stage after "
                         "LoadCartridge; the column valves stay closed", slot=slot)
    sem.SetColumnOrGunValve(1)
    logger.info("SerialEM loaded slot %d (%s autoloader)", slot, autoloader)


def unload_cartridge(sem: Any, autoloader: Autoloader) -> int | None:
    """Return the cartridge on the stage to the cassette; the slot it came from, or None."""
    slot = loaded_slot(sem, autoloader)
    if slot is None:
        return None
    sem.SetColumnOrGunValve(0)
    sem.UnloadCartridge()
    if loaded_slot(sem, autoloader) is not None:
        raise ScopeError(f"the cartridge of slot {slot} is still on the stage after "
                         "UnloadCartridge", slot=slot)
    return slot
