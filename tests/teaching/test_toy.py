"""The teaching toy against closed forms: softmax of a margin, Eq. 5 on a hand-built geometry."""

import math

import numpy as np
import pytest
import torch

from satkit.teaching import (
    MEAN_ABS_XI,
    fitting_path,
    noise_by_angle,
    noisy_response,
    saturation_by_margin,
    sigmoid_saturation,
    toy_layer,
)


def test_toy_layer_sets_norms_and_angle():
    x, w, y = toy_layer([2.0, 3.0], [0.0, 60.0], num_classes=4)
    logits = torch.nn.functional.linear(x, w)
    assert torch.allclose(logits[:, 0], torch.tensor([2.0, 1.5], dtype=torch.float64))
    assert torch.all(logits[:, 1:] == 0) and torch.all(y == 0)
    assert torch.allclose(x.norm(dim=1) * w[0].norm(), torch.tensor([2.0, 3.0], dtype=x.dtype))


def test_margin_sweep_matches_closed_form_and_gradient_is_p_minus_one():
    m = np.array([0.0, 1.0, 5.0, 10.0])
    f = saturation_by_margin(m, num_classes=10)
    p = np.exp(m) / (np.exp(m) + 9)
    np.testing.assert_allclose(f["p_target"], p, rtol=1e-12)
    np.testing.assert_allclose(f["grad_target"], p - 1, rtol=1e-12)
    np.testing.assert_allclose(f["grad_other"], (1 - p) / 9, rtol=1e-12)


def test_two_class_softmax_is_the_sigmoid():
    f = sigmoid_saturation(np.linspace(-6, 6, 13))
    np.testing.assert_allclose(f["p_target_2class"], f["sigmoid"], rtol=1e-12)
    np.testing.assert_allclose(f["dsigmoid"], f["sigmoid"] * (1 - f["sigmoid"]), rtol=1e-12)


def test_mean_noise_is_eq5_with_mean_abs_xi():
    f = noise_by_angle([0.0, 60.0, 90.0], [4.0], alpha2=0.25)
    expected = 0.5 * MEAN_ABS_XI * 4.0 * (1 - np.cos(np.radians([0.0, 60.0, 90.0])))
    np.testing.assert_allclose(f["noise"], expected, rtol=1e-12, atol=1e-12)


def test_noisy_response_without_noise_is_softmax_and_noise_only_lowers_p():
    clean = noisy_response([1.0, 6.0], alpha2=0.0, angle_deg=45.0, draws=10)
    np.testing.assert_allclose(clean["p_noisy_mean"], clean["p_clean"], rtol=1e-12)
    noisy = noisy_response([1.0, 6.0], alpha2=1.0, angle_deg=45.0, draws=200)
    assert (noisy["p_noisy_q90"] <= noisy["p_clean"] + 1e-12).all()
    assert (noisy["grad_noisy_mean"] >= noisy["grad_clean"]).all()
    with pytest.raises(ValueError, match="angle_deg"):
        noisy_response([1.0], alpha2=1.0, angle_deg=90.0)


def test_fitting_path_anneals_to_zero_noise():
    f = fitting_path(alpha2=1.0, steps=5, end_angle=0.0, draws=100)
    assert f["noise_mean"].iloc[-1] == pytest.approx(0.0, abs=1e-9)
    assert f["p_noisy_mean"].iloc[-1] == pytest.approx(f["p_clean"].iloc[-1])
    assert math.isclose(f["angle"].iloc[0], 85.0)
