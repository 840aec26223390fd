"""Every docstring example in the package runs (the contract's examples are executable)."""

import doctest
import importlib
import pkgutil

import pytest

import satkit

MODULES = sorted(m.name for m in pkgutil.walk_packages(satkit.__path__, "satkit.")
                 if m.name != "satkit.__main__")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
