"""Reading log p_y from the loss's own log-softmax (satkit.hooks.lossgraph, set_loss).

Known answers both ways: losses whose graph holds the log-softmax of the head's logits (found,
and equal to an independent computation) and losses whose graph does not, or holds one that is
not exactly it (not found); the recorded rows are the same either way and match float64.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from recorder_models import hand_token_columns
from torch import nn

from satkit.hooks import SaturationRecorder, stats
from satkit.hooks.lossgraph import find_log_softmax

N, T, D, V = 4, 64, 16, 300  # N*T*V > DEFER_LIMIT: reduced at the step, not at the flush


def batch(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(D, V).to(dtype)
    with torch.no_grad():
        head.weight.copy_(torch.randn(V, D, generator=g) * 0.5)
        head.bias.copy_(torch.randn(V, generator=g))
    x = torch.randn(N, T, D, generator=g, dtype=dtype).requires_grad_()
    y = torch.randint(0, V, (N, T), generator=g)
    y[0, :5] = -100
    return head, x, y


def flat(logits):
    return logits.detach().reshape(-1, logits.shape[-1])


FOUND = {
    "cross_entropy": lambda f, y: F.cross_entropy(f.reshape(-1, V), y.reshape(-1)),
    "hf_causal_lm": lambda f, y: F.cross_entropy(f.float().view(-1, V), y.view(-1),
                                                 reduction="sum") / 7,
    "label_smoothing": lambda f, y: F.cross_entropy(f.flatten(0, 1), y.flatten(),
                                                    label_smoothing=0.1),
    "log_softmax_nll": lambda f, y: F.nll_loss(F.log_softmax(f, -1).transpose(1, 2), y),
    "contiguous_copy": lambda f, y: F.cross_entropy(f.contiguous().clone().view(-1, V),
                                                    y.view(-1)),
}
NOT_FOUND = {
    "temperature": lambda f, y: F.cross_entropy((f / 2).reshape(-1, V), y.reshape(-1)),
    "sliced_positions": lambda f, y: F.cross_entropy(f[:, :-1].reshape(-1, V),
                                                     y[:, 1:].reshape(-1)),
    "no_log_softmax": lambda f, y: (f ** 2).mean(),
    "softmax_then_log": lambda f, y: F.nll_loss(torch.log(F.softmax(f, -1)).flatten(0, 1),
                                                y.flatten()),
    "over_positions": lambda f, y: -F.log_softmax(f, dim=1).mean(),
    "rounded_through_bfloat16": lambda f, y: F.cross_entropy(
        f.bfloat16().float().reshape(-1, V), y.reshape(-1)),
}


@pytest.mark.parametrize("name", FOUND)
def test_found_when_the_loss_takes_the_log_softmax_of_the_logits(name):
    head, x, y = batch()
    logits = head(x)
    loss = FOUND[name](logits, y)
    (logp,) = find_log_softmax(loss, [(logits.grad_fn, flat(logits))])
    assert logp is not None and logp.shape == (N * T, V)
    want = torch.log_softmax(flat(logits).double(), dim=1)
    assert torch.allclose(logp.double(), want, atol=1e-5)


@pytest.mark.parametrize("name", NOT_FOUND)
def test_not_found_when_it_is_not_exactly_theirs(name):
    head, x, y = batch()
    logits = head(x)
    loss = NOT_FOUND[name](logits, y)
    assert find_log_softmax(loss, [(logits.grad_fn, flat(logits))]) == [None]


def test_precision_rules_for_casts():
    # bfloat16 logits upcast by the loss: float32 log-probabilities, found
    head, x, y = batch(torch.bfloat16)
    logits = head(x)
    loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
    (logp,) = find_log_softmax(loss, [(logits.grad_fn, flat(logits))])
    assert logp is not None and logp.dtype == torch.float32
    # bfloat16 log-probabilities are coarser than the recorder's own float32: not used
    loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    assert find_log_softmax(loss, [(logits.grad_fn, flat(logits))]) == [None]
    # float64 logits with a float32 loss: not used either
    head, x, y = batch(torch.float64)
    logits = head(x)
    loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
    assert find_log_softmax(loss, [(logits.grad_fn, flat(logits))]) == [None]


def test_each_head_output_gets_its_own_and_none_after_backward():
    head, x, y = batch()
    a, b = head(x), head(x.flip(0))
    loss = F.cross_entropy(b.reshape(-1, V), y.reshape(-1))  # only b's
    found = find_log_softmax(loss, [(a.grad_fn, flat(a)), (b.grad_fn, flat(b))])
    assert found[0] is None and found[1] is not None
    assert torch.allclose(found[1], torch.log_softmax(flat(b), 1))
    loss.backward()  # frees the saved tensors
    assert find_log_softmax(loss, [(b.grad_fn, flat(b))]) == [None]
    assert find_log_softmax(loss.detach(), [(b.grad_fn, flat(b))]) == [None]


def test_values_from_the_log_softmax_match_float64_and_leave_it_unchanged():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6, 5, generator=g) * 3
    logits[1] = torch.tensor([9.0, 1, 2, 3, 4])  # the target is the largest logit
    logits[2] = torch.tensor([1.0, 7, 7, 0, 0])  # a tie with the target
    target = torch.tensor([0, 0, 1, 4, 2, 3])
    valid = torch.tensor([True, True, True, True, False, True])
    noise = torch.zeros(6)
    leaf = logits.clone().requires_grad_()
    logp = torch.log_softmax(leaf, dim=1)
    version, before = logp._version, logp.detach().clone()
    got = stats.logit_values_from_log_softmax(logits, logp, target, valid, noise)
    assert logp._version == version and torch.equal(logp.detach(), before)
    f = logits.double().numpy()
    for i in np.flatnonzero(valid.numpy()):
        y = int(target[i])
        lse = math.log(np.exp(f[i]).sum())
        assert got["logp_train"][i].item() == pytest.approx(f[i, y] - lse, abs=1e-6)
        assert got["f_y"][i].item() == pytest.approx(f[i, y], abs=1e-6)
        assert got["max_other"][i].item() == pytest.approx(np.delete(f[i], y).max(), abs=1e-5)
    assert torch.equal(got["logp_train"], got["logp_clean"])
    # the same as the recorder's own computation
    own = stats.logit_values(logits, None, target, valid, noise)
    for key in ("logp_train", "logp_clean", "f_y", "max_other"):
        assert torch.equal(own[key][valid], got[key][valid]), key
    # the loss's backward still works and sees the original values
    logp.sum().backward()
    assert leaf.grad is not None


def record(loss_fn, *, loss_follows, give_loss, micro=1):
    head, x, y = batch()
    rec = SaturationRecorder(head, background=False, histogram_every=None)
    for k in range(micro):
        part = slice(k * N // micro, (k + 1) * N // micro)
        rec.set_target(y[part], loss_follows=loss_follows)
        loss = loss_fn(head(x[part]), y[part]) / micro
        if give_loss:
            rec.set_loss(loss)
        loss.backward()
    rec.step()
    rows = rec.metrics()
    rec.close()
    return rows, head.weight.grad, rec.reused_log_softmax, (head, x, y)


@pytest.mark.parametrize("micro", [1, 2])
@pytest.mark.parametrize("name", ["cross_entropy", "hf_causal_lm", "temperature"])
def test_recorded_rows_are_the_same_with_and_without_the_loss(name, micro):
    fn = {**FOUND, **NOT_FOUND}[name]
    own, grad_own, reused_own, _ = record(fn, loss_follows=False, give_loss=False, micro=micro)
    got, grad_got, reused, _ = record(fn, loss_follows=True, give_loss=True, micro=micro)
    assert reused_own == 0
    assert reused == (micro if name in FOUND else 0)
    assert torch.equal(grad_own, grad_got)  # the loss's backward is untouched
    cols = [c for c in own.columns if own[c].dtype.kind == "f"]
    np.testing.assert_array_equal(own[cols].to_numpy(), got[cols].to_numpy())


def test_rows_from_the_loss_match_a_hand_computation():
    rows, _, reused, (head, x, y) = record(FOUND["cross_entropy"], loss_follows=True,
                                           give_loss=True)
    assert reused == 1
    row = rows.iloc[0]
    for col, value in hand_token_columns(head, x, y, tau=0.9)[0].items():
        assert row[col] == pytest.approx(value, rel=1e-5, abs=1e-6), col


def test_a_loss_announced_but_never_given_is_computed_at_the_gradient():
    own, *_ = record(FOUND["cross_entropy"], loss_follows=False, give_loss=False)
    got, _, reused, _ = record(FOUND["cross_entropy"], loss_follows=True, give_loss=False)
    assert reused == 0
    cols = [c for c in own.columns if own[c].dtype.kind == "f"]
    np.testing.assert_array_equal(own[cols].to_numpy(), got[cols].to_numpy())


def test_set_loss_none_reduces_at_once_and_bad_loss_is_refused():
    head, x, y = batch()
    with SaturationRecorder(head, background=False) as rec:
        rec.set_target(y, loss_follows=True)
        logits = head(x)
        cap = rec._captures[0]
        assert cap.awaits_loss and cap.logits is not None  # waits for the loss
        with pytest.raises(TypeError, match="loss must be a tensor or None"):
            rec.set_loss(1.5)
        rec.set_loss(None)
        assert cap.logits is None and rec.reused_log_softmax == 0
        F.cross_entropy(logits.reshape(-1, V), y.reshape(-1)).backward()
        rec.step()
        assert len(rec.metrics()) == 1
    with pytest.raises(ValueError, match="loss_follows"):
        SaturationRecorder(head).set_target(y, loss_follows="yes")


def test_autocast_cross_entropy_is_found():
    """Under autocast the head gives bfloat16 logits and cross-entropy casts them to float32
    first: the one cast allowed, so the float32 log-softmax is read."""
    head, x, y = batch()
    rec = SaturationRecorder(head, background=False)
    rec.set_target(y, loss_follows=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = head(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
    assert logits.dtype == torch.bfloat16
    rec.set_loss(loss)
    loss.backward()
    rec.step()
    row = rec.metrics().iloc[0]
    rec.close()
    assert rec.reused_log_softmax == 1
    keep = y.flatten() != -100
    p = torch.softmax(logits.detach().double().flatten(0, 1), 1)[keep, y.flatten()[keep]]
    assert row["p_target_mean"] == pytest.approx(p.mean().item(), rel=1e-5)
