"""Trainer loop on a tiny model: learns, no host sync per step, non-finite loss stops it."""

import pytest
import torch
from torch import nn

from satkit.data import DeviceLoader
from satkit.training.trainer import NonFiniteError, Trainer

SYNC_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__")


def _blobs(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    return centres[y] + torch.randn(n, 2, generator=g), y


def _trainer(x, y, **kw):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DeviceLoader(x, y, batch_size=32, seed=0)
    test = DeviceLoader(x, y, batch_size=128, shuffle=False)
    return Trainer(model, opt, loader, test_data=test, progress=False, **kw)


def test_learns_and_reports_each_epoch():
    x, y = _blobs()
    seen = []
    trainer = _trainer(x, y, epochs=3, on_epoch=seen.append)
    history = trainer.fit()
    assert [r.epoch for r in history] == [0, 1, 2] and seen == history
    assert history[-1].step == 3 * 8 == trainer.step
    assert history[-1].test_error < 5.0
    assert history[-1].train_loss < history[0].train_loss


def test_plain_dataloader_batches_work():
    x, y = _blobs()
    torch.manual_seed(0)
    model = nn.Linear(2, 3)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=64)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), data,
                      test_data=data, epochs=2, progress=False)
    assert len(trainer.fit()) == 2


def test_no_host_sync_inside_a_step(monkeypatch):
    x, y = _blobs()
    trainer = _trainer(x, y, epochs=1)
    batches = list(trainer.train_data)
    calls = []
    for name in SYNC_METHODS:
        original = getattr(torch.Tensor, name)

        def spy(self, *a, _name=name, _orig=original, **k):
            calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    for batch in batches:
        trainer.train_step(*batch)
    monkeypatch.undo()
    assert calls == []


def test_non_finite_loss_stops_with_the_step():
    x, y = _blobs()
    x[40] = float("nan")  # sample 40 poisons whichever batch it lands in
    trainer = _trainer(x, y, epochs=2, sync_every=4)
    with pytest.raises(NonFiniteError, match=r"non-finite training loss \(NaN or Inf\) at step "
                                             r"\d+ .*Lower the learning rate or alpha2"):
        trainer.fit()


def test_head_refusing_non_finite_features_becomes_the_trainer_error():
    """A head's own "features contain NaN or Inf" check (satkit's heads run it on CPU) ends
    in the trainer's message, after flushing, not in the head's ValueError."""
    from satkit.heads import NoisySoftmax
    from satkit.hooks import SaturationRecorder

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = nn.Linear(2, 8), NoisySoftmax(8, 3, alpha2=0.1)

        def forward(self, x, y=None):
            return self.head(self.body(x), y)

    x, y = _blobs()
    torch.manual_seed(0)
    model = Net()
    rows = []

    class Rows:
        def write(self, new):
            rows.extend(new)

        def close(self):
            pass

    recorder = SaturationRecorder(model.head, num_samples=len(x), flush_every=100,
                                  sinks=[Rows()])
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=1e30),
                      DeviceLoader(x, y, batch_size=32, seed=0), epochs=1, progress=False,
                      recorder=recorder)
    with pytest.raises(NonFiniteError, match=r"non-finite .* at step 1 .*no checkpoint.*"
                                             r"Lower the learning rate or alpha2") as exc:
        trainer.fit()
    assert isinstance(exc.value.__cause__, ValueError)
    assert [r["step"] for r in rows] == list(range(trainer.step))  # all flushed before raising
    recorder.close()


def test_sample_counts_stay_on_the_host_and_old_checkpoints_load():
    x, y = _blobs()
    trainer = _trainer(x, y, epochs=1)
    batch = next(iter(trainer.train_data))
    trainer.train_step(*batch)
    state = trainer.state_dict()
    assert state["n"] == 32 and state["sums"].shape == (2,)
    old = {**state, "sums": torch.cat([state["sums"], torch.tensor([32.0], dtype=torch.float64)])}
    del old["n"]
    again = _trainer(x, y, epochs=1)
    again.load_state_dict(old)  # written before the count moved to the host
    assert again._n == 32 and torch.equal(again._sums, state["sums"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_step_does_not_sync_under_cuda_sync_debug_mode():
    """No device->host read and no host->device copy in a step (the sample count stays on the
    host), with satkit's Noisy Softmax model and the recorder on non-flush steps."""
    from satkit.heads import NoisySoftmax
    from satkit.hooks import SaturationRecorder
    from satkit.models import PRESETS, build_model

    device = torch.device("cuda")
    torch.manual_seed(0)
    model = build_model("digits-cnn", num_classes=10, in_channels=1,
                        head=NoisySoftmax(PRESETS["digits-cnn"].feature_dim, 10, alpha2=0.1))
    model = model.to(device)
    x = torch.randn(256, 1, 8, 8, device=device)
    y = torch.randint(0, 10, (256,), device=device)
    loader = DeviceLoader(x, y, batch_size=64, seed=0)
    recorder = SaturationRecorder(model.head, num_samples=256, flush_every=1000)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), loader,
                      epochs=1, recorder=recorder, progress=False)
    batches = list(loader)
    trainer.train_step(*batches[0])  # warm-up: the head checks its inputs once; buffers
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for batch in batches[1:]:
            trainer.train_step(*batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert trainer._n == 256
    recorder.close()


def test_bad_epochs():
    x, y = _blobs()
    with pytest.raises(ValueError, match="epochs"):
        _trainer(x, y, epochs=0)
