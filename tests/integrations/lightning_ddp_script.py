"""Run by test_lightning_callback.py: a 2-process CPU DDP fit (gloo) with the callback.

Usage: python lightning_ddp_script.py RUN_DIR. Lightning relaunches this script for rank 1.
Each rank also writes, for each step, the mean p_y of its own micro-batch computed from its
logits by hand (``per_rank_<rank>.json`` next to RUN_DIR), to check rank 0's merged table.
"""

import json
import sys
from pathlib import Path

import lightning.pytorch as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from satkit.data import load_dataset
from satkit.integrations.lightning import SaturationCallback


class Module(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.classifier = nn.Linear(64, 10)
        self.p_means: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y, _ = batch
        logits = self.classifier(x.flatten(1))
        p_y = logits.detach().double().softmax(dim=1).gather(1, y[:, None])
        self.p_means.append(p_y.mean().item())
        return F.cross_entropy(logits, y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def main() -> None:
    out = Path(sys.argv[1])
    data = load_dataset("digits")
    n = 128
    dataset = TensorDataset(data.train_x[:n], data.train_y[:n], torch.arange(n))
    torch.manual_seed(0)
    module = Module()
    callback = SaturationCallback("classifier", out, flush_every=3)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=4, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, callbacks=[callback])
    trainer.fit(module, DataLoader(dataset, batch_size=16))
    (out.parent / f"per_rank_{trainer.global_rank}.json").write_text(json.dumps(module.p_means))


if __name__ == "__main__":
    main()
