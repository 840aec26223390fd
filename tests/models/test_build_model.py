"""build_model's contract: signature, heads (default, module, factory), argument errors."""

import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from satkit import NoisySoftmax
from satkit.heads import CosFace, make_head_and_loss
from satkit.methods import DEFAULT_ALPHA2
from satkit.models import build_model


def test_signature_is_keyword_only_without_head_settings():
    params = inspect.signature(build_model).parameters
    assert list(params) == ["preset", "num_classes", "in_channels", "image_size", "head"]
    assert all(p.kind is p.KEYWORD_ONLY for name, p in params.items() if name != "preset")
    with pytest.raises(TypeError, match="alpha2"):
        build_model("digits-cnn", num_classes=10, in_channels=1, alpha2=0.5)


def test_default_head_is_noisy_softmax_at_the_catalogue_default():
    model = build_model("small-cnn", num_classes=100, in_channels=3, image_size=32)
    head = model.head
    assert isinstance(head, NoisySoftmax) and model.head_takes_target
    assert (head.in_features, head.num_classes, head.alpha2) == (256, 100, DEFAULT_ALPHA2)
    assert (head.noise, head.xi_per) == ("annealed", "sample")


def test_linear_factory_gets_no_target_and_a_given_module_is_used_as_is():
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([1, 2, 3, 4])
    linear = build_model("digits-cnn", num_classes=10, in_channels=1, head=nn.Linear)
    assert isinstance(linear.head, nn.Linear) and not linear.head_takes_target
    assert linear(x, y).shape == (4, 10)  # the target is dropped, not passed to Linear
    given = nn.Linear(128, 10, bias=False)
    assert build_model("digits-cnn", num_classes=10, in_channels=1, head=given).head is given
    torch.manual_seed(0)
    noisy = build_model("digits-cnn", num_classes=10, in_channels=1,
                        head=NoisySoftmax(128, 10, alpha2=1.0))
    noisy(x, y)
    assert torch.equal(noisy.head.last_target, y) and bool((noisy.head.last_noise > 0).any())


def test_registry_factory_as_training_passes_it():
    made = {}

    def head(in_features, num_classes):
        made["head"], made["loss"] = make_head_and_loss("cosface", in_features, num_classes)
        return made["head"]

    model = build_model("small-cnn", num_classes=10, in_channels=1, image_size=28, head=head)
    assert isinstance(model.head, CosFace) and model.head is made["head"]
    y = torch.tensor([0, 1])
    assert made["loss"](model(torch.randn(2, 1, 28, 28), y), y).ndim == 0


def test_alpha2_zero_is_plain_softmax_through_the_same_model():
    torch.manual_seed(0)
    model = build_model("digits-cnn", num_classes=10, in_channels=1,
                        head=lambda d, c: NoisySoftmax(d, c, alpha2=0))
    x, y = torch.randn(6, 1, 8, 8), torch.arange(6)
    features = model.features(x)
    assert torch.allclose(model(x, y), F.linear(features, model.head.weight), atol=1e-6)


def test_head_of_the_wrong_width_is_refused_with_the_preset_feature_dim():
    with pytest.raises(ValueError, match=r"head Linear takes in_features=64, but model preset "
                                         r"'small-cnn' gives features of dimension 256"):
        build_model("small-cnn", num_classes=10, in_channels=1, head=nn.Linear(64, 10))
    with pytest.raises(ValueError, match="in_features=32"):
        build_model("digits-cnn", num_classes=10, in_channels=1,
                    head=lambda d, c: NoisySoftmax(32, c))
    with pytest.raises(ValueError, match="gives 5 logits, but num_classes=10"):
        build_model("digits-cnn", num_classes=10, in_channels=1, head=NoisySoftmax(128, 5))


def test_head_of_the_wrong_type_is_refused():
    with pytest.raises(TypeError, match="head must be an nn.Module, a factory"):
        build_model("digits-cnn", num_classes=10, in_channels=1, head="noisy")
    with pytest.raises(TypeError, match="head factory returned a str"):
        build_model("digits-cnn", num_classes=10, in_channels=1, head=lambda d, c: "noisy")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_classes": 1}, "num_classes .*must be an integer >= 2, got 1"),
    ({"num_classes": 10.0}, "num_classes .*must be an integer >= 2, got 10.0"),
    ({"in_channels": 0}, "in_channels must be an integer >= 1, got 0"),
    ({"in_channels": True}, "in_channels must be an integer >= 1, got True"),
    ({"image_size": "28"}, "image_size must be an integer >= 1 or None, got '28'"),
    ({"image_size": 0}, "image_size must be an integer >= 1 or None, got 0"),
])
def test_bad_arguments_are_named(kwargs, message):
    args = {"num_classes": 10, "in_channels": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        build_model("small-cnn", **args)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown model preset 'resnet18'; valid: digits-cnn"):
        build_model("resnet18", num_classes=10, in_channels=3)
    with pytest.raises(ValueError, match="unknown model preset None"):
        build_model(None, num_classes=10, in_channels=3)


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    model = build_model("cifar10-paper", num_classes=10, in_channels=3).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = model(x)
    model = model.to(memory_format=torch.channels_last)
    got = model(x.to(memory_format=torch.channels_last))
    assert torch.allclose(got, expected, atol=1e-4)
