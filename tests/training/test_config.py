"""TrainConfig: typed defaults, validation that names the field, TOML/dict loading."""

import pytest

from satkit.training.config import ConfigError, TrainConfig, config_from_dict


def test_defaults_follow_the_paper_setting():
    c = TrainConfig()
    assert (c.momentum, c.weight_decay, c.lr_gamma) == (0.9, 5e-4, 0.1)
    assert c.dataset == "digits" and c.alpha2 == 0.1 and c.method == "noisy"
    assert TrainConfig(alpha2=0).method == "softmax"
    ls = TrainConfig(loss="label-smoothing")
    assert ls.method == "label-smoothing" and ls.effective_alpha2 == 0.0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"dataset": "imagenet"}, "dataset"),
        ({"alpha2": -1.0}, "alpha2"),
        ({"alpha2": float("nan")}, "alpha2"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"lr": 0.0}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"noise": "gauss"}, "noise"),
        ({"thresholds": (0.99, 0.9)}, "thresholds"),
        ({"thresholds": (1.0,)}, "thresholds"),
        ({"lr_milestones": (0.0,)}, "lr_milestones"),
        ({"device": "tpu"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"device": ""}, "device"),
        ({"seed": 99999999999999999999}, "seed"),
        ({"seed": 2**32}, "seed"),
        ({"split_seed": -1}, "split_seed"),
        ({"loss": "hinge"}, "loss"),
        ({"epsilon": 1.0}, "epsilon"),
        ({"temperature": 0.0}, "temperature"),
        ({"margin": 2.0}, "margin"),
        ({"amp": "yes"}, "amp"),
    ],
)
def test_bad_values_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        config_from_dict(changes)


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="'learning_rate'"):
        config_from_dict({"learning_rate": 0.1})


def test_dict_round_trip_and_lists_become_tuples():
    c = config_from_dict({"alpha2": 1, "thresholds": [0.5, 0.9]})
    assert c.alpha2 == 1.0 and c.thresholds == (0.5, 0.9)
    assert config_from_dict(c.to_dict()) == c
    assert c.replace(seed=3).seed == 3


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps", "cpu:0"])
def test_any_torch_device_string_is_accepted(device):
    assert TrainConfig(device=device).device == device  # availability is checked at run start


def test_device_that_is_not_here_is_refused_at_run_start():
    import torch

    from satkit.training.distributed import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda' is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="device 'cuda:99' is not available"):
        resolve_device("cuda:99")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("tpu")


def test_a_checkpoint_written_before_drop_last_resumes_only_without_it():
    # satkit before drop_last kept each epoch's short batch: a config without the field means
    # drop_last=False, so resuming it with today's default would mix two kinds of epoch
    from satkit.training.resume import resume_differences

    saved = {k: v for k, v in TrainConfig().to_dict().items() if k != "drop_last"}
    assert resume_differences(saved, TrainConfig()) == [
        "drop_last: False in the checkpoint, True now"]
    assert resume_differences(saved, TrainConfig(drop_last=False)) == []
    assert resume_differences({**saved, "drop_last": True}, TrainConfig()) == []
