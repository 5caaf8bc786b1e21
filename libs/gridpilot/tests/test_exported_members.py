"""Every public module's ``__all__`` names things that exist, and nothing private."""

from __future__ import annotations

import importlib

import pytest

MODULES = ["gridpilot.contracts", "gridpilot.bus", "gridpilot.storage", "gridpilot.service",
           "gridpilot_sim", "gridpilot.optics", "gridpilot.errors", "gridpilot.logs",
           "gridpilot.embedded", "gridpilot.detection", "gridpilot.films"]


@pytest.mark.parametrize("name", MODULES)
def test_public_names_exist_and_are_public(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    for attr in exported:
        assert not attr.startswith("_"), f"{name}.__all__ exports private {attr}"
        assert hasattr(module, attr), f"{name}.__all__ lists {attr}, which does not exist"
