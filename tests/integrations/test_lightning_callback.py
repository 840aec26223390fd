"""satkit.integrations.lightning: a real Lightning Trainer on the embedded digits, its run
directory checked against a hand computation, the analysis and the CLI on it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from integration_helpers import (
    N_DIGITS,
    assert_row_matches,
    digits_dataset,
    expected_row,
    guard_host_syncs,
    lock_refusal,
    record_as_a_language_model,
    softmax_target,
)
from torch import nn
from torch.utils.data import DataLoader

L = pytest.importorskip("lightning.pytorch")

from satkit import schema  # noqa: E402
from satkit.analysis import load_run, report  # noqa: E402
from satkit.cli import main as satkit_main  # noqa: E402
from satkit.integrations.lightning import LOGGER_SCALARS, SaturationCallback  # noqa: E402

BATCH, ACCUMULATE, EPOCHS = 64, 2, 2
STEPS = EPOCHS * N_DIGITS // (BATCH * ACCUMULATE)


class DigitsMLP(L.LightningModule):
    """An MLP whose head is an ``nn.Linear`` called ``classifier``; no dropout or batch norm,
    so a training-mode forward can be repeated exactly."""

    def __init__(self, lr: float = 0.01) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU())
        self.classifier = nn.Linear(64, 10)
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch[0], batch[1]
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch[0], batch[1]
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class StepProbe(L.Callback):
    """Keeps, for the last optimizer step, the module's weights before it and its batches."""

    def __init__(self) -> None:
        self.new_step, self.weights, self.batches = True, None, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.new_step:
            self.weights = copy.deepcopy(pl_module.state_dict())
            self.batches, self.new_step = [], False
        self.batches.append([t.clone() for t in batch])

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.new_step = True


