"""gridpilot: automated cryo-EM screening on a NATS bus.

Sub-commands come from the library (up, status, serve, docs, detect) and from installed services,
which register theirs through the ``gridpilot.commands`` entry-point group (a module with
``add_args(parser)`` and ``main(args)``); the library never imports a service. ``demo`` is
the orchestrator's.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points
from types import ModuleType

__all__ = ["main"]

#: Library commands: name → module with add_args/main.
_BUILTIN: dict[str, str] = {
    "up": "gridpilot.stack:up_cli",
    "status": "gridpilot.stack:status_cli",
    "serve": "gridpilot.stack:serve_cli",
    "docs": "gridpilot.asyncapi",
    "detect": "gridpilot.detect_cli",
    "pick": "gridpilot.pick_cli",
}


def _commands() -> dict[str, str]:
    found = dict(_BUILTIN)
    for ep in entry_points(group="gridpilot.commands"):
        found.setdefault(ep.name, ep.value)
    return found


def _first_line(module: ModuleType) -> str:
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


def _load(target: str) -> ModuleType:
    """Import ``module`` or ``module:attr`` (an attr is a namespace with add_args/main)."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridpilot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, target in sorted(_commands().items()):
        if name != only:
            # Listed for --help without importing it (imports can be heavy: torch, numpy).
            sub.add_parser(name, help=f"see: gridpilot {name} --help")
            continue
        module = _load(target)
        p = sub.add_parser(name, help=_first_line(module), description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    only = args_list[0] if args_list and not args_list[0].startswith("-") else None
    if only is not None and only not in _commands():
        only = None
    parser = build_parser(only)
    args = parser.parse_args(args_list)
    result = args._module.main(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
