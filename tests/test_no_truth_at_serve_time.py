"""Services never read the twin's ground truth at serve time: checked in their source.

The orchestrator decides targets, and picker-cet picks particles, from what was measured. Their
modules may not import the simulator (whose readers hand out the truth), nor name the truth in
code: no ``truth_key``, no ``truth`` attribute, argument or hook a bench could fill in, no
``.truth.json`` path. Docstrings and comments may say what is not read. A bench that wants an
answer from the truth (``bench/benchlib/oracle.py``) registers a plugin from its own process.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Service packages whose every module serves (none is a training or twin-data module).
SERVING_SOURCES = [ROOT / "services" / "orchestrator" / "src" / "orchestrator",
                   ROOT / "services" / "picker-cet" / "src" / "picker_cet"]


def truth_uses(source: str) -> list[str]:
    """Where ``source`` imports the simulator or names the truth in code, as ``line: what``."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
            found += [f"{node.lineno}: import {n}" for n in names if n.split(".")[0] == "gridpilot_sim"]
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] == "gridpilot_sim":
                found.append(f"{node.lineno}: from {node.module} import")
            names = [a.asname or a.name for a in node.names]
        elif isinstance(node, ast.Name):
            names = [node.id]
        elif isinstance(node, ast.Attribute):
            names = [node.attr]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, ast.keyword) and node.arg is not None:
            names = [node.arg]
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings and ".truth.json" in node.value):
            found.append(f"{node.lineno}: the path {node.value!r}")
        found += [f"{getattr(node, 'lineno', 0)}: {n}" for n in names if "truth" in n.lower()]
    return found


@pytest.mark.parametrize("package", SERVING_SOURCES, ids=lambda p: p.name)
def test_no_serving_module_imports_the_simulator_or_names_the_truth(package: Path) -> None:
    modules = sorted(package.rglob("*.py"))
    assert len(modules) > 5
    found = {str(m.relative_to(ROOT)): uses for m in modules
             if (uses := truth_uses(m.read_text(encoding="utf-8")))}
    assert found == {}


@pytest.mark.parametrize("planted", [
    "from gridpilot_sim.world.truth import ImageTruth\n",
    "import gridpilot_sim.exposure\n",
    "from gridpilot.storage import keys\nkey = keys.truth_key('a.mrc')\n",
    "class Flow:\n    def __init__(self):\n        self.truth_source = None\n",
    "def select(holes, *, true_ice_nm=None, truth=None):\n    return holes\n",
    "select(holes, truth=values)\n",
    "path = 'sessions/s1/images/sq_1.truth.json'\n",
])
def test_the_check_finds_a_planted_truth_reader(planted: str) -> None:
    assert truth_uses(planted)


def test_the_check_lets_a_docstring_say_what_is_not_read() -> None:
    source = '"""Reads detections; never the twin\'s truth (no .truth.json)."""\nx = 1  # no truth\n'
    assert truth_uses(source) == []
