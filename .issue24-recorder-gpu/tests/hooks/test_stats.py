"""The per-step statistics as pure functions, against a float64 computation by hand."""

import pytest
import torch

from satkit.hooks import stats


@pytest.mark.parametrize("classes", [10, 100])  # X W^T and gathered rows of W
def test_feature_values_equal_a_float64_computation(classes):
    g = torch.Generator().manual_seed(classes)
    x, w = torch.randn(37, 16, generator=g), torch.randn(classes, 16, generator=g)
    target = torch.randint(0, classes, (37,), generator=g)
    valid = torch.rand(37, generator=g) > 0.2
    target[~valid] = -100  # ignored positions: any row, never an index error
    rows = torch.where(valid, target, 0)
    got = stats.feature_values(x, w, rows)
    want = {"feature_norm": x.double().pow(2).sum(1).sqrt(),
            "weight_norm": w.double()[rows].pow(2).sum(1).sqrt(),
            "dot": (w.double()[rows] * x.double()).sum(1)}
    for key, value in want.items():
        assert got[key].dtype == torch.float32
        torch.testing.assert_close(got[key][valid].double(), value[valid], rtol=1e-5, atol=1e-5)
    assert stats.feature_values(x.double(), w.double(), rows)["dot"].dtype \
        == torch.float64
