"""The head contract, written once (satkit.heads.base), and low-precision heads."""

import pytest
import torch
import torch.nn.functional as F

from satkit.heads import ArcFace, CosFace, NoisySoftmax, TemperatureSoftmax
from satkit.heads.base import ClassifierHead, SaturationHead

HEADS = [lambda **kw: NoisySoftmax(6, 4, alpha2=0.5, **kw),
         lambda **kw: TemperatureSoftmax(6, 4, temperature=2.0, **kw),
         lambda **kw: CosFace(6, 4, **kw), lambda **kw: ArcFace(6, 4, **kw)]


@pytest.mark.parametrize("make", HEADS)
def test_every_head_follows_the_contract(make):
    head = make()
    assert isinstance(head, ClassifierHead) and isinstance(head, SaturationHead)
    assert not isinstance(torch.nn.Linear(3, 2), SaturationHead)  # no clean_logits
    x, y = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 0])
    logits = head(x, y)
    assert torch.equal(head.last_target, y) and head.last_noise.shape == (5,)
    clean = head.clean_logits(logits, y)
    torch.testing.assert_close(clean, head.eval()(x), rtol=1e-5, atol=1e-5)
    assert head.last_target is None and not head.last_noise.any()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("make", HEADS)
def test_low_precision_heads_compute_in_float32(make, dtype):
    torch.manual_seed(0)
    ref = make()  # float32, holding the low-precision weights rounded
    ref.load_state_dict({k: v.to(dtype).float() for k, v in ref.state_dict().items()})
    y = torch.tensor([0, 1, 2, 3, 0])
    for head in (make().to(dtype), make(dtype=dtype)):
        head.load_state_dict({k: v.to(dtype) for k, v in ref.state_dict().items()})
        for x in (torch.randn(5, 6), torch.randn(5, 6).to(dtype)):
            logits = head.eval()(x)  # the float32 maths on the rounded weights
            assert logits.dtype == torch.float32
            torch.testing.assert_close(logits, ref.eval()(x.float()))
            loss = F.cross_entropy(head.train()(x, y), y)
            loss.backward()
            assert loss.dtype == torch.float32 and head.weight.grad.dtype == dtype
            assert torch.isfinite(head.weight.grad.float()).all()
            head.zero_grad()
