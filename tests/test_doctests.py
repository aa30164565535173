"""The examples in mmsr's docstrings run and print what they say.

Examples use ``torch`` and ``mmsr`` as a reader's code would have them imported; each module's
own names are in scope too, as doctest gives them.
"""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import torch

import mmsr

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(mmsr.__path__, prefix="mmsr.")
    if not info.name.endswith("__main__")
)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"torch": torch, "mmsr": mmsr}, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"


def test_the_examples_are_collected():
    # A guard against testing nothing (e.g. a rename that hides the package's modules).
    assert {"mmsr.ops", "mmsr.bundle", "mmsr.upscale", "mmsr.grid"} <= set(MODULES)
    finder = doctest.DocTestFinder()
    examples = sum(len(t.examples) for n in MODULES for t in finder.find(importlib.import_module(n)))
    assert examples >= 50
