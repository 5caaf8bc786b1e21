"""A conformance model of SerialEM's Python module ``serialem``, backed by the twin microscope.

There is no ``serialem`` on PyPI and SerialEM only runs on Windows, so the SerialEM driver is
tested against this model. It is not written from the driver's assumptions: every command's
arguments, what it reports, its indices and its errors come from SerialEM's own sources, and
each is a row of :data:`~scope_gateway.serialem_commands.COMMANDS` with its citation (the
conformance tests check one row each). The pieces:

- :mod:`~scope_gateway.fake_serialem_base` — argument parsing and reports as the compiled
  module does them, scripts (what a STOP resets), the socket, fault injection;
- :mod:`~scope_gateway.fake_serialem_scope` — optics, stage, focus, drift, image shift;
- :mod:`~scope_gateway.fake_serialem_loader` — Thermo/FEI and JEOL autoloaders;
- :mod:`~scope_gateway.fake_serialem_images` — camera, buffers, montage, Navigator, alignment.

Both ways of connecting are modelled: ``FakeSerialEM(twin)`` is the module imported by an
external Python (the socket opens on the first call, at ``ConnectToSEM``'s address when that
is the first call, else 127.0.0.1:48888), ``FakeSerialEM(twin, embedded=True)`` the module
inside SerialEM's own Python (already connected; ``ConnectToSEM`` changes nothing).

>>> from gridpilot_sim.instrument.microscope import TwinMicroscope
>>> from gridpilot_sim.instrument.presets import TwinOptics
>>> from gridpilot_sim.instrument.timing import TimingModel
>>> sem = FakeSerialEM(TwinMicroscope(timing=TimingModel.instant(), optics=TwinOptics.tiny()))
>>> sem.ConnectToSEM(48890, "10.0.0.5")
>>> sem.MoveStageTo(10, 20.5)
>>> sem.ReportStageXYZ(), sem.connected_to
((10.0, 20.5, 0.0), ('10.0.0.5', 48890))
>>> sem.TiltTo("5")
Traceback (most recent call last):
...
TypeError: TiltTo() argument 1 must be real number, not str
>>> sem.close()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gridpilot_sim.instrument.microscope import TwinMicroscope

from .fake_serialem_base import (
    Args,
    SEMerror,
    SEMexited,
    SEMmoduleError,
    command,
    parse_args,
)
from .fake_serialem_images import Camera, ImageCommands
from .fake_serialem_loader import LoaderCommands, Vendor
from .fake_serialem_scope import ScopeCommands
from .serialem_commands import COMMANDS

__all__ = ["FakeSerialEM", "SEMerror", "SEMexited", "SEMmoduleError"]


class FakeSerialEM(ScopeCommands, LoaderCommands, ImageCommands):
    """The ``serialem`` module's functions over a :class:`TwinMicroscope`.

    Args:
        twin: the instrument behind the model.
        vendor: ``thermo`` or ``jeol`` autoloader.
        camera: ``k3``, ``falcon`` or ``de`` (how frame saving is switched).
        embedded: the module inside SerialEM's Python rather than an external process.
        directory: SerialEM's current folder (``SetDirectory`` changes it).
        image_shift_limit_um: beyond it ``ImageShiftByMicrons`` reports 1 and does nothing.
        loader_names: Thermo/FEI: whether ``ReportSlotStatus`` reports names too.
    """

    def __init__(self, twin: TwinMicroscope, *, vendor: Vendor = "thermo",
                 camera: Camera = "k3", embedded: bool = False, directory: Path | None = None,
                 image_shift_limit_um: float = 15.0, loader_names: bool = True) -> None:
        super().__init__(twin, embedded=embedded, vendor=vendor, loader_names=loader_names,
                         camera=camera, directory=directory,
                         image_shift_limit_um=image_shift_limit_um)
        self.log: list[str] = []

    # ---- the module's own functions -------------------------------------------------------------
    def ConnectToSEM(self, *args: Any) -> None:
        """Set the socket's address (first use only) and connect (SerialEMModule.cpp:369)."""
        self.calls.append("ConnectToSEM")
        port, ip = parse_args("ConnectToSEM", COMMANDS["ConnectToSEM"].keys, args)
        if port is not None and port <= 0:
            raise SEMmoduleError("The port number must be positive")
        self._open_socket(port, ip)

    # ---- script control and housekeeping ----------------------------------------------------------
    @command
    def Exit(self, a: Args) -> None:
        self._end_script()
        if not a[0]:
            raise SEMexited("Normal exit")

    @command
    def Echo(self, a: Args) -> None:
        self.log.append(a[0] or "")

    @command
    def SetDirectory(self, a: Args) -> None:
        self.directory = Path(a[0])

    @command
    def AllowFileOverwrite(self, a: Args) -> None:
        self.allow_overwrite = a[0] != 0

    @command
    def NoMessageBoxOnError(self, a: Args) -> None:
        self.no_message_box = a[0] is None or a[0] != 0
