"""satkit.integrations.transformers: a real Hugging Face Trainer on tiny randomly initialised
models (GPT-2 causal LM, BERT sequence and token classifiers; built from configs, nothing
downloaded), the tables checked against the logits and gradients of the last step."""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from integration_helpers import (
    assert_row_matches,
    expected_row,
    guard_host_syncs,
    lock_refusal,
    record_as_a_language_model,
    softmax_target,
)
from torch import nn

transformers = pytest.importorskip("transformers")

from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from satkit import schema  # noqa: E402
from satkit.analysis import load_run, report  # noqa: E402
from satkit.integrations.session import GRADIENT_SCALE_TOLERANCE  # noqa: E402
from satkit.integrations.transformers import (  # noqa: E402
    SaturationCallback,
    shifted_target,
    shifts_labels,
)

transformers.logging.set_verbosity_error()
#: The end-of-training warning about the gradient columns' scale (checked where it matters).
SCALE_WARNING = "ignore:.*gradient columns:UserWarning"
VOCAB, SEQ, N_SEQ, CLASSES = 64, 12, 32, 3


class Tokens(torch.utils.data.Dataset):
    """Synthetic token data: sequences that repeat a short random pattern (learnable), with
    right padding of varying length; labels per ``task``: the tokens ("lm"), one class per
    sequence ("sequence") or per token ("token")."""

    def __init__(self, task: str, n: int = N_SEQ, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        pattern = torch.randint(0, VOCAB, (n, 4), generator=g)
        self.ids = pattern.repeat(1, SEQ // 4)
        self.lengths = SEQ - torch.arange(n) % 5  # 8..12 real tokens
        self.mask = (torch.arange(SEQ)[None] < self.lengths[:, None]).long()
        self.task = task
        self.classes = pattern[:, 0] % CLASSES

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"input_ids": self.ids[i], "attention_mask": self.mask[i],
                "index": torch.tensor(i)}
        if self.task == "sequence":
            item["labels"] = self.classes[i]
        else:
            labels = self.ids[i] % CLASSES if self.task == "token" else self.ids[i].clone()
            item["labels"] = labels.masked_fill(self.mask[i] == 0, -100)
        return item


def gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=VOCAB,
                                      n_positions=32, resid_pdrop=0.0, embd_pdrop=0.0,
                                      attn_pdrop=0.0, bos_token_id=0, eos_token_id=0))


def bert(kind: type = BertForSequenceClassification) -> nn.Module:
    torch.manual_seed(0)
    return kind(BertConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=32, num_labels=CLASSES,
                           max_position_embeddings=32, hidden_dropout_prob=0.0,
                           attention_probs_dropout_prob=0.0))


def arguments(tmp_path: Path, **kwargs) -> TrainingArguments:
    options = {"output_dir": str(tmp_path / "hf"), "per_device_train_batch_size": 4,
               "gradient_accumulation_steps": 2, "max_steps": 4, "learning_rate": 1e-2,
               "use_cpu": True, "report_to": "none", "save_strategy": "no",
               "logging_strategy": "no", "disable_tqdm": True, "seed": 0,
               "remove_unused_columns": False}
    return TrainingArguments(**{**options, **kwargs})


class LastStep(TrainerCallback):
    """Keeps the weights before the last optimizer step, its micro-batches' inputs, and the
    head's logits and their gradients as the Trainer produced them."""

    def __init__(self, head: str) -> None:
        self.head = head
        self.handles: list = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.model = model
        self.handles = [
            model.register_forward_pre_hook(self._inputs, with_kwargs=True),
            model.get_submodule(self.head).register_forward_hook(self._logits)]

    def on_step_begin(self, args, state, control, **kwargs):
        self.weights = copy.deepcopy(self.model.state_dict())
        self.inputs, self.logits, self.grads = [], [], []

    def on_train_end(self, args, state, control, **kwargs):
        for handle in self.handles:
            handle.remove()

    def _inputs(self, module, args, kwargs):
        if module.training:
            self.inputs.append({k: v.clone() for k, v in kwargs.items()
                                if isinstance(v, torch.Tensor)})

    def _logits(self, module, args, output):
        if module.training and output.requires_grad:
            self.logits.append(output.detach().clone())
            output.register_hook(lambda g: self.grads.append(g.detach().clone()))


