"""Run a detector locally on an image file: ``gridpilot detect KIND FILE …``.

Each detector service registers its kind through the ``gridpilot.detect`` entry-point group (a
module with ``add_args(parser)`` and ``main(args)``, its docstring the help), so the library
never imports a service:

  gridpilot detect atlas ATLAS.mrc [--pixel-size-um P] [--json OUT] [--png OUT]
  gridpilot detect holes SQUARE.mrc [--pixel-size-nm P] [--hole-type T | --hole-size-um D] [--json OUT] [--png OUT]
"""

from __future__ import annotations

import argparse

from .plugin_cli import add_kind_subcommands, installed_kinds, run_kind

__all__ = ["add_args", "detectors", "main"]

GROUP = "gridpilot.detect"


def detectors() -> dict[str, str]:
    """Installed detector kinds: name → module path."""
    return installed_kinds(GROUP)


def add_args(parser: argparse.ArgumentParser) -> None:
    add_kind_subcommands(parser, GROUP, dest="detect_kind",
                         none_installed="no detector is installed (install services/atlas-detector or hole-finder)")


def main(args: argparse.Namespace) -> int:
    return run_kind(args)