def trainer(tmp_path: Path, callbacks: list, **kwargs) -> L.Trainer:
    options = {"accelerator": "cpu", "devices": 1, "max_epochs": 1, "logger": False,
               "enable_progress_bar": False, "enable_model_summary": False,
               "enable_checkpointing": False, "default_root_dir": str(tmp_path)}
    return L.Trainer(callbacks=callbacks, **{**options, **kwargs})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory):
    """One fit: 2 epochs, accumulate_grad_batches=2, validation every epoch and the sanity
    check, a CSV logger, flushes every 5 steps."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("lightning")
    data = digits_dataset()
    probe = StepProbe()
    callback = SaturationCallback("classifier", tmp / "run", flush_every=5, histogram_every=4,
                                  dataset="digits")
    logger = L.loggers.CSVLogger(str(tmp / "logs"), name="", version="")
    module = DigitsMLP()
    fit = trainer(tmp, [callback, probe], max_epochs=EPOCHS, accumulate_grad_batches=ACCUMULATE,
                  logger=logger, num_sanity_val_steps=2, log_every_n_steps=1)
    fit.fit(module, DataLoader(data, batch_size=BATCH, shuffle=True),
            DataLoader(data, batch_size=256))
    return {"callback": callback, "probe": probe, "module": module, "logs": tmp / "logs",
            "run": load_run(callback.run_dir), "tmp": tmp}


def test_one_row_per_optimizer_step_and_no_evaluation(fitted):
    metrics = fitted["run"].metrics
    # 2 micro-batches of 64 per step; the validation batches (256) and the sanity check
    # left no trace
    assert metrics["step"].tolist() == list(range(STEPS))
    assert (metrics["batch_size"] == BATCH * ACCUMULATE).all()
    assert not metrics["nonfinite"].any()


def test_last_step_matches_a_hand_computation(fitted):
    probe, module = fitted["probe"], fitted["module"]
    replay = copy.deepcopy(module)
    replay.load_state_dict(probe.weights)
    replay.train()
    logits, targets = [], []
    for x, y, _ in probe.batches:
        logits.append(replay(x).detach().numpy())
        targets.append(y.numpy())
    logits, target = np.concatenate(logits), np.concatenate(targets)
    last = fitted["run"].metrics.iloc[-1].to_dict()
    assert_row_matches(last, expected_row(logits, target))
    # the head's weight gradient of the step: the mean loss of each micro-batch over k
    replay.zero_grad()
    for x, y, _ in probe.batches:
        (F.cross_entropy(replay(x), y) / ACCUMULATE).backward()
    assert np.isclose(last["grad_weight_norm"], replay.classifier.weight.grad.norm().item(),
                      rtol=1e-4)


def test_samples_table_holds_every_index_with_its_last_p_target(fitted):
    probe, run = fitted["probe"], fitted["run"]
    samples = run.samples.set_index("index")
    assert sorted(samples.index) == list(range(N_DIGITS))
    assert samples["last_seen_step"].notna().all()
    replay = copy.deepcopy(fitted["module"])
    replay.load_state_dict(probe.weights)
    replay.train()
    x, y, index = (torch.cat(parts) for parts in zip(*probe.batches, strict=True))
    p_y = softmax_target(replay(x).detach().numpy(), y.numpy())
    assert (samples.loc[index.numpy(), "last_seen_step"] == STEPS - 1).all()
    assert np.allclose(samples.loc[index.numpy(), "last_p_target"], p_y, rtol=1e-4)


def test_logger_gets_the_main_scalars_at_flush(fitted):
    logged = pd.read_csv(fitted["logs"] / "metrics.csv")
    metrics = fitted["run"].metrics.set_index("step")
    tags = {"p_target_median": "saturation/p_target_median",
            "p_target_noisy_median": "saturation/p_target_noisy_median",
            "saturated_frac": "saturation/saturated_frac",
            "grad_target_mean": "gradient/grad_target_mean"}
    assert set(tags) == set(LOGGER_SCALARS)
    for column, tag in tags.items():
        rows = logged.dropna(subset=[tag])
        assert rows["step"].tolist() == list(range(STEPS))
        assert np.allclose(rows[tag], metrics.loc[rows["step"], column])


def test_run_directory_has_satkit_format(fitted):
    run_dir = fitted["callback"].run_dir
    for name in (schema.CONFIG, schema.METRICS, schema.SAMPLES, schema.SUMMARY):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("events.out.tfevents.*"))
    config = json.loads((run_dir / schema.CONFIG).read_text())
    assert config["method"] == "softmax" and config["dataset"] == "digits"
    assert config["framework"] == "lightning.pytorch" and config["head"] == "classifier"
    assert config["accumulate_grad_batches"] == ACCUMULATE and config["train_size"] == N_DIGITS
    summary = json.loads((run_dir / schema.SUMMARY).read_text())
    assert list(summary) == list(schema.SUMMARY_FIELDS)
    assert summary["steps"] == STEPS and summary["finished"] is True
    assert summary["epochs"] == summary["epochs_planned"] == EPOCHS
    assert summary == fitted["callback"].summary
    late = fitted["run"].metrics["grad_target_mean"].iloc[-STEPS // 4:].mean()
    assert np.isclose(summary["grad_target_late"], late)


def test_report_plot_and_load_run_work_on_it(fitted, capsys):
    run_dir = fitted["callback"].run_dir
    run = fitted["run"]
    assert run.loss == "softmax" and run.dataset == "digits" and run.finished
    text = report(run_dir)
    assert "| run |" in text and run_dir.name in text
    assert satkit_main(["report", str(run_dir)]) == 0
    assert "# satkit report" in capsys.readouterr().out
    figure = fitted["tmp"] / "dashboard.png"
    assert satkit_main(["plot", str(run_dir), "--out", str(figure)]) == 0
    assert figure.stat().st_size > 0


@pytest.mark.slow
def test_tensorboard_serves_the_run(fitted):
    from satkit.tensorboard import TensorBoardServer

    run_dir = fitted["callback"].run_dir
    with TensorBoardServer([run_dir], port=0, reload_interval=0) as server:
        client = server.client()
        [name] = client.runs()
        points = client.scalars(name, "1 saturation, clean/p_target_mean")
    metrics = fitted["run"].metrics
    assert [step for _, step, _ in points] == metrics["step"].tolist()
    assert np.allclose([v for *_, v in points], metrics["p_target_mean"], rtol=1e-6)


def test_hooks_are_gone_after_fit(fitted):
    head = fitted["module"].classifier
    assert not head._forward_hooks and not head._forward_pre_hooks


def test_run_directory_is_never_overwritten(fitted, tmp_path):
    first = fitted["callback"].run_dir
    callback = SaturationCallback("classifier", first)
    trainer(tmp_path, [callback], max_steps=1).fit(
        DigitsMLP(), DataLoader(digits_dataset(), batch_size=BATCH))
    assert callback.run_dir == first.with_name(first.name + "-1")
    assert len(load_run(first).metrics) == STEPS  # untouched


def _dict_loader(batch_size: int = 32) -> DataLoader:
    x, y, index = digits_dataset().tensors
    items = [{"image": x[i], "digit": y[i], "row": index[i]} for i in range(256)]
    return DataLoader(items, batch_size=batch_size)


class DictMLP(DigitsMLP):
    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self(batch["image"]), batch["digit"])


def test_dict_batches_by_key(tmp_path):
    callback = SaturationCallback("classifier", tmp_path / "run", target_key="digit",
                                  index_key="row", num_samples=N_DIGITS)
    trainer(tmp_path, [callback], max_steps=3).fit(DictMLP(), _dict_loader())
    run = load_run(callback.run_dir)
    assert run.metrics["batch_size"].tolist() == [32, 32, 32]
    assert run.samples["last_seen_step"].notna().sum() == 96


def test_batch_to_target_and_no_index(tmp_path):
    callback = SaturationCallback("classifier", tmp_path / "run",
                                  batch_to_target=lambda batch: batch["digit"])
    trainer(tmp_path, [callback], max_steps=2).fit(DictMLP(), _dict_loader())
    run = load_run(callback.run_dir)
    assert len(run.metrics) == 2 and len(run.samples) == 0


class TokenTagger(L.LightningModule):
    """A per-token classifier: logits (N, T, C), targets (N, T) with ignored padding."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.out = nn.Linear(8, 16)

    def training_step(self, batch, batch_idx):
        tokens, target = batch
        logits = self.out(self.embed(tokens))
        return F.cross_entropy(logits.flatten(0, 1), target.flatten())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("path", ["classifier", "language_model"])