def _check_last_step(run_dir: Path, probe: LastStep, replay: nn.Module, *, shift: bool,
                     ignore_index: int = -100) -> float:
    """Check the last metrics row against the probe's logits and gradients; return the
    measured gradient scale (recorded gradient / (1 - p_y)). For a causal LM the callback
    announces the Trainer's num_items_in_batch, so the recorded gradient is 1 - p_y itself."""
    replay.load_state_dict(probe.weights)
    replay.train()
    logits, targets, grads = [], [], []
    for inputs, z, g in zip(probe.inputs, probe.logits, probe.grads, strict=True):
        # the logits are the model's for that batch (replayed from the weights before the step)
        with torch.no_grad():
            again = replay(input_ids=inputs["input_ids"],
                           attention_mask=inputs["attention_mask"]).logits
        assert torch.allclose(again, z, atol=1e-5)
        labels = inputs["labels"]
        target = shifted_target(labels) if shift else labels
        c = z.shape[-1]
        logits.append(z.reshape(-1, c).numpy())
        grads.append(g.reshape(-1, c).numpy())
        targets.append(target.reshape(-1).numpy())
    z, g, t = np.concatenate(logits), np.concatenate(grads), np.concatenate(targets)
    keep = t != ignore_index
    n = int(keep.sum())
    # the per-position gradient the Trainer's loss produced, times the step's positions
    grad_y = n * np.abs(g[keep, t[keep]].astype(np.float64))
    scale = grad_y / (1.0 - softmax_target(z[keep], t[keep]))
    row = load_run(run_dir).metrics.iloc[-1].to_dict()
    if shift:
        assert abs(np.median(scale) - 1) > 1e-3  # the Trainer's own loss is not the mean...
        scale = np.ones_like(scale)  # ...but the announced count makes the columns exact
    assert_row_matches(row, expected_row(z, t, grad_scale=scale))
    assert row["batch_size"] == n
    return float(np.median(scale))


def _train(model: nn.Module, callback: SaturationCallback, tmp_path: Path, data: Tokens,
           probe: LastStep | None = None, eval_data: Tokens | None = None,
           **kwargs) -> Trainer:
    callbacks = [callback] + ([probe] if probe is not None else [])
    trainer = Trainer(model=model, args=arguments(tmp_path, **kwargs), train_dataset=data,
                      eval_dataset=eval_data, callbacks=callbacks)
    trainer.train()
    return trainer


def _tokens_per_step(run, tokens: torch.Tensor) -> list[int]:
    """Usable tokens of each step, from the sequences the samples table says it saw (one
    epoch: each sequence seen once)."""
    seen = run.samples.set_index("index")["last_seen_step"]
    assert seen.notna().all() and (seen.value_counts() == 8).all()
    return [int(tokens[seen.index[seen == s]].sum()) for s in range(4)]


def _warned_scale(record: list) -> bool:
    return any("gradient columns" in str(w.message) for w in record)


@pytest.mark.parametrize("path", ["classifier", "language_model"])
def test_causal_lm_targets_are_the_shifted_labels(tmp_path, monkeypatch, path):
    # "language_model": the path of a vocabulary-sized head, reading the model loss's own
    # log-softmax; the hand-checked rows are the same
    recorders = record_as_a_language_model(monkeypatch) if path == "language_model" else []
    model = gpt2()
    assert shifts_labels(model)
    probe = LastStep("lm_head")
    callback = SaturationCallback("lm_head", tmp_path / "run", index_key="index",
                                  flush_every=3, histogram_every=2, dataset="tokens")
    data = Tokens("lm")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        trainer = _train(model, callback, tmp_path, data, probe, Tokens("lm", n=8, seed=1),
                         eval_strategy="steps", eval_steps=2, per_device_eval_batch_size=8)
        trainer.evaluate()
    scale = _check_last_step(callback.run_dir, probe, gpt2(), shift=True)
    assert scale == 1 and not _warned_scale(record)
    run = load_run(callback.run_dir)
    # one row per optimizer step (2 micro-batches of 4 sequences); evaluation left no row
    assert run.metrics["step"].tolist() == [0, 1, 2, 3]
    # every sequence was seen once (the per-sample record is per sequence), and each step
    # counted the tokens that have a next token of the 8 sequences it saw
    assert _tokens_per_step(run, data.lengths - 1) == run.metrics["batch_size"].tolist()
    assert not model.lm_head._forward_hooks and not model._forward_pre_hooks
    assert not model._forward_hooks
    if path == "language_model":  # 2 micro-batches per step, 4 steps
        assert [r.reused_log_softmax for r in recorders] == [8]


@pytest.mark.filterwarnings(SCALE_WARNING)
def test_causal_lm_run_directory_and_report(tmp_path):
    callback = SaturationCallback("lm_head", tmp_path / "run", index_key="index")
    _train(gpt2(), callback, tmp_path, Tokens("lm"))
    config = json.loads((callback.run_dir / schema.CONFIG).read_text())
    assert config["method"] == "softmax" and config["task"] == "causal-lm"
    assert config["framework"] == "transformers" and config["seed"] == 0
    assert config["gradient_accumulation_steps"] == 2 and config["train_size"] == N_SEQ
    summary = json.loads((callback.run_dir / schema.SUMMARY).read_text())
    assert list(summary) == list(schema.SUMMARY_FIELDS)
    assert summary["steps"] == 4 and summary["finished"] is True
    assert summary["model"] == "GPT2LMHeadModel"
    assert list(callback.run_dir.glob("events.out.tfevents.*"))
    text = report(callback.run_dir)
    assert "# satkit report" in text and callback.run_dir.name in text


