"""Where recorded rows go: a tiny protocol (``write(rows)``, ``close()``) and two sinks.

``TensorBoardSink`` imports TensorBoard only when it is constructed.
"""

from satkit.sinks.base import OPTIONAL_METHODS, Histogram, Sink, SinkBase, optional_methods
from satkit.sinks.table import TableSink, read_table
from satkit.sinks.tensorboard import TensorBoardSink, write_comparison_layout

__all__ = ["OPTIONAL_METHODS", "Histogram", "Sink", "SinkBase", "TableSink", "TensorBoardSink",
           "optional_methods", "read_table", "write_comparison_layout"]