def test_sequence_logits_per_token(tmp_path, monkeypatch, path):
    # "language_model": the path of a vocabulary-sized head, reading the training_step loss's
    # own log-softmax (given by on_before_backward); the hand-checked row is the same
    recorders = record_as_a_language_model(monkeypatch) if path == "language_model" else []
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 16, (32, 6), generator=g)
    target = tokens.roll(-1, dims=1)
    target[::2, 4:] = -100  # padding: half the sequences have 4 usable tokens, half 6
    pairs = list(zip(tokens, target, strict=True))
    callback = SaturationCallback("out", tmp_path / "run")
    module = TokenTagger()
    start = copy.deepcopy(module)
    trainer(tmp_path, [callback], max_steps=1).fit(module, DataLoader(pairs, batch_size=8))
    row = load_run(callback.run_dir).metrics.iloc[0].to_dict()
    logits = start.out(start.embed(tokens[:8])).detach().numpy().reshape(-1, 16)
    assert_row_matches(row, expected_row(logits, target[:8].flatten().numpy()))
    assert row["batch_size"] == 4 * 4 + 4 * 6
    if path == "language_model":
        assert [r.reused_log_softmax for r in recorders] == [1]


def test_bad_head_path_lists_the_children(tmp_path):
    callback = SaturationCallback("model.lm_head", tmp_path / "run")
    with pytest.raises(ValueError, match=r"top-level children are \['body', 'classifier'\]"):
        trainer(tmp_path, [callback], max_steps=1).fit(
            DigitsMLP(), DataLoader(digits_dataset(), batch_size=BATCH))


def test_batch_without_targets_says_what_to_pass(tmp_path):
    callback = SaturationCallback("classifier", tmp_path / "run")
    with pytest.raises(ValueError, match="target_key='labels' is not in the batch"):
        trainer(tmp_path, [callback], max_steps=1).fit(DictMLP(), _dict_loader())


def test_bad_options_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="every"):
        SaturationCallback("classifier", tmp_path, every=0)
    with pytest.raises(ValueError, match="logger_scalars"):
        SaturationCallback("classifier", tmp_path, logger_scalars=["p_y"])


