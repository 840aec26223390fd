"""make_head_and_loss: every method by name honours the head contract the recorder relies on."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from satkit.heads import (
    LOSSES,
    ArcFace,
    CosFace,
    NoisySoftmax,
    TemperatureSoftmax,
    make_head_and_loss,
)
from satkit.losses import (
    ConfidencePenaltyLoss,
    DisturbLabelLoss,
    FocalLoss,
    LabelSmoothingCrossEntropy,
)

NAMES = ["softmax", "noisy", "label-smoothing", "confidence-penalty", "disturb-label", "focal",
         "temperature", "cosface", "arcface"]


def _batch(n=16, d=8, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g)


def test_registry_names():
    assert list(LOSSES) == NAMES
    assert all(isinstance(v, str) and v for v in LOSSES.values())


@pytest.mark.parametrize("name", NAMES)
def test_head_contract_and_loss(name):
    torch.manual_seed(0)
    head, loss_fn = make_head_and_loss(name, 8, 5)
    assert isinstance(head.weight, nn.Parameter) and head.weight.shape == (5, 8)
    h, y = _batch()
    h.requires_grad_(True)
    logits = head(h, y)
    assert logits.shape == (16, 5) and logits.dtype == torch.float32
    assert head.last_noise.shape == (16,) and not head.last_noise.requires_grad
    assert torch.equal(head.last_target, y)
    clean = head.clean_logits(logits.detach(), y)
    loss = loss_fn(logits, y)
    assert loss.dtype == torch.float32 and loss.shape == () and math.isfinite(loss.item())
    loss.backward()
    assert head.weight.grad is not None and h.grad is not None
    no_target = head(h.detach())
    assert torch.equal(head.last_noise, torch.zeros(16)) and head.last_target is None
    head.eval()
    eval_logits = head(h.detach(), y)
    assert torch.equal(eval_logits, no_target)
    assert torch.allclose(clean, eval_logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(head.last_noise, torch.zeros(16))


@pytest.mark.parametrize(
    ("name", "head_type", "loss_type"),
    [
        ("softmax", NoisySoftmax, nn.CrossEntropyLoss),
        ("noisy", NoisySoftmax, nn.CrossEntropyLoss),
        ("label-smoothing", NoisySoftmax, LabelSmoothingCrossEntropy),
        ("confidence-penalty", NoisySoftmax, ConfidencePenaltyLoss),
        ("disturb-label", NoisySoftmax, DisturbLabelLoss),
        ("focal", NoisySoftmax, FocalLoss),
        ("temperature", TemperatureSoftmax, nn.CrossEntropyLoss),
        ("cosface", CosFace, nn.CrossEntropyLoss),
        ("arcface", ArcFace, nn.CrossEntropyLoss),
    ],
)
def test_each_name_builds_its_pair(name, head_type, loss_type):
    head, loss_fn = make_head_and_loss(name, 8, 5)
    assert type(head) is head_type and type(loss_fn) is loss_type


def test_settings_are_passed_through_with_documented_defaults():
    assert make_head_and_loss("softmax", 8, 5, alpha2=0.5)[0].alpha2 == 0.0
    noisy = make_head_and_loss("noisy", 8, 5, alpha2=0.5, noise="free", xi_per="batch")[0]
    assert (noisy.alpha2, noisy.noise, noisy.xi_per) == (0.5, "free", "batch")
    assert make_head_and_loss("noisy", 8, 5)[0].alpha2 == 0.1
    for name in ("label-smoothing", "confidence-penalty", "disturb-label", "focal"):
        assert make_head_and_loss(name, 8, 5)[0].alpha2 == 0.0
    assert make_head_and_loss("label-smoothing", 8, 5, epsilon=0.2)[1].epsilon == 0.2
    assert make_head_and_loss("confidence-penalty", 8, 5, beta=0.4)[1].beta == 0.4
    assert make_head_and_loss("disturb-label", 8, 5, disturb_alpha=0.3)[1].alpha == 0.3
    assert make_head_and_loss("focal", 8, 5, gamma=1.0)[1].gamma == 1.0
    assert make_head_and_loss("temperature", 8, 5)[0].temperature == 2.0
    cos = make_head_and_loss("cosface", 8, 5)[0]
    arc = make_head_and_loss("arcface", 8, 5, s=16.0, easy_margin=True)[0]
    assert (cos.s, cos.m, arc.s, arc.m, arc.easy_margin) == (30.0, 0.35, 16.0, 0.5, True)
    assert make_head_and_loss("arcface", 8, 5, m=0.2)[0].m == 0.2


def test_softmax_is_plain_cross_entropy():
    head, loss_fn = make_head_and_loss("softmax", 8, 5)
    h, y = _batch()
    assert torch.equal(loss_fn(head(h, y), y), F.cross_entropy(F.linear(h, head.weight), y))


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown loss 'hinge'.*label-smoothing.*arcface"):
        make_head_and_loss("hinge", 8, 5)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("noisy", {"alpha2": -1.0}, "alpha2"),
        ("label-smoothing", {"epsilon": 1.0}, "epsilon"),
        ("confidence-penalty", {"beta": -0.5}, "beta"),
        ("disturb-label", {"disturb_alpha": 2.0}, "disturb_alpha"),
        ("focal", {"gamma": -1.0}, "gamma"),
        ("temperature", {"temperature": 0.0}, "temperature"),
        ("cosface", {"s": 0.0}, "s "),
        ("cosface", {"m": 1.2}, "m "),
        ("arcface", {"m": -0.5}, "m "),
    ],
)
def test_bad_settings_name_the_argument(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_head_and_loss(name, 8, 5, **kwargs)


def test_settings_of_other_methods_are_ignored():
    make_head_and_loss("softmax", 8, 5, epsilon=5.0, gamma=-1.0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cuda_no_host_sync_after_first_step(name):
    head, loss_fn = make_head_and_loss(name, 8, 5)
    head, loss_fn = head.cuda(), loss_fn.cuda()
    h, y = (t.cuda() for t in _batch())
    loss_fn(head(h, y), y).backward()  # the first forward checks values once
    torch.cuda.set_sync_debug_mode("error")
    try:
        logits = head(h, y)
        loss_fn(logits, y).backward()
        head.clean_logits(logits.detach(), y)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert head.last_noise.device.type == "cuda"
