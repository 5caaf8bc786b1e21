"""Command groups whose kinds come from installed services: ``gridpilot detect|pick KIND …``.

A service registers each kind in an entry-point group (``gridpilot.detect``, ``gridpilot.pick``)
as a module with ``add_args(parser)`` and ``main(args)``, its docstring the help, so the library
never imports a service. :func:`add_kind_subcommands` turns a group into subcommands and
:func:`run_kind` runs the chosen one.
"""

from __future__ import annotations

import argparse
import importlib
from importlib.metadata import entry_points
from types import ModuleType

__all__ = ["add_kind_subcommands", "installed_kinds", "run_kind"]


def installed_kinds(group: str) -> dict[str, str]:
    """Kinds registered in the entry-point ``group``: name → module path."""
    return {ep.name: ep.value for ep in entry_points(group=group)}


def add_kind_subcommands(parser: argparse.ArgumentParser, group: str, *, dest: str,
                         none_installed: str) -> None:
    """One subcommand per kind of ``group``; ``none_installed`` is the epilog when there is none."""
    found = installed_kinds(group)
    sub = parser.add_subparsers(dest=dest, metavar="KIND", required=True)
    for name, target in sorted(found.items()):
        module: ModuleType = importlib.import_module(target)
        first = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=first[0] if first else name, description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_args(p)
        p.set_defaults(_kind_module=module)
    if not found:
        parser.epilog = none_installed


def run_kind(args: argparse.Namespace) -> int:
    """Run the kind that :func:`add_kind_subcommands` parsed into ``args``."""
    return int(args._kind_module.main(args) or 0)
