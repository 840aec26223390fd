"""What ``--resume`` accepts: the same run, continued, never a mix of two runs.

A checkpoint holds the config it was trained under. A resume continues that run only when
every setting that shapes its trajectory is the same (:func:`check_resume_config`); the
settings of :data:`FREE_ON_RESUME` decide only where or how output goes and may differ, and
``epochs`` may grow (the run trains on; its learning-rate drops stay at the epochs they were
planned at). A checkpoint whose position is impossible (a negative
step, a step past the planned steps, epochs and steps that disagree) or that is ahead of the
tables on disk is refused (:func:`check_position`): its tables would belong to another run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from satkit.training.checkpoint import CheckpointError
from satkit.training.config import ConfigError, TrainConfig

__all__ = ["ABSENT_MEANS", "FREE_ON_RESUME", "check_position", "check_resume_config",
           "resume_differences"]

#: Config fields a resume may change: where output goes and how often it is written. Every
#: other field (``epochs`` aside, which may grow) must equal the checkpoint's.
FREE_ON_RESUME: tuple[str, ...] = ("device", "quiet", "figures", "flush_every",
                                   "histogram_every", "out", "resume", "data_dir")
#: Fields added after checkpoints were first written, whose absence from a checkpoint's config
#: means another value than today's default: what the older satkit did (it kept each epoch's
#: short last batch).
ABSENT_MEANS: Mapping[str, Any] = {"drop_last": False}


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    return "unset" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def resume_differences(saved: Mapping[str, Any], config: TrainConfig) -> list[str]:
    """``"FIELD: A in the checkpoint, B now"`` for every setting that may not differ on resume.

    ``saved`` is the checkpoint's config; a field it lacks (written by an older satkit) counts
    as what that satkit did: :data:`ABSENT_MEANS`, else the field's default. ``epochs`` may
    grow, never shrink.
    """
    defaults = {**TrainConfig().to_dict(), **ABSENT_MEANS}
    now = config.to_dict()
    out = []
    for name, value in now.items():
        before = saved.get(name, defaults[name])
        if isinstance(before, tuple):
            before = list(before)
        if name in FREE_ON_RESUME or before == value:
            continue
        if name == "epochs" and isinstance(before, int) and value > before:
            continue
        note = " (epochs may grow on --resume, never shrink)" if name == "epochs" else ""
        out.append(f"{name}: {_shown(before)} in the checkpoint, {_shown(value)} now{note}")
    return out


def check_resume_config(saved: Mapping[str, Any], config: TrainConfig, run_dir: Path) -> None:
    """Refuse a resume whose settings would change the run's trajectory.

    Raises:
        ConfigError: naming every differing field with both values.
    """
    differences = resume_differences(saved, config)
    if differences:
        free = ", ".join(f for f in FREE_ON_RESUME if f not in ("resume", "out"))
        raise ConfigError(
            f"--resume: {run_dir} was trained with other settings ({'; '.join(differences)}). "
            f"Resume with the checkpoint's settings (only {free} may differ, and epochs may "
            "grow), or start a new run without --resume")


def _count(state: Mapping[str, Any], key: str, path: Path) -> int:
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"checkpoint {path}: {key} must be an integer, got {value!r}; "
                              "delete it to start the run afresh")
    return value


def check_position(state: Mapping[str, Any], *, steps_per_epoch: int, epochs: int,
                   every: int, recorded_steps: Iterable[int] | None, path: Path) -> None:
    """Refuse a checkpoint whose position is impossible for this run or ahead of its tables.

    Args:
        state: the checkpoint (:meth:`satkit.training.Trainer.state_dict`).
        steps_per_epoch: the training loader's batches per epoch (per process).
        epochs: the planned epochs (the resumed config's).
        every: the recorder's cadence (steps whose index is a multiple are recorded).
        recorded_steps: the steps in ``metrics.parquet``; None: not checked (no table here).
        path: the checkpoint file, for the messages.

    Raises:
        CheckpointError: one line saying what does not fit.
    """
    step = _count(state, "step", path)
    epoch = _count(state, "epoch", path)
    batch = _count(state, "batch_in_epoch", path)
    planned = steps_per_epoch * epochs

    def refuse(why: str) -> None:
        raise CheckpointError(f"checkpoint {path} {why}; it does not belong to this run: "
                              "delete it to start the run afresh")

    if not 0 <= step <= planned:
        refuse(f"is at step {step}, outside the run's 0..{planned} steps")
    if not (0 <= epoch <= epochs and 0 <= batch < steps_per_epoch):
        refuse(f"is at epoch {epoch}, batch {batch}, outside the run's {epochs} epochs of "
               f"{steps_per_epoch} batches")
    if epoch * steps_per_epoch + batch != step:
        refuse(f"says step {step} but epoch {epoch}, batch {batch} (that is step "
               f"{epoch * steps_per_epoch + batch} at {steps_per_epoch} batches an epoch)")
    history = state.get("history")
    if not isinstance(history, list) or len(history) != epoch:
        held = len(history) if isinstance(history, list) else "no"
        refuse(f"is at epoch {epoch} but holds {held} finished epochs")
    recorder = state.get("recorder")
    if isinstance(recorder, Mapping) and recorder.get("steps") != step:
        refuse(f"is at step {step} but its recorder at step {recorder.get('steps')!r}")
    if recorded_steps is not None:
        have = set(recorded_steps)
        missing = [s for s in range(0, step, every) if s not in have]
        if missing:
            last = max((s for s in have if s < step), default=None)
            refuse(f"is at step {step} but metrics.parquet lacks step {missing[0]}"
                   + ("" if last is None else f" (its rows before step {step} end at {last})")
                   + f" ({len(missing)} recorded step(s) missing)")
