"""The compiled per-step statistics give the eager numbers (torch.compile, CPU inductor)."""

import pandas as pd
import pytest
import torch
from recorder_models import make_data, make_net, train_step

from satkit.hooks import SaturationRecorder, stats


@pytest.mark.slow
def test_compiled_statistics_equal_eager(monkeypatch):
    calls = []
    compiled = stats.kernels(True)
    monkeypatch.setattr(stats, "_COMPILED", [stats.Kernels(
        lambda *a: calls.append("logits") or compiled.logit_values(*a),
        lambda *a: calls.append("features") or compiled.feature_values(*a),
        lambda *a: calls.append("gradient") or compiled.gradient_values(*a))])
    x, y = make_data(n=12)
    tables = []
    for use_compiled in (False, True):
        net = make_net()
        with SaturationRecorder(net.head, num_samples=12, compile=use_compiled) as rec:
            for _ in range(3):
                train_step(net, x, y, rec, index=torch.arange(12), lr=0.5)
            tables.append((rec.metrics(), rec.samples()))
    # only the compiled run used them
    assert calls and set(calls) == {"logits", "features", "gradient"}
    pd.testing.assert_frame_equal(tables[0][0], tables[1][0], rtol=1e-5)
    pd.testing.assert_frame_equal(tables[0][1], tables[1][1], rtol=1e-5)
