"""What a run shows while it trains: a labelled progress bar on a terminal, plain lines elsewhere.

On a terminal (``stream.isatty()``), one tqdm bar per run, labelled with the run (e.g.
``[2/3] noisy alpha2=0.1 seed=0``), with the epoch, the running training loss and error in its
postfix; above it one kept line per finished epoch::

    [2/3] noisy alpha2=0.1 seed=0 | epoch 3/12 | train loss 0.4123 err 9.81% | test loss
    0.3011 err 7.50% | lr 0.05 | p_y >= 0.99: clean 41.2%, training logits 30.5%

The saturated shares are over every sample the epoch's recorded steps saw (each step's batch
fraction weighted by its batch size), in both views: clean p_y, and p_y under the training
logits (what the loss saw).

When the stream is not a terminal (a log file, CI, a notebook): no bar and no carriage
returns, a line when the run starts, the same line per epoch, and between them a plain progress
line at most every ``line_every`` seconds.

Host reads: none here. The trainer passes values it has already read at its sync points (the
flush interval and the epoch end); the saturated fraction comes from the rows the recorder
flushes, through :attr:`Progress.tap` added to its sinks.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

__all__ = ["Progress"]


#: The recorder's columns the epoch line reads: the saturated share of the batch at the last
#: threshold, per view (``saturated_frac`` is the alias of ``saturated_frac_<tau>``).
_VIEW_COLUMNS = (("clean", "saturated_frac"), ("training logits", "saturated_frac_noisy"))


class _Tap:
    """A recorder sink that adds each flushed row's saturated count (fraction x batch size) of
    both views to its :class:`Progress`'s epoch sums."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def write(self, rows: list[dict[str, Any]]) -> None:
        sums = self._progress._saturated
        for row in rows:
            n = row.get("batch_size") or 0
            for view, column in _VIEW_COLUMNS:
                value = row.get(column)
                if n and value is not None and not math.isnan(value):
                    saturated, seen = sums.get(view, (0.0, 0))
                    sums[view] = (saturated + value * n, seen + n)
        if rows and self._progress.tau is None:
            self._progress.tau = _tau_of(rows[-1])

    def close(self) -> None:
        pass


def _tau_of(row: dict[str, Any]) -> float | None:
    """The threshold the ``saturated_frac`` alias stands for (its ``saturated_frac_<tau>``)."""
    alias = row.get("saturated_frac")
    for key, value in row.items():
        if key.startswith("saturated_frac_") and "noisy" not in key and value == alias:
            try:
                return float(key.removeprefix("saturated_frac_"))
            except ValueError:
                continue
    return None


class Progress:
    """Progress display of one run (see the module docstring).

    Args:
        label: names the run on every line and on the bar ("" for none).
        stream: where to write (default ``sys.stderr``, looked up when the run starts).
        enabled: False shows nothing (``--quiet``).
        interactive: draw a bar; default ``stream.isatty()``.
        line_every: seconds between the plain progress lines when not interactive.

    Attributes:
        tau: the threshold of the saturated shares (read from the flushed rows; None: unknown).
    """

    def __init__(self, label: str = "", *, stream: TextIO | None = None, enabled: bool = True,
                 interactive: bool | None = None, line_every: float = 30.0) -> None:
        self.label, self.enabled, self.line_every = label, enabled, line_every
        self._stream, self._interactive = stream, interactive
        self.tau: float | None = None
        self._saturated: dict[str, tuple[float, int]] = {}  # view -> (saturated, seen) this epoch
        self.tap = _Tap(self)
        self._bar: Any = None
        self._total: int | None = None
        self._epochs = 0
        self._last_line = 0.0

    @property
    def stream(self) -> TextIO:
        return self._stream if self._stream is not None else sys.stderr

    @property
    def interactive(self) -> bool:
        if self._interactive is not None:
            return self._interactive
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def _line(self, text: str) -> None:
        line = f"{self.label} | {text}" if self.label else text
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)
        self._last_line = time.monotonic()

    def start(self, *, total_steps: int | None, done_steps: int, epochs: int) -> None:
        """A run (or its resumed part) begins: ``done_steps`` of ``total_steps`` are done."""
        if not self.enabled:
            return
        self._total, self._epochs = total_steps, epochs
        if self.interactive:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=done_steps, desc=self.label or None,
                             unit="step", dynamic_ncols=True, leave=True, file=self.stream)
        else:
            steps = f", {total_steps} steps" if total_steps else ""
            resumed = f", resumed at step {done_steps}" if done_steps else ""
            self._line(f"training: {epochs} epoch(s){steps}{resumed}")

    def advance(self) -> None:
        """One optimizer step done (a counter on the host; no tensor is read)."""
        if self._bar is not None:
            self._bar.update(1)

    def update(self, *, step: int, epoch: int, loss: float, train_error: float) -> None:
        """At a sync point: the running loss and training error (%) of the current epoch."""
        if not self.enabled:
            return
        figures = f"epoch {epoch + 1}/{self._epochs} loss {loss:.4f} err {train_error:.2f}%"
        if self._bar is not None:
            self._bar.set_postfix_str(figures, refresh=False)
        elif time.monotonic() - self._last_line >= self.line_every:
            total = f"/{self._total}" if self._total else ""
            self._line(f"step {step}{total} | {figures}")

    def epoch_end(self, result: Any) -> None:
        """Write the kept line of a finished epoch (an :class:`~satkit.training.EpochResult`)."""
        if not self.enabled:
            return
        parts = [f"epoch {result.epoch + 1}/{self._epochs}",
                 f"train loss {result.train_loss:.4f} err {result.train_error:.2f}%"]
        if not math.isnan(result.test_error):
            parts.append(f"test loss {result.test_loss:.4f} err {result.test_error:.2f}%")
        parts.append(f"lr {result.lr:g}")
        if (shares := self.saturated_shares()):
            tau = "tau" if self.tau is None else f"{self.tau:g}"
            parts.append(f"p_y >= {tau}: " + ", ".join(f"{view} {100 * share:.1f}%"
                                                       for view, share in shares.items()))
        self._saturated = {}
        self._line(" | ".join(parts))

    def saturated_shares(self) -> dict[str, float]:
        """View -> the share of the samples seen at the recorded steps of the current epoch
        (so far) with p_y >= tau; only views the recorder reported."""
        return {view: saturated / seen for view, (saturated, seen) in self._saturated.items()
                if seen}

    def close(self) -> None:
        """End the display (the bar stays on screen with its final state). Idempotent."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
