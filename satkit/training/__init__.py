"""Training: typed config, the loop, run directories, checkpoints, comparisons.

``train(config)`` runs one configuration and writes its run directory; ``compare`` runs an
alpha2 x seed grid; :class:`Trainer` is the loop for your own model, data and recorder.
"""

from satkit.run_dir import RunWriteError
from satkit.training.compare import Comparison, compare
from satkit.training.config import ConfigError, TrainConfig, config_from_dict
from satkit.training.distributed import resolve_device
from satkit.training.evaluation import Evaluation
from satkit.training.interrupt import StopRequested
from satkit.training.progress import Progress
from satkit.training.run import RunResult, train
from satkit.training.trainer import EpochResult, NonFiniteError, Trainer

__all__ = ["Comparison", "ConfigError", "EpochResult", "Evaluation", "NonFiniteError", "Progress",
           "RunResult", "RunWriteError", "StopRequested", "TrainConfig", "Trainer", "compare",
           "config_from_dict", "resolve_device", "train"]
