"""Run a particle picker locally on files: ``gridpilot pick KIND …``.

Each picker service registers its kind through the ``gridpilot.pick`` entry-point group (a
module with ``add_args(parser)`` and ``main(args)``, its docstring the help), so the library
never imports a service:

  gridpilot pick cet explore TOMO.mrc --out DIR
  gridpilot pick cet refine TOMO.mrc --labels LABELS.star --diameter-a D --out MODEL.onnx
  gridpilot pick cet pick TOMO.mrc --model MODEL.onnx --out PICKS.star
  gridpilot pick spa train MIC... --coords COORDS.star --diameter-px D --out MODEL_DIR
  gridpilot pick spa pick MIC... [--model MODEL_DIR] --diameter-px D --out PICKS.star
  gridpilot pick spa denoise MIC... --out DIR
"""

from __future__ import annotations

import argparse

from .plugin_cli import add_kind_subcommands, installed_kinds, run_kind

__all__ = ["add_args", "main", "pickers"]

GROUP = "gridpilot.pick"


def pickers() -> dict[str, str]:
    """Installed picker kinds: name → module path."""
    return installed_kinds(GROUP)


def add_args(parser: argparse.ArgumentParser) -> None:
    add_kind_subcommands(parser, GROUP, dest="pick_kind",
                         none_installed="no picker is installed (install services/picker-cet or picker-spa)")


def main(args: argparse.Namespace) -> int:
    return run_kind(args)
