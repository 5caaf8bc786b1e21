"""The examples in the orchestrator's docstrings run and say what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

_MODULES = [
    "orchestrator.params",
    "orchestrator.protocols",
    "orchestrator.policies.types",
    "orchestrator.policies.squares",
    "orchestrator.policies.holes",
    "orchestrator.policies.bis",
    "orchestrator.policies.acquisition",
    "orchestrator.report_page",
]


@pytest.mark.parametrize("name", _MODULES)
def test_docstring_examples_hold(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
