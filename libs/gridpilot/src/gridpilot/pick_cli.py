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
import importlib
from importlib.metadata import entry_points
from types import ModuleType

__all__ = ["add_args", "main", "pickers"]

GROUP = "gridpilot.pick"


def pickers() -> dict[str, str]:
    """Installed picker kinds: name → module path."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


def add_args(parser: argparse.ArgumentParser) -> None:
    found = pickers()
    sub = parser.add_subparsers(dest="pick_kind", metavar="KIND", required=True)
    for name, target in sorted(found.items()):
        module: ModuleType = importlib.import_module(target)
        first = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=first[0] if first else name, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(p)
        p.set_defaults(_pick_module=module)
    if not found:
        parser.epilog = "no picker is installed (install services/picker-cet or picker-spa)"


def main(args: argparse.Namespace) -> int:
    return int(args._pick_module.main(args) or 0)
