"""The method catalogue: the one list every part of satkit reads."""

import math

import pytest

from satkit import methods
from satkit.methods import METHODS


def test_every_method_is_buildable_with_its_defaults_and_config_reads_them():
    from satkit.heads import make_head_and_loss
    from satkit.training import TrainConfig

    for name, method in METHODS.items():
        head, loss = make_head_and_loss(name, 4, 3)
        config = TrainConfig(loss=name)
        for setting in method.settings:
            default = getattr(config, setting.field)
            assert default is None or default == setting.default or setting.field == "margin"
        assert method.training_logits in ("none", "noise", "margin", "temperature")


@pytest.mark.parametrize("loss, alpha2, method, eff, noise", [
    ("noisy", 0.0, "softmax", 0.0, "none"), ("noisy", 0.1, "noisy", 0.1, "annealed"),
    (None, 0.0, "softmax", 0.0, "none"), (None, 1.0, "noisy", 1.0, "annealed"),
    ("focal", 0.1, "focal", 0.0, "none"), ("softmax", 0.5, "softmax", 0.0, "none"),
])
def test_resolve_method(loss, alpha2, method, eff, noise):
    assert methods.resolve_method(loss, alpha2) == method
    assert methods.effective_alpha2(loss, alpha2) == eff
    assert methods.effective_noise(loss, alpha2, None) == noise


def test_unknown_alpha2_of_noisy_is_nan():
    assert math.isnan(methods.effective_alpha2("noisy", None))


def test_margin_default_comes_from_the_catalogue():
    from satkit.heads import make_head_and_loss

    assert make_head_and_loss("cosface", 4, 3)[0].m == METHODS["cosface"].setting("margin").default
    assert make_head_and_loss("arcface", 4, 3)[0].m == METHODS["arcface"].setting("margin").default
    with pytest.raises(ValueError, match="m must"):
        make_head_and_loss("cosface", 4, 3, m=2.0)


def test_config_refuses_a_bad_setting_of_any_method():
    from satkit.training import TrainConfig
    from satkit.training.config import ConfigError

    with pytest.raises(ConfigError, match="epsilon"):
        TrainConfig(loss="noisy", epsilon=1.5)
    with pytest.raises(ConfigError, match="margin"):
        TrainConfig(loss="cosface", margin=1.2)  # cosine margin <= 1
    TrainConfig(loss="arcface", margin=1.2)  # an angle: up to pi/2
