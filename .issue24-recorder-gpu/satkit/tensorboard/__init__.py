"""Serve satkit runs in TensorBoard, and read them back over its HTTP data API.

:class:`TensorBoardServer` (:mod:`satkit.tensorboard.server`) starts TensorBoard over run or
comparison directories, bound to ``localhost``, and always stops it;
:class:`TensorBoardClient` (:mod:`satkit.tensorboard.client`) fetches runs, tags and values
from a running server. ``satkit tensorboard RUN_DIR...`` is the command-line front end. How to
read each chart: ``docs/tensorboard.md``.
"""

from satkit.tensorboard.client import TensorBoardClient
from satkit.tensorboard.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    TensorBoardError,
    TensorBoardServer,
    link_tree,
    server_command,
    sweep_stale_workdirs,
)

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "TensorBoardClient", "TensorBoardError",
           "TensorBoardServer", "link_tree", "server_command", "sweep_stale_workdirs"]
