"""The progress display: a labelled bar with kept epoch lines on a terminal, plain lines off it,
nothing with --quiet; fed by the trainer at its sync points only."""

import io

import torch
from torch import nn

from satkit.data import DeviceLoader
from satkit.training.progress import Progress
from satkit.training.trainer import EpochResult, Trainer


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _result(epoch: int) -> EpochResult:
    return EpochResult(epoch=epoch, step=10 * (epoch + 1), train_loss=0.5, train_error=12.5,
                       test_loss=0.25, test_error=7.5, lr=0.05, seconds=1.0)


def _fit(progress: Progress, epochs: int = 2) -> Trainer:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 2, generator=g), torch.randint(0, 3, (96,), generator=g)
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1),
                      DeviceLoader(x, y, batch_size=32, seed=0),
                      test_data=DeviceLoader(x, y, batch_size=96, shuffle=False),
                      epochs=epochs, sync_every=2, progress=progress)
    trainer.fit()
    return trainer


def test_terminal_bar_is_labelled_with_loss_and_error_and_kept_epoch_lines():
    stream = FakeTTY()
    progress = Progress("[2/3] noisy alpha2=0.1 seed=0", stream=stream)
    # What two flushes hand over: a full batch of 32 and a short one of 16; the alias column
    # saturated_frac is saturated_frac_0.99, so tau is 0.99.
    progress.tap.write([{"step": 4, "batch_size": 32, "saturated_frac": 0.5,
                         "saturated_frac_0.9": 0.75, "saturated_frac_0.99": 0.5,
                         "saturated_frac_noisy": 0.25}])
    progress.tap.write([{"step": 5, "batch_size": 16, "saturated_frac": 0.0,
                         "saturated_frac_0.9": 0.5, "saturated_frac_0.99": 0.0,
                         "saturated_frac_noisy": float("nan")}])
    _fit(progress)
    text = stream.getvalue()
    assert "\r" in text  # a live bar
    assert "[2/3] noisy alpha2=0.1 seed=0" in text
    assert "loss " in text and "err " in text  # loss and train error together in the postfix
    lines = [line for line in text.replace("\r", "\n").splitlines() if "test loss" in line]
    assert [line.split(" | ")[1] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all("| lr 0.1" in line for line in lines)
    # weighted by batch size: (32 x 0.5 + 16 x 0) / 48 samples; the NaN row is left out
    assert lines[0].endswith("| p_y >= 0.99: clean 33.3%, training logits 25.0%")
    assert "p_y >=" not in lines[1]  # the shares are the epoch's own: nothing came after
    assert "6/6" in text.split("\r")[-1] and text.endswith("\n")  # the finished bar is kept


def test_plain_lines_without_a_terminal():
    stream = io.StringIO()  # isatty() is False: a log file, CI, a notebook
    _fit(Progress("softmax seed=0", stream=stream, line_every=0.0), epochs=3)
    text = stream.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0] == "softmax seed=0 | training: 3 epoch(s), 9 steps"
    epoch_lines = [line for line in lines if "test loss" in line]
    assert [line.split(" | ")[1] for line in epoch_lines] == ["epoch 1/3", "epoch 2/3",
                                                              "epoch 3/3"]
    periodic = [line for line in lines if "| step " in line]
    assert periodic and all("loss " in line and "err " in line for line in periodic)


def test_periodic_lines_are_rate_limited_and_quiet_is_silent():
    stream = io.StringIO()
    progress = Progress(stream=stream, line_every=3600.0)
    progress.start(total_steps=100, done_steps=0, epochs=2)
    for step in range(1, 51):
        progress.update(step=step, epoch=0, loss=1.0, train_error=50.0)
    progress.epoch_end(_result(0))
    assert len(stream.getvalue().splitlines()) == 2  # the start line and the epoch line
    quiet = io.StringIO()
    _fit(Progress("x", stream=quiet, enabled=False))
    assert quiet.getvalue() == ""
