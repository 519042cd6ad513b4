"""The examples in the docstrings of every ML module run and still say the truth.

Modules are found by walking the ``models`` package, so a new module's examples run without
anyone listing it.
"""

import doctest
import importlib
import pkgutil

import pytest

import models


def _modules_with_examples() -> list[str]:
    names = [
        info.name
        for info in pkgutil.walk_packages(models.__path__, prefix="models.")
        if not info.name.endswith("__main__")
    ]
    finder = doctest.DocTestFinder()
    return [
        name
        for name in sorted(names)
        if any(test.examples for test in finder.find(importlib.import_module(name)))
    ]


MODULES = _modules_with_examples()


def test_the_modules_known_to_have_examples_are_found():
    expected = {"models.zones", "models.inputs", "models.routing", "models.features"}
    assert expected <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    failed, attempted = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failed == 0
