"""The docstring examples of the recorder and sink modules run (STYLE.md: examples are tested)."""

import doctest
import importlib

import pytest

MODULES = ["satkit.hooks.recorder", "satkit.hooks.samples", "satkit.hooks.stats",
           "satkit.hooks.distributed", "satkit.sinks.base", "satkit.sinks.table",
           "satkit.sinks.tensorboard"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0
