"""Shared fixtures of the training tests."""

import os
import signal

import pytest

from satkit.training import Trainer


@pytest.fixture
def interrupt_at(monkeypatch):
    """``interrupt_at(step)``: a real SIGINT right after training step ``step``, handled by
    the training loop as a user's Ctrl-C would be."""

    def arm(step: int) -> None:
        original = Trainer.train_step

        def train_step(self, *batch):
            loss = original(self, *batch)
            if self.step == step:
                os.kill(os.getpid(), signal.SIGINT)
            return loss

        monkeypatch.setattr(Trainer, "train_step", train_step)

    return arm
