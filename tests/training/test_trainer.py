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
    with pytest.raises(NonFiniteError, match=r"non-finite at step \d+"):
        trainer.fit()


def test_bad_epochs():
    x, y = _blobs()
    with pytest.raises(ValueError, match="epochs"):
        _trainer(x, y, epochs=0)
