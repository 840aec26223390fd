"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from satkit.run_dir import atomic_write_bytes

__all__ = ["FORMAT", "CheckpointError", "load_checkpoint", "save_checkpoint"]

#: The value of a satkit checkpoint's ``format`` key.
FORMAT = "satkit-checkpoint-1"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, incomplete or not a satkit checkpoint."""


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any], *,
                    midway: Callable[[Path], None] | None = None) -> None:
    """Save ``state`` (tensors, numbers, strings, lists and dicts only) atomically.

    The state is serialised in memory, then written with
    :func:`satkit.run_dir.atomic_write_bytes`: ``path`` is the previous checkpoint or
    the complete new one, with the umask's file mode, whatever happens meanwhile.

    Args:
        path: the checkpoint file.
        state: what to save (a ``format`` key is added).
        midway: called halfway through the write (a fault-injection point for tests).

    Raises:
        OSError: the file system refused the write (``filename`` is ``path``); the previous
            checkpoint is unchanged.
    """
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, **state}, buffer)
    atomic_write_bytes(path, buffer.getvalue(), midway=midway)


def load_checkpoint(path: str | os.PathLike[str], *,
                    required: Iterable[str] = ()) -> dict[str, Any]:
    """Load a checkpoint on the CPU, safely (``weights_only=True``).

    Args:
        path: the checkpoint file.
        required: keys the state must hold (e.g. the trainer's state and the run's config).

    Raises:
        CheckpointError: the file is missing, corrupt or truncated, not from satkit, or lacks a
            required key; never a silent fresh start.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({exc}); "
                              "delete it to start the run afresh") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a satkit checkpoint")
    missing = [k for k in required if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} is incomplete (no {', '.join(missing)}); "
                              "delete it to start the run afresh")
    return state
