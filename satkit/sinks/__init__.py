"""Where recorded rows go: a tiny protocol (``write(rows)``, ``close()``) and two sinks.

``satkit.sinks`` and :mod:`satkit.sinks.table` need no torch; ``TensorBoardSink`` and
``write_comparison_layout`` (which name the recorder's columns) are loaded on first use, and
TensorBoard itself only when a ``TensorBoardSink`` is constructed.
"""

from typing import TYPE_CHECKING, Any

from satkit.sinks.base import OPTIONAL_METHODS, Histogram, Sink, SinkBase, optional_methods
from satkit.sinks.table import TableSink, read_table

if TYPE_CHECKING:
    from satkit.sinks.tensorboard import TensorBoardSink, write_comparison_layout

__all__ = ["OPTIONAL_METHODS", "Histogram", "Sink", "SinkBase", "TableSink", "TensorBoardSink",
           "optional_methods", "read_table", "write_comparison_layout"]

_LAZY = {"TensorBoardSink": "satkit.sinks.tensorboard",
         "write_comparison_layout": "satkit.sinks.tensorboard"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'satkit.sinks' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
