"""Every metrics column against a hand computation in float64 (plain loops and numpy)."""

import math

import numpy as np
import pytest
import torch
from recorder_models import make_data, make_net, train_step

from satkit.columns import column_names
from satkit.hooks import SaturationRecorder

THRESHOLDS = (0.3, 0.5)


def _softmax(f):
    e = np.exp(f - f.max())
    return e / e.sum()


def hand_row(net, x, y, xi, alpha2, user_loss=None):
    """The metrics row of one step, by hand: features, Eq. 5 noise and its gradient
    (docs/concept.md, "The gradient")."""
    w1 = net.body.weight.detach().double().numpy()
    b1 = net.body.bias.detach().double().numpy()
    w = net.head.weight.detach().double().numpy()
    feats = np.tanh(x.double().numpy() @ w1.T + b1)
    y = y.numpy()
    n, c = len(y), w.shape[0]
    alpha = math.sqrt(alpha2)
    cols = {k: [] for k in ("p", "pn", "ce", "gt", "gl", "gx", "noise", "cos", "xn", "wn", "fy",
                            "margin")}
    grad_w = np.zeros_like(w)
    for i in range(n):
        xv, t = feats[i], y[i]
        wy = w[t]
        a = alpha * abs(xi[i])
        xn, wn = np.linalg.norm(xv), np.linalg.norm(wy)
        noise = a * (wn * xn - wy @ xv)  # Eq. 5: alpha |xi| ||W_y|| ||X|| (1 - cos)
        f = w @ xv
        fn = f.copy()
        fn[t] -= noise
        big_p = _softmax(fn)
        g = big_p.copy()
        g[t] -= 1.0  # dL_i/df = P - onehot (per sample)
        dfy_dx = (1 + a) * wy - a * (wn / xn) * xv
        dfy_dw = (1 + a) * xv - a * (xn / wn) * wy
        gx = g[t] * dfy_dx
        for j in range(c):
            if j != t:
                gx = gx + g[j] * w[j]
                grad_w[j] += g[j] * xv / n
            else:
                grad_w[j] += g[t] * dfy_dw / n
        others = max(f[j] for j in range(c) if j != t)
        for key, val in (("p", _softmax(f)[t]), ("pn", big_p[t]), ("ce", -math.log(big_p[t])),
                         ("gt", abs(g[t])), ("gl", np.linalg.norm(g)),
                         ("gx", np.linalg.norm(gx)), ("noise", noise),
                         ("cos", wy @ xv / (wn * xn)), ("xn", xn), ("wn", wn), ("fy", f[t]),
                         ("margin", f[t] - others)):
            cols[key].append(val)
    v = {k: np.array(vals) for k, vals in cols.items()}
    p, pn = v["p"], v["pn"]
    row = {
        "step": 0, "batch_size": n,
        "loss": v["ce"].mean() if user_loss is None else user_loss,
        "p_target_mean": p.mean(), "p_target_median": np.median(p),
        "p_target_q10": np.quantile(p, 0.1), "p_target_q90": np.quantile(p, 0.9),
        "p_target_noisy_mean": pn.mean(), "p_target_noisy_median": np.median(pn),
        "p_target_noisy_q10": np.quantile(pn, 0.1), "p_target_noisy_q90": np.quantile(pn, 0.9),
        "saturated_frac": np.mean(p >= THRESHOLDS[-1]),
        "saturated_frac_noisy": np.mean(pn >= THRESHOLDS[-1]),
        "grad_target_mean": v["gt"].mean(), "grad_logits_norm_mean": v["gl"].mean(),
        "grad_features_norm_mean": v["gx"].mean(), "grad_weight_norm": np.linalg.norm(grad_w),
        "noise_mean": v["noise"].mean(), "noise_max": v["noise"].max(),
        "cos_target_mean": v["cos"].mean(), "feature_norm_mean": v["xn"].mean(),
        "weight_norm_target_mean": v["wn"].mean(), "logit_target_mean": v["fy"].mean(),
        "logit_margin_mean": v["margin"].mean(), "nonfinite": False,
    }
    for tau in THRESHOLDS:
        row[f"saturated_frac_{tau:g}"] = np.mean(p >= tau)
        row[f"saturated_frac_noisy_{tau:g}"] = np.mean(pn >= tau)
    return row


def _check(got: dict, want: dict) -> None:
    assert set(got) == set(want) == set(column_names(THRESHOLDS))
    for col, value in want.items():
        assert got[col] == pytest.approx(value, rel=1e-4, abs=1e-6), col


@pytest.mark.parametrize("loss_kw", [False, True])
def test_every_column_matches_hand_computation_noisy_softmax(loss_kw):
    alpha2 = 0.5
    net = make_net("noisy", alpha2=alpha2, seed=3)
    x, y = make_data(n=16, seed=3)
    xi = torch.randn(16, generator=torch.Generator().manual_seed(3 + 7)).double().numpy()
    want = hand_row(net, x, y, xi, alpha2)
    with SaturationRecorder(net.head, thresholds=THRESHOLDS) as rec:
        loss = train_step(net, x, y, rec, loss_kw=loss_kw)
        got = rec.metrics().iloc[0].to_dict()
    if loss_kw:
        want["loss"] = float(loss)
    assert 0 < want["saturated_frac_0.3"] < 1 and want["noise_mean"] > 0  # a non-trivial case
    # the two views differ here: the noise lowers p_y under the training logits
    assert want["saturated_frac_noisy_0.3"] < want["saturated_frac_0.3"]
    _check(got, want)


def test_every_column_matches_hand_computation_linear_head():
    net = make_net("linear", seed=5)
    x, y = make_data(n=10, seed=5)
    net.body.weight.requires_grad_(True)
    want = hand_row(net, x, y, np.zeros(10), alpha2=0.0)
    with SaturationRecorder(net.head, thresholds=THRESHOLDS) as rec:
        train_step(net, x, y, rec)
        got = rec.metrics().iloc[0].to_dict()
    assert want["noise_max"] == 0 and want["p_target_noisy_mean"] == want["p_target_mean"]
    _check(got, want)
