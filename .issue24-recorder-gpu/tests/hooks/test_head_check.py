"""What a head must be: modules with a 2-D weight that is not (C, D) class vectors are refused
when the recorder is built (not at the first step with "shape '[16, 16]' is invalid"), and a
forward that does not map (.., D) features to (.., C) logits through that weight is refused at
the forward, each time with the contract in the message."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from satkit.hooks import SaturationRecorder
from satkit.hooks.capture import HEAD_CONTRACT, check_head

CONTRACT = "with a 2-D `weight` of shape (C, D) whose row y is class y's vector W_y"


@pytest.mark.parametrize("head", [nn.Embedding(16, 16), nn.EmbeddingBag(16, 16)],
                         ids=["Embedding", "EmbeddingBag"])
def test_embeddings_are_refused_at_construction(head):
    with pytest.raises(TypeError, match=r"token ids, not features") as info:
        SaturationRecorder(head)
    assert CONTRACT in str(info.value) and "lm_head" in str(info.value)
    assert not head._forward_hooks  # nothing was left on the module


@pytest.mark.parametrize("sizes", [(16, 16), (10, 16)], ids=["square", "10 classes"])
def test_transformers_conv1d_is_refused_saying_what_to_pass(sizes):
    conv1d = pytest.importorskip("transformers.pytorch_utils").Conv1D
    head = conv1d(*sizes)  # (nf = out, nx = in): its weight is (nx, nf), transposed
    with pytest.raises(TypeError, match=r"Conv1D stores its weight transposed") as info:
        SaturationRecorder(head)
    assert CONTRACT in str(info.value) and "nn.Linear(conv.nx, conv.nf)" in str(info.value)


def test_a_conv1d_made_into_the_linear_it_names_is_recorded_like_it():
    """The way out the message gives: nn.Linear(nx, nf) with the transposed weight computes
    the same logits, and the recorder reads its rows as the class vectors."""
    conv1d = pytest.importorskip("transformers.pytorch_utils").Conv1D
    torch.manual_seed(0)
    conv = conv1d(5, 8)
    linear = nn.Linear(conv.nx, conv.nf)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.T)
        linear.bias.copy_(conv.bias)
    x, y = torch.randn(12, 8), torch.randint(0, 5, (12,))
    torch.testing.assert_close(linear(x), conv(x))
    with SaturationRecorder(linear, background=False) as rec:
        F.cross_entropy(linear(x), y).backward()
        rec.step(y)
    row = rec.metrics().iloc[0]
    w_y = conv.weight.T.double()[y]  # class y's vector: a column of Conv1D's weight
    assert row["weight_norm_target_mean"] == pytest.approx(w_y.norm(dim=1).mean().item(),
                                                           rel=1e-5)


def test_a_module_whose_declared_sizes_disagree_with_its_weight_is_refused():
    head = nn.Linear(8, 5)
    head.weight = nn.Parameter(torch.randn(8, 5))  # stored as (in, out)
    with pytest.raises(TypeError, match=r"declares out_features=5, in_features=8"):
        check_head(head)


def test_linear_and_satkit_heads_still_pass():
    from satkit import NoisySoftmax

    for head in (nn.Linear(8, 5), NoisySoftmax(8, 5, alpha2=0.1)):
        assert check_head(head) is head


class TransposedHead(nn.Module):
    """A head with no declared sizes whose weight is (D, C): only its forward tells."""

    def __init__(self, d: int, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight


def test_a_forward_that_does_not_match_the_weight_is_refused_naming_the_contract():
    head = TransposedHead(8, 5)
    x = torch.randn(4, 8, requires_grad=True)
    with SaturationRecorder(head, background=False):
        with pytest.raises(ValueError, match=r"logits of shape \(4, 5\), with a weight of "
                                             r"shape \(8, 5\)") as info:
            head(x)
    assert HEAD_CONTRACT in str(info.value)
