"""What the framework-callback tests share: the digits subset, and the hand computation of a
metrics row in plain numpy (the oracle the recorded tables are checked against)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

from satkit.data import load_dataset

#: Digits training images used by the tests: a multiple of every batch size they use, so every
#: step of an epoch has equally large micro-batches.
N_DIGITS = 1024
TAUS = (0.9, 0.99)


def digits_dataset() -> TensorDataset:
    """(x, y, index) of the first :data:`N_DIGITS` embedded digits (x (N, 1, 8, 8) float32)."""
    data = load_dataset("digits")
    x, y = data.train_x[:N_DIGITS], data.train_y[:N_DIGITS]
    return TensorDataset(x, y, torch.arange(N_DIGITS))


def softmax_target(logits: np.ndarray, target: np.ndarray) -> np.ndarray:
    """p_y of each row, float64, by the textbook formula."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return p[np.arange(len(target)), target]


def expected_row(logits: np.ndarray, target: np.ndarray, *, ignore_index: int = -100,
                 grad_scale: np.ndarray | float = 1.0) -> dict[str, float]:
    """The metrics row of one step by hand.

    Args:
        logits: the step's logits, all micro-batches, flattened to (P, C).
        target: (P,) class indices, ``ignore_index`` where left out.
        grad_scale: per kept position (or one number), how many times the recorded
            |dL_i/df_y| is the cross-entropy gradient 1 - p_y (1 when the step's loss is the
            mean over the step's positions).
    """
    keep = target != ignore_index
    p_y = softmax_target(logits[keep], target[keep])
    row = {"batch_size": int(keep.sum()), "p_target_mean": p_y.mean(),
           "p_target_median": np.quantile(p_y, 0.5), "p_target_q10": np.quantile(p_y, 0.1),
           "p_target_q90": np.quantile(p_y, 0.9), "loss": float(-np.log(p_y).mean()),
           "grad_target_mean": float(np.mean(grad_scale * (1.0 - p_y)))}
    for tau in TAUS:
        row[f"saturated_frac_{tau:g}"] = float((p_y >= tau).mean())
    return row


def assert_row_matches(recorded: dict, expected: dict, *, rtol: float = 1e-4,
                       atol: float = 1e-6) -> None:
    for key, want in expected.items():
        got = recorded[key]
        assert np.isclose(got, want, rtol=rtol, atol=atol), f"{key}: recorded {got}, by hand {want}"


def guard_host_syncs(monkeypatch) -> dict[str, bool]:
    """Make every Tensor method that reads a value back to the host raise while the returned
    flag's ``"on"`` is True (what a callback's per-step hooks must never do: on a GPU each is
    a sync)."""
    active = {"on": False}
    for name in ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__"):
        original = getattr(torch.Tensor, name)

        def guarded(t, *a, _original=original, _name=name, **k):
            if active["on"]:
                raise AssertionError(f"host sync in the callback: Tensor.{_name}")
            return _original(t, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, guarded)
    return active


def record_as_a_language_model(monkeypatch) -> list:
    """Make every capture take the path of a language model's head (reduced at the step, the
    loss's log-softmax read when the callback gives the loss: ``DEFER_LIMIT`` 0 instead of a
    vocabulary-sized model) and return the list the recorders given a loss are put in."""
    from satkit.hooks import SaturationRecorder, capture

    monkeypatch.setattr(capture, "DEFER_LIMIT", 0)
    recorders: list = []
    set_loss = SaturationRecorder.set_loss

    def spy(self, loss):
        if self not in recorders:
            recorders.append(self)
        return set_loss(self, loss)

    monkeypatch.setattr(SaturationRecorder, "set_loss", spy)
    return recorders


def lock_refusal(run_dir):
    """The RunLockedError raised when this process tries to take ``run_dir``'s lock (its
    writer holds it), or False when the lock could be taken."""
    from satkit.run_dir import RunLockedError, lock_run_dir

    try:
        lock_run_dir(run_dir).release()
    except RunLockedError as err:
        return err
    return False
