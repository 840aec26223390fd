"""Every count of TrainConfig has a maximum that says what it is (issue 20: ``epochs = 1e20``
in a TOML file trained until stopped)."""

from __future__ import annotations

import pytest

from satkit.training.config import (
    _COUNTS,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    MAX_INTERVAL,
    MAX_SEED,
    ConfigError,
    TrainConfig,
    config_from_dict,
)


def test_every_int_field_is_a_bounded_count():
    ints = {name for name, tp in TrainConfig.__annotations__.items()
            if tp in ("int", "int | None")}
    assert set(_COUNTS) == ints


@pytest.mark.parametrize("name", sorted(_COUNTS))
def test_each_count_accepts_its_maximum_and_refuses_one_more(name):
    maximum, bound = _COUNTS[name]
    assert getattr(TrainConfig(**{name: maximum}), name) == maximum
    optional = " or None" if name == "histogram_every" else ""  # None: its default cadence
    with pytest.raises(ConfigError, match=rf"^{name} must be an integer in \[\d, {maximum}\]"
                                          rf"{optional}, got {maximum + 1} \({maximum}: ") as info:
        TrainConfig(**{name: maximum + 1})
    assert str(info.value).endswith(f"({maximum}: {bound})")


def test_the_bounds_are_what_they_say():
    assert MAX_EPOCHS == 100_000 and MAX_INTERVAL == 1_000_000 and MAX_SEED == 2**32 - 1
    assert MAX_BATCH_SIZE == 60_000  # MNIST's training set, the largest satkit trains on
    with pytest.raises(ConfigError, match="MAX_EPOCHS, a guard against typos"):
        config_from_dict({"epochs": 10**20})


def test_help_states_each_bound():
    import argparse

    from satkit.cli.args import add_config_flags

    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    text = " ".join(parser.format_help().split())
    for name, (maximum, bound) in _COUNTS.items():
        constant = bound.split(",")[0]
        flag = "--" + name.replace("_", "-")
        if name.endswith("seed"):
            continue  # "in [0, 2**32 - 1]"
        own = text.split(f" {flag} {name.upper()} ", 1)[1].split(" --", 1)[0]
        assert f", {maximum}] ({constant}" in own, (name, own)
