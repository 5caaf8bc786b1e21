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
#: Service packages that decide or measure from images: the orchestrator, the detectors, the
#: pickers, preprocess and zssr (the scope-gateway is the twin's microscope: it writes the truth).
SERVING_SOURCES = [ROOT / "services" / d / "src" / p for d, p in (
    ("orchestrator", "orchestrator"), ("picker-cet", "picker_cet"), ("picker-spa", "picker_spa"),
    ("atlas-detector", "atlas_detector"), ("hole-finder", "hole_finder"),
    ("preprocess", "preprocess"), ("zssr", "zssr"))]
#: The one module per package allowed to read the twin: it renders training sets for
#: ``make train-*`` (labels from the truth), and only the training code imports it.
TRAINING_DATA_MODULE = "twin_data.py"
#: The modules that may import it: training only, never a route, worker or CLI verb that serves.
TRAINING_MODULES = frozenset({"train.py", "crop_data.py"})


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
    modules = sorted(m for m in package.rglob("*.py") if m.name != TRAINING_DATA_MODULE)
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


@pytest.mark.parametrize("package", SERVING_SOURCES, ids=lambda p: p.name)
def test_only_training_code_imports_the_twin_data_module(package: Path) -> None:
    importers = sorted(m.name for m in package.rglob("*.py")
                       if m.name != TRAINING_DATA_MODULE and _imports_twin_data(m))
    assert set(importers) <= TRAINING_MODULES, importers


def _imports_twin_data(module: Path) -> bool:
    tree = ast.parse(module.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.ImportFrom) and (node.module or "").endswith("twin_data")
               for node in ast.walk(tree))
