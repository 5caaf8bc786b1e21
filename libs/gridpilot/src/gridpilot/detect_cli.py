"""Run a detector locally on an image file: ``gridpilot detect KIND FILE …``.

Each detector service registers its kind through the ``gridpilot.detect`` entry-point group (a
module with ``add_args(parser)`` and ``main(args)``, its docstring the help), so the library
never imports a service:

  gridpilot detect atlas ATLAS.mrc [--pixel-size-um P] [--json OUT] [--png OUT]
  gridpilot detect holes SQUARE.mrc [--pixel-size-nm P] [--hole-size-um D] [--json OUT] [--png OUT]
"""

from __future__ import annotations

import argparse
import importlib
from importlib.metadata import entry_points
from types import ModuleType

__all__ = ["add_args", "detectors", "main"]

GROUP = "gridpilot.detect"


def detectors() -> dict[str, str]:
    """Installed detector kinds: name → module path."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def add_args(parser: argparse.ArgumentParser) -> None:
    found = detectors()
    sub = parser.add_subparsers(dest="detect_kind", metavar="KIND", required=True)
    for name, target in sorted(found.items()):
        module: ModuleType = importlib.import_module(target)
        first = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=first[0] if first else name, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(p)
        p.set_defaults(_detect_module=module)
    if not found:
        parser.epilog = "no detector is installed (install services/atlas-detector or hole-finder)"


def main(args: argparse.Namespace) -> int:
    return int(args._detect_module.main(args) or 0)
