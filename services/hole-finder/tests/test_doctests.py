"""The examples in the hole finder's docstrings run and give what they say (planted answers)."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["hole_finder.bars", "hole_finder.completion", "hole_finder.holes", "hole_finder.ice",
           "hole_finder.lattice", "hole_finder.periodic"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted and not result.failed
