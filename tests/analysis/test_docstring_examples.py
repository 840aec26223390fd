"""The examples in the analysis and plots docstrings run (STYLE.md: a test runs them)."""

import doctest
import importlib

import pytest

MODULES = ["satkit.analysis.onset", "satkit.analysis.seeds", "satkit.analysis.labels",
           "satkit.analysis.markdown", "satkit.analysis.paper", "satkit.plots.palette"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
