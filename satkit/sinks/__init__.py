"""Where recorded rows go: a tiny protocol (``write(rows)``, ``close()``) and two sinks.

``TensorBoardSink`` imports TensorBoard only when it is constructed.
"""

from satkit.sinks.base import Histogram, Sink
from satkit.sinks.table import TableSink, read_table
from satkit.sinks.tensorboard import TensorBoardSink, write_comparison_layout

__all__ = ["Histogram", "Sink", "TableSink", "TensorBoardSink", "read_table",
           "write_comparison_layout"]
