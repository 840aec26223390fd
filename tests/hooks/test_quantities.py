"""The declarations of what the recorder measures: consistent, and one line to add a column."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from satkit import columns as quantities
from satkit.columns import (
    GROUPS,
    QUANTILES,
    QUANTITIES,
    REDUCTIONS,
    VALUES,
    Quantity,
    column_names,
    describe,
    tensorboard_tag,
)
from satkit.hooks import SaturationRecorder
from satkit.hooks.layout import LOGGED


def test_declarations_are_consistent():
    names = column_names((0.9, 0.99))
    assert len(names) == len(set(names))
    for q in QUANTITIES:
        assert q.reduce in REDUCTIONS and q.group in GROUPS and q.description, q
        assert (q.value in VALUES) == (q.value is not None), q
        if q.reduce in QUANTILES:
            assert q.value in LOGGED, f"{q.name}: a quantile needs its value logged"
    for name in names:
        assert describe(name), name
        assert name in ("step", "saturated_frac", "saturated_frac_noisy") or tensorboard_tag(name)
    assert all(doc for _, doc in VALUES.values())


def test_a_new_column_is_one_declaration(monkeypatch):
    extra = Quantity("grad_target_max", "max", "grad_target", "gradient", "largest |dL_i/df_y|")
    monkeypatch.setattr(quantities, "QUANTITIES", (*QUANTITIES, extra))
    head = torch.nn.Linear(3, 4)
    x, y = torch.randn(6, 3), torch.randint(0, 4, (6,))
    with SaturationRecorder(head) as rec:
        logits = head(x)
        F.cross_entropy(logits, y).backward()
        rec.step(y)
        row = rec.metrics().iloc[0]
    p = logits.detach().softmax(1)[torch.arange(6), y]
    assert row["grad_target_max"] == pytest.approx(float((1 - p).max()), rel=1e-5)
    assert tensorboard_tag("grad_target_max") == "gradient/grad_target_max"


def test_quantity_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        QUANTITIES[0].name = "x"