def test_sequence_classifier_gradient_columns_and_scale_warning(tmp_path):
    model = bert()
    assert not shifts_labels(model)
    probe = LastStep("classifier")
    callback = SaturationCallback("classifier", tmp_path / "run", index_key="index")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _train(model, callback, tmp_path, Tokens("sequence"), probe)
    scale = _check_last_step(callback.run_dir, probe, bert(), shift=False)
    assert _warned_scale(record) == (abs(scale - 1) > GRADIENT_SCALE_TOLERANCE)
    run = load_run(callback.run_dir)
    assert run.metrics["batch_size"].tolist() == [8, 8, 8, 8]
    assert len(run.samples) == N_SEQ and run.samples["last_seen_step"].notna().all()


def test_sequence_classifier_without_accumulation_is_exact(tmp_path):
    probe = LastStep("classifier")
    callback = SaturationCallback("classifier", tmp_path / "run")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        _train(bert(), callback, tmp_path, Tokens("sequence"), probe,
               gradient_accumulation_steps=1, per_device_train_batch_size=8)
    assert np.isclose(_check_last_step(callback.run_dir, probe, bert(), shift=False), 1.0)
    assert not _warned_scale(record)
    assert len(load_run(callback.run_dir).samples) == 0  # no index_key: no per-sample record


@pytest.mark.filterwarnings(SCALE_WARNING)
def test_token_classifier_is_not_shifted(tmp_path):
    model = bert(BertForTokenClassification)
    assert not shifts_labels(model)
    probe = LastStep("classifier")
    callback = SaturationCallback("classifier", tmp_path / "run", index_key="index")
    data = Tokens("token")
    _train(model, callback, tmp_path, data, probe)
    _check_last_step(callback.run_dir, probe, bert(BertForTokenClassification), shift=False)
    run = load_run(callback.run_dir)
    assert _tokens_per_step(run, data.lengths) == run.metrics["batch_size"].tolist()


def test_bad_head_path_lists_the_children(tmp_path):
    callback = SaturationCallback("model.lm_head", tmp_path / "run")
    with pytest.raises(ValueError, match=r"top-level children are \['transformer', 'lm_head'\]"):
        _train(gpt2(), callback, tmp_path, Tokens("lm"))


def test_label_smoothing_is_refused(tmp_path):
    callback = SaturationCallback("classifier", tmp_path / "run")
    with pytest.raises(ValueError, match="label_smoothing_factor"):
        _train(bert(), callback, tmp_path, Tokens("sequence"), label_smoothing_factor=0.1)


def test_index_column_dropped_by_the_trainer_is_explained(tmp_path):
    callback = SaturationCallback("classifier", tmp_path / "run", index_key="index")
    model = bert()
    with pytest.raises(ValueError, match="remove_unused_columns=False"):
        _train(model, callback, tmp_path, Tokens("sequence"), remove_unused_columns=True)
    callback.close()
    assert not model._forward_pre_hooks and not model.classifier._forward_hooks


@pytest.mark.filterwarnings(SCALE_WARNING)
@pytest.mark.parametrize("path", ["classifier", "language_model"])
def test_no_host_sync_in_the_callback_per_step(tmp_path, monkeypatch, path):
    recorders = record_as_a_language_model(monkeypatch) if path == "language_model" else []
    active = guard_host_syncs(monkeypatch)
    callback = SaturationCallback("lm_head", tmp_path / "run", index_key="index",
                                  flush_every=1000)
    for name in ("_before_forward", "_after_forward", "on_pre_optimizer_step"):
        method = getattr(callback, name)

        def watched(*a, _method=method, **k):
            active["on"] = True
            try:
                return _method(*a, **k)
            finally:
                active["on"] = False
        setattr(callback, name, watched)
    _train(gpt2(), callback, tmp_path, Tokens("lm"))
    assert len(load_run(callback.run_dir).metrics) == 4
    assert [r.reused_log_softmax for r in recorders] == ([8] if recorders else [])



class LockProbe(TrainerCallback):
    """Tries, during training, to take the run directory the satkit callback writes."""

    def __init__(self, satkit_callback: SaturationCallback) -> None:
        self.satkit, self.refused = satkit_callback, None

    def on_step_end(self, args, state, control, **kwargs):
        if self.refused is None:
            self.refused = lock_refusal(self.satkit.run_dir)

def test_the_run_directory_is_locked_while_training_and_released_after(tmp_path):
    from satkit.run_dir import lock_run_dir

    callback = SaturationCallback("lm_head", tmp_path / "run")
    probe = LockProbe(callback)
    trainer = Trainer(model=gpt2(), args=arguments(tmp_path, max_steps=2),
                      train_dataset=Tokens("lm"), callbacks=[callback, probe])
    trainer.train()
    assert probe.refused and probe.refused.pid == os.getpid()  # held by the writer
    with lock_run_dir(callback.run_dir) as lock:  # and let go of when train() ended
        assert lock.held
