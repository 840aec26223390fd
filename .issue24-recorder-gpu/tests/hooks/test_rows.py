"""The host side of a flush: quantiles of the logged values, against numpy's own."""

import numpy as np
import pytest

from satkit.hooks.rows import nanquantiles


@pytest.mark.parametrize("seed", range(5))
def test_nanquantiles_equal_numpy(seed):
    rng = np.random.default_rng(seed)
    values = rng.random((40, 17))
    values[rng.random(values.shape) < 0.3] = np.nan  # ragged rows, as padding makes them
    values[3] = np.nan  # a step without a usable position
    values[5, 1:], values[5, 0] = np.nan, 0.7  # a single value
    values[7, :] = 0.25  # ties
    qs = [0.1, 0.5, 0.9, 0.0, 1.0]
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        want = np.nanquantile(values, qs, axis=1)
    got = nanquantiles(values, qs)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert np.isnan(got[:, 3]).all() and (got[:, 5] == values[5, 0]).all()


def test_nanquantiles_of_hand_computed_rows():
    # [1, 2, 3, 4]: q10 at virtual index 0.3 -> 1.3; median 2.5; q90 at 2.7 -> 3.7.
    values = np.array([[4.0, np.nan, 1.0, 3.0, 2.0], [np.nan] * 5])
    got = nanquantiles(values, [0.1, 0.5, 0.9])
    np.testing.assert_allclose(got[:, 0], [1.3, 2.5, 3.7])
    assert np.isnan(got[:, 1]).all()
    assert nanquantiles(np.empty((2, 0)), [0.5]).shape == (1, 2)
