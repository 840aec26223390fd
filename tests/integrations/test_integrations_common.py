"""satkit.integrations without the frameworks: the head lookup, the run-directory claim, the
options, the gradient-scale check, the extras and the error without the frameworks."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from satkit import NoisySoftmax
from satkit.hooks import SaturationRecorder
from satkit.integrations import RecorderOptions, find_head
from satkit.integrations.session import gradient_scale, run_config

ROOT = Path(__file__).resolve().parents[2]


class LM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.model = nn.ModuleDict({"embed": nn.Embedding(10, 4), "norm": nn.LayerNorm(4)})
        self.lm_head = nn.Linear(4, 10, bias=False)


def test_find_head_by_path_and_by_module():
    lm = LM()
    assert find_head(lm, "lm_head") is lm.lm_head
    assert find_head(lm, lm.lm_head) is lm.lm_head
    with pytest.raises(TypeError, match="head='model.embed'.*token ids, not features"):
        find_head(lm, "model.embed")  # an embedding's input is indices: never a head


def test_find_head_errors_name_the_argument_and_the_children():
    lm = LM()
    with pytest.raises(ValueError, match=r"head='classifier'.*top-level children are "
                                         r"\['model', 'lm_head'\]"):
        find_head(lm, "classifier")
    with pytest.raises(ValueError, match=r"'model' has no submodule 'head' \(its children are "
                                         r"\['embed', 'norm'\]\)"):
        find_head(lm, "model.head")
    with pytest.raises(TypeError, match="head='model.norm'.*2-D `weight`"):
        find_head(lm, "model.norm")
    with pytest.raises(ValueError, match="not a submodule"):
        find_head(lm, nn.Linear(4, 10))
    with pytest.raises(TypeError, match="dotted path"):
        find_head(lm, 3)


def test_the_recorder_and_the_callbacks_take_one_options_object():
    # the settings are stated once, in RecorderOptions: a keyword stands for its field
    head = nn.Linear(4, 3)
    assert SaturationRecorder(head).options == RecorderOptions()
    with SaturationRecorder(head, RecorderOptions(every=3), flush_every=7) as rec:
        assert rec.options == RecorderOptions(every=3, flush_every=7)
        assert (rec.every, rec.flush_every) == (3, 7)
    for who in (SaturationRecorder,):
        with pytest.raises(TypeError, match="unexpected keyword argument 'evry'.*RecorderOptions"):
            who(head, evry=2)
        with pytest.raises(TypeError, match="options must be a satkit.hooks.RecorderOptions"):
            who(head, {"every": 2})
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        SaturationRecorder(head, every=0)
    for module in ("lightning", "transformers"):
        callback = importlib.import_module(f"satkit.integrations.{module}").SaturationCallback
        params = inspect.signature(callback).parameters
        assert "options" in params and "every" not in params and "thresholds" not in params


def test_opt_in_names_are_checked():
    assert RecorderOptions(opt_in=["entropy", "entropy"]).opt_in == ("entropy",)
    for bad in ("entropy", [""], [3]):
        with pytest.raises(TypeError, match="opt_in must be a sequence of quantity names"):
            RecorderOptions(opt_in=bad)


def test_options_reject_bad_values():
    with pytest.raises(ValueError, match="thresholds"):
        RecorderOptions(thresholds=(0.9, 1.0))
    with pytest.raises(ValueError, match="sequence_level"):
        RecorderOptions(sequence_level=0.0)
    with pytest.raises(ValueError, match="histogram_every"):
        RecorderOptions(histogram_every=0)


def test_run_config_identifies_the_method():
    plain = run_config(nn.Linear(4, 3), RecorderOptions(), {"dataset": "d", "seed": 1}, None)
    assert (plain["method"], plain["effective_alpha2"], plain["effective_noise"]) == (
        "softmax", 0.0, "none")
    noisy = run_config(NoisySoftmax(4, 3, alpha2=0.1), RecorderOptions(), {}, None)
    assert (noisy["method"], noisy["effective_alpha2"], noisy["effective_noise"]) == (
        "noisy", 0.1, "annealed")
    assert noisy["dataset"] == "unknown" and noisy["seed"] is None
    user = run_config(nn.Linear(4, 3), RecorderOptions(), {"dataset": "d"},
                      {"loss": "label-smoothing", "smoothing": 0.1, "dataset": "sst2"})
    assert user["method"] == "label-smoothing" and user["dataset"] == "sst2"


def test_gradient_scale_reads_the_ratio_and_ignores_saturated_rows():
    frame = pd.DataFrame({"grad_target_mean": [0.5, 0.4, 1e-6, float("nan")],
                          "p_target_noisy_mean": [0.5, 0.6, 1.0, 0.2]})
    assert gradient_scale(frame) == pytest.approx(1.0)
    assert gradient_scale(frame.assign(grad_target_mean=frame.grad_target_mean * 3)) == 3.0
    assert gradient_scale(pd.DataFrame()) != gradient_scale(pd.DataFrame())  # NaN


@pytest.mark.parametrize(("module", "extra"), [("lightning", "lightning"),
                                               ("transformers", "transformers")])
def test_without_the_framework_the_error_names_the_extra(module, extra):
    """With the framework hidden, satkit and satkit.integrations still import, and the
    callback raises an ImportError naming the extra to install."""
    blocked = {"lightning": ["lightning", "lightning.pytorch", "pytorch_lightning"],
               "transformers": ["transformers"]}[module]
    code = (f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
            "import satkit, satkit.integrations\n"
            f"from satkit.integrations.{module} import SaturationCallback\n"
            "try:\n    SaturationCallback('classifier', 'runs/x')\n"
            "except ImportError as err:\n    print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300, cwd=ROOT).stdout
    assert f"pip install 'satkit[{extra}]'" in out


def test_import_satkit_integrations_imports_no_framework():
    code = ("import sys, satkit, satkit.integrations\n"
            "print([m for m in ('lightning', 'pytorch_lightning', 'transformers') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=300, cwd=ROOT).stdout
    assert out.strip() == "[]"


def _requirements(names: list[str]) -> dict[str, str]:
    return {re.split(r"[<>=!~ \[;]", r, maxsplit=1)[0].lower(): r.replace(" ", "")
            for r in names}


def test_dev_extra_installs_both_framework_extras():
    """`make test` installs `.[dev]`: it must carry the frameworks the tests use, at the
    extras' own bounds."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    dev = _requirements(extras["dev"])
    for extra in ("lightning", "transformers"):
        for name, requirement in _requirements(extras[extra]).items():
            assert dev.get(name) == requirement, (extra, name)
    torch_free = [r for e in ("lightning", "transformers") for r in extras[e]
                  if r.lower().startswith(("torch", "torchvision"))]
    assert torch_free == []  # the extras never pin their own torch build


def test_frameworks_installed_are_within_the_extras_bounds():
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import Requirement

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    checked = 0
    for requirement in map(Requirement, extras["lightning"] + extras["transformers"]):
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            continue
        assert requirement.specifier.contains(installed), (requirement, installed)
        checked += 1
    if checked == 0:
        pytest.skip("neither framework is installed here")
    assert torch.__version__  # the frameworks left torch importable
