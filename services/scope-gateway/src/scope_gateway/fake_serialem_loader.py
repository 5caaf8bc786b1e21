"""The fake's autoloader: Thermo/FEI and JEOL, as SerialEM reports them.

Thermo/FEI (``vendor="thermo"``) works on cassette slots numbered from 1:
``ReportSlotStatus(slot)`` is 1 occupied, 0 empty — and 0 too for the slot whose grid is on
the stage — -1 unknown, with the cartridge's name after it when the TUI shows names
(EMscope.cpp 7560-7605, MacroCommands.cpp 10155-10185). ``ReportLoadedSlot`` says which slot
is on the stage (MacroCommands.cpp 10217-10232).

JEOL (``vendor="jeol"``) works on an *inventory* that ``LongOperation('In')`` must take first:
``ReportSlotStatus(index)`` (from 1) reports ``(id, station, slot, type, angle, name)`` with
station 1 magazine and 3 stage, or a single -1 past the end; ``LoadCartridge(index)`` refuses
a cartridge already on the stage; ``ReportLoadedSlot`` gives the index from 0 and the id
(MacroCommands.cpp 10140-10153, 10233-10244; EMscope.cpp 7644-7716).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from .fake_serialem_base import Args, FakeBase, SEMerror, command

__all__ = ["LoaderCommands", "Vendor"]

Vendor = Literal["thermo", "jeol"]

_SLOTS: Final[range] = range(1, 13)
_JEOL_STATION_MAGAZINE: Final[int] = 1
_JEOL_STATION_STAGE: Final[int] = 3
_JEOL_REGULAR_CARTRIDGE: Final[int] = 1
_JEOL_ANGLE_REGULAR: Final[int] = 3
_JEOL_ID_BASE: Final[int] = 100


class LoaderCommands(FakeBase):
    """Autoloader commands of one vendor over the twin's cassette."""

    def __init__(self, *args: Any, vendor: Vendor = "thermo", loader_names: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vendor: Vendor = vendor
        self.loader_names = loader_names
        self._inventory: list[int] | None = None  # JEOL: the cassette slot of each index
        self._unloaded = False

    # ---- helpers --------------------------------------------------------------------------------
    def _on_stage(self) -> int | None:
        return None if self._unloaded else self.twin.state().slot

    def _jeol_inventory(self) -> list[int]:
        if self._inventory is None:
            raise SEMerror("You need to do a cassette inventory; There is no cartridge "
                           "information for: ReportSlotStatus")
        return self._inventory

    def _load(self, slot: int) -> None:
        self._run(self.twin.load_grid(slot))
        self._unloaded = False

    # ---- commands -------------------------------------------------------------------------------
    @command
    def LongOperation(self, a: Args) -> tuple[float, float]:
        for op in (x for x in a if x is not None):
            if op[:2].lower() == "in":
                self._inventory = sorted(self.twin.cassette)
        return 0.0, 0.0

    @command
    def ReportSlotStatus(self, a: Args) -> Any:
        if self.vendor == "jeol":
            inventory = self._jeol_inventory()
            if not 1 <= a[0] <= len(inventory):
                return -1.0
            slot = inventory[a[0] - 1]
            station = _JEOL_STATION_STAGE if slot == self._on_stage() else _JEOL_STATION_MAGAZINE
            return (_JEOL_ID_BASE + slot, station, slot, _JEOL_REGULAR_CARTRIDGE,
                    _JEOL_ANGLE_REGULAR, self.twin.cassette[slot].name)
        if a[0] not in _SLOTS:
            raise SEMerror(f"Error getting status of autoloader cassette slot {a[0]}")
        occupied = a[0] in self.twin.cassette and a[0] != self._on_stage()
        if not self.loader_names:
            return float(occupied)
        grid = self.twin.cassette.get(a[0])
        return float(occupied), grid.name if grid else ""

    @command
    def ReportLoadedSlot(self, a: Args) -> tuple[float, float]:
        on_stage = self._on_stage()
        if self.vendor == "thermo":
            return float(on_stage or 0), 0.0
        inventory = self._jeol_inventory()
        if on_stage is None or on_stage not in inventory:
            return -1.0, -1.0
        return float(inventory.index(on_stage)), float(_JEOL_ID_BASE + on_stage)

    @command
    def LoadCartridge(self, a: Args) -> None:
        if self.vendor == "thermo":
            if a[0] not in self.twin.cassette:
                raise SEMerror("There was an error trying to load a cartridge in: "
                               f"LoadCartridge {a[0]}")
            self._load(a[0])
            return
        inventory = self._jeol_inventory()
        if not 1 <= a[0] <= len(inventory):
            raise SEMerror(f"Slot number or index is out of range in: LoadCartridge {a[0]}")
        if inventory[a[0] - 1] == self._on_stage():
            raise SEMerror("The cartridge is already in the stage according to the current "
                           f"inventory in: LoadCartridge {a[0]}")
        self._load(inventory[a[0] - 1])

    @command
    def UnloadCartridge(self, a: Args) -> None:
        if self.vendor == "jeol":
            self._jeol_inventory()
            if self._on_stage() is None:
                raise SEMerror("There is no cartridge in the stage according to the current "
                               "inventory in: UnloadCartridge")
        self._unloaded = True
