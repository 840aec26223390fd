"""The trainer's calibration: the device accumulator equals the numpy reference; an evaluation
reads the device once; the last epoch's training logits are measured without a sync in the step
and survive a stop and resume; two gloo ranks give what one process gives."""

import json
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from satkit.analysis.calibration import calibration
from satkit.data import DeviceLoader
from satkit.training import StopRequested, Trainer
from satkit.training.calibration import MEASURES, TopOneCalibration

SYNC_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")
FIGURES = ("ece", "ece_adaptive", "brier", "confidence", "overconfidence")


def _reference(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """satkit.analysis.calibration of the same float32 softmax the device takes."""
    probs = torch.softmax(logits.detach().float(), dim=1).numpy()
    return calibration(probs, labels.numpy())


def _blobs(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    return centres[y] + 1.5 * torch.randn(n, 2, generator=g), y


def _trainer(x, y, epochs=2, **kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DeviceLoader(x, y, batch_size=32, seed=0)
    test = DeviceLoader(x[:200], y[:200], batch_size=64, shuffle=False)
    return Trainer(model, opt, loader, test_data=test, epochs=epochs, progress=False, **kw)


def _spy(monkeypatch, calls, active=lambda: True):
    for name in SYNC_METHODS:
        original = getattr(torch.Tensor, name)

        def spy(self, *a, _name=name, _orig=original, **k):
            if active():
                calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)


# -- the accumulator ----------------------------------------------------------------------------


def test_accumulator_equals_the_numpy_reference_with_saturated_and_tied_rows():
    g = torch.Generator().manual_seed(1)
    logits = 4 * torch.randn(300, 10, generator=g)
    logits[:60, 3] += 200.0  # saturated: float32 softmax gives exactly 1.0 (tied confidences)
    logits[60:80] = torch.tensor([2.0, 2.0] + [0.0] * 8)  # two classes tie at the top
    labels = torch.randint(0, 10, (300,), generator=g)
    labels[:30] = 3
    acc = TopOneCalibration("cpu")
    for start, stop in ((0, 7), (7, 150), (150, 151), (151, 300)):  # uneven batches
        acc.add(logits[start:stop], labels[start:stop])
    got = dict(zip(MEASURES, acc.result().tolist(), strict=True))
    want = _reference(logits, labels)
    assert (torch.softmax(logits[:60], 1).amax(1) == 1.0).all()
    for name in MEASURES:
        assert got[name] == pytest.approx(want[name], rel=1e-12, abs=1e-15), name
    assert acc.count == 300
    acc.reset()
    assert all(np.isnan(acc.result().tolist()))  # nothing added: NaN, not an error


# -- the evaluation pass ---------------------------------------------------------------------


def test_evaluate_reads_the_device_once_and_equals_the_reference(monkeypatch):
    x, y = _blobs()
    trainer = _trainer(x, y, epochs=1)
    trainer.fit()
    calls = []
    _spy(monkeypatch, calls)
    result = trainer.evaluate()
    monkeypatch.undo()
    assert calls == ["tolist"]  # one host read per evaluation, as before calibration
    with torch.no_grad():
        logits = trainer.model.eval()(x[:200])
    trainer.model.train()
    want = _reference(logits, y[:200])
    assert result.samples == 200
    assert result.error == pytest.approx(100 * (1 - want["accuracy"]))
    for name in FIGURES:
        assert getattr(result, name) == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
    # the epoch's row holds the same figures
    row = trainer.history[-1]
    assert row.test_ece == pytest.approx(result.ece, rel=1e-12)
    assert row.test_overconfidence == pytest.approx(result.overconfidence, rel=1e-12)


def test_the_last_epoch_measures_its_training_logits_without_a_sync_in_the_step(monkeypatch):
    x, y = _blobs()
    trainer = _trainer(x, y, epochs=2)
    seen = []

    def keep(module, inputs, output):  # the logits each loss of the last epoch saw
        if trainer.epoch == 1 and module.training:  # not the evaluation's
            seen.append(output.detach().clone())

    trainer.model.register_forward_hook(keep)
    in_step, calls = [False], []
    original = Trainer.train_step

    def train_step(self, x_, y_, index):
        in_step[0] = True
        try:
            return original(self, x_, y_, index)
        finally:
            in_step[0] = False

    monkeypatch.setattr(Trainer, "train_step", train_step)
    _spy(monkeypatch, calls, active=lambda: in_step[0])
    trainer.fit()
    monkeypatch.undo()
    assert calls == []  # the accumulator added no host read to a step
    assert trainer.train_calibration is not None
    order = DeviceLoader(x, y, batch_size=32, seed=0).indices(1)  # epoch 1's order
    logits = torch.cat(seen)
    assert len(logits) == 256
    want = _reference(logits, y[order])
    for name in FIGURES:
        assert trainer.train_calibration[name] == pytest.approx(want[name], rel=1e-9,
                                                                abs=1e-12), name


def test_a_stop_in_the_last_epoch_resumes_to_the_same_training_calibration(monkeypatch,
                                                                           interrupt_at,
                                                                           tmp_path):
    torch.set_num_threads(1)  # both sides: the same float reductions
    x, y = _blobs()
    reference = _trainer(x, y, epochs=2)
    reference.fit()
    longer = _trainer(x, y, epochs=3)
    longer.fit()

    saved = []
    cut = _trainer(x, y, epochs=2, on_checkpoint=saved.append)
    interrupt_at(11)  # in epoch 1 (the last): its steps 8 to 11 done
    with pytest.raises(StopRequested):
        cut.fit()
    monkeypatch.undo()
    path = tmp_path / "state.pt"
    torch.save(saved[-1], path)
    state = torch.load(path, weights_only=True)  # what a checkpoint file holds
    assert state["train_calibration"]["count"] == 4 * 32

    resumed = _trainer(x, y, epochs=2)
    resumed.load_state_dict(state)
    resumed.fit()
    for name in FIGURES:
        assert resumed.train_calibration[name] == pytest.approx(
            reference.train_calibration[name], rel=1e-9, abs=1e-12), name
    assert resumed.history[-1].test_ece == pytest.approx(reference.history[-1].test_ece)

    grown = _trainer(x, y, epochs=3)  # --epochs grew: epoch 1 is no longer the last
    grown.load_state_dict(torch.load(path, weights_only=True))  # (the optimizer shares it)
    grown.fit()
    for name in FIGURES:
        assert grown.train_calibration[name] == pytest.approx(
            longer.train_calibration[name], rel=1e-9, abs=1e-12), name


# -- two ranks -------------------------------------------------------------------------------


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        x, y = _blobs(n=200)
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
        ddp = torch.nn.parallel.DistributedDataParallel(net)
        test = DeviceLoader(x, y, batch_size=16, shuffle=False, rank=rank, world_size=2)
        trainer = Trainer(ddp, torch.optim.SGD(net.parameters(), lr=0.1), test, epochs=1,
                          test_data=test, progress=False)
        both = trainer.evaluate()
        alone = trainer.evaluate(reduce=False) if rank == 0 else None  # no collective
        dist.barrier()
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump({"both": both.__dict__, "alone": alone and alone.__dict__}, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_gloo_ranks_evaluate_as_one_process(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    x, y = _blobs(n=200)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        logits = net(x)
    whole = _reference(logits, y)
    shard = DeviceLoader(x, y, batch_size=16, shuffle=False, rank=0, world_size=2).indices(0)
    rank0 = _reference(logits[shard], y[shard])
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["both"]["samples"] == 200
        for name in FIGURES:
            assert got["both"][name] == pytest.approx(whole[name], rel=1e-9, abs=1e-12), name
    alone = json.loads((tmp_path / "rank0.json").read_text())["alone"]
    assert alone["samples"] == 100
    for name in FIGURES:
        assert alone[name] == pytest.approx(rank0[name], rel=1e-9, abs=1e-12), name


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_evaluate_syncs_only_at_its_one_read_under_cuda_sync_debug_mode(monkeypatch):
    """Under sync debug mode "error" every synchronising call raises, except the one tolist
    that reads the evaluation (it switches the mode off first): the calibration adds no sync."""
    device = torch.device("cuda")
    x, y = (t.to(device) for t in _blobs())
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3)).to(device)
    batches = list(DeviceLoader(x, y, batch_size=64, shuffle=False))  # index copies done here
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, epochs=1,
                      progress=False)
    trainer.evaluate(batches)  # warm-up
    reads = []
    original = torch.Tensor.tolist

    def tolist(self):
        torch.cuda.set_sync_debug_mode("default")
        reads.append(self.numel())
        return original(self)

    monkeypatch.setattr(torch.Tensor, "tolist", tolist)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        result = trainer.evaluate(batches)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(reads) == 1 and result.samples == 256


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_last_epoch_step_does_not_sync_under_cuda_sync_debug_mode():
    """The training logits' accumulator of the last epoch adds no sync to a step."""
    device = torch.device("cuda")
    x, y = (t.to(device) for t in _blobs())
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3)).to(device)
    batches = list(DeviceLoader(x, y, batch_size=64, seed=0))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), batches,
                      epochs=1, progress=False)
    trainer._train_calibration = trainer._calibration_of_epoch()  # epoch 0 of 1: the last
    assert trainer._train_calibration is not None
    trainer.train_step(*batches[0])  # warm-up: optimizer state, buffers
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in batches[1:]:
            trainer.train_step(*batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer._train_calibration.count == 256