class FailingMLP(DigitsMLP):
    def training_step(self, batch, batch_idx):
        if batch_idx == 3:
            raise RuntimeError("boom")
        return super().training_step(batch, batch_idx)


def test_an_error_in_training_removes_the_hooks_and_keeps_the_rows(tmp_path):
    callback = SaturationCallback("classifier", tmp_path / "run", flush_every=100)
    module = FailingMLP()
    with pytest.raises(RuntimeError, match="boom"):
        trainer(tmp_path, [callback], max_steps=10).fit(
            module, DataLoader(digits_dataset(), batch_size=BATCH))
    assert not module.classifier._forward_hooks
    assert load_run(callback.run_dir).metrics["step"].tolist() == [0, 1, 2]


@pytest.mark.parametrize("path", ["classifier", "language_model"])
def test_no_host_sync_in_the_callback_per_step(tmp_path, monkeypatch, path):
    """The callback's per-step hooks read no tensor back to the host (a sync on a GPU)."""
    recorders = record_as_a_language_model(monkeypatch) if path == "language_model" else []
    active = guard_host_syncs(monkeypatch)
    callback = SaturationCallback("classifier", tmp_path / "run", flush_every=1000)
    for hook in ("on_train_batch_start", "on_before_backward", "on_before_optimizer_step",
                 "on_train_batch_end"):
        method = getattr(callback, hook)

        def watched(*a, _method=method, **k):
            active["on"] = True
            try:
                return _method(*a, **k)
            finally:
                active["on"] = False
        setattr(callback, hook, watched)
    trainer(tmp_path, [callback], max_steps=4).fit(
        DigitsMLP(), DataLoader(digits_dataset(), batch_size=BATCH, shuffle=True))
    assert len(load_run(callback.run_dir).metrics) == 4
    assert [r.reused_log_softmax for r in recorders] == ([4] if recorders else [])


def test_pytorch_lightning_trainer_too(tmp_path):
    pl = pytest.importorskip("pytorch_lightning")

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.classifier = nn.Linear(64, 10)

        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self.classifier(batch[0].flatten(1)), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    callback = SaturationCallback("classifier", tmp_path / "run")
    pl.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_progress_bar=False,
               enable_checkpointing=False, enable_model_summary=False,
               callbacks=[callback]).fit(Module(), DataLoader(digits_dataset(), batch_size=32))
    assert load_run(callback.run_dir).metrics["batch_size"].tolist() == [32, 32]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ddp_on_two_cpu_processes_rank0_writes_the_merged_record(tmp_path):
    script = Path(__file__).with_name("lightning_ddp_script.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                          os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "run")], env=env,
                          capture_output=True, text=True, timeout=850, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("run"))
    assert runs == ["run"]  # one run directory: rank 1 wrote nothing
    run = load_run(tmp_path / "run")
    per_rank = [json.loads((tmp_path / f"per_rank_{r}.json").read_text()) for r in (0, 1)]
    # every step holds both ranks' samples: 2 x 16 per step, 128 samples over 4 steps
    assert run.metrics["batch_size"].tolist() == [32] * 4
    assert run.samples["last_seen_step"].notna().sum() == 128
    assert run.summary["steps"] == 4
    # the merged mean is the sample-weighted mean of the ranks' own (equal-sized) batches
    merged = np.mean(per_rank, axis=0)
    assert np.allclose(run.metrics["p_target_mean"], merged, rtol=1e-5)



class LockProbe(L.Callback):
    """Tries, during training, to take the run directory the satkit callback writes."""

    def __init__(self, satkit_callback: SaturationCallback) -> None:
        self.satkit, self.refused = satkit_callback, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.refused is None:
            self.refused = lock_refusal(self.satkit.run_dir)

def test_the_run_directory_is_locked_while_training_and_released_after(tmp_path):
    from satkit.run_dir import lock_run_dir

    callback = SaturationCallback("classifier", tmp_path / "run")
    probe = LockProbe(callback)
    trainer(tmp_path, [callback, probe], max_steps=2).fit(
        DigitsMLP(), DataLoader(digits_dataset(), batch_size=BATCH))
    assert probe.refused and probe.refused.pid == os.getpid()  # held by the writer
    with lock_run_dir(callback.run_dir) as lock:  # and let go of when fit ended
        assert lock.held
