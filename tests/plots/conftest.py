"""Plot tests: the Agg backend, and synthetic run directories from tests/analysis/conftest.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")  # test code, not the library, chooses the backend

_spec = importlib.util.spec_from_file_location(
    "_satkit_test_rundirs", Path(__file__).resolve().parents[1] / "analysis" / "conftest.py")
_rundirs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_rundirs)
write_run = _rundirs.write_run


@pytest.fixture(scope="module")
def comparison(tmp_path_factory) -> Path:
    """softmax, alpha2 = 0.1 and 1, two seeds each; seed-0 runs also have event files."""
    root = tmp_path_factory.mktemp("comparison")
    for alpha2 in (0.0, 0.1, 1.0):
        for seed in (0, 1):
            write_run(root, alpha2=alpha2, seed=seed, steps=400, num_samples=200,
                      tensorboard=seed == 0 and alpha2 in (0.0, 1.0), histogram_every=25)
    return root


#: The regularisers of the ``methods`` fixture: loss -> (legend label, synthetic timing).
MIXED_METHODS = {"label-smoothing": ("label smoothing ε=0.1", 0.2),
                 "focal": ("focal loss γ=2", 0.4), "cosface": ("CosFace s=30 m=0.35", 1.0)}


@pytest.fixture(scope="module")
def methods(tmp_path_factory) -> Path:
    """softmax, Noisy Softmax alpha2 = 0.1, label smoothing, focal and CosFace, seeds 0 and 1,
    with config.json as the trainer writes it (``method``, ``effective_alpha2``)."""
    root = tmp_path_factory.mktemp("methods")
    for seed in (0, 1):
        write_run(root, alpha2=0.0, seed=seed, steps=200)
        write_run(root, alpha2=0.1, seed=seed, steps=200)
        for loss, (_, timing) in MIXED_METHODS.items():
            write_run(root, alpha2=timing, seed=seed, steps=200, name=f"{loss}_seed={seed}",
                      config_extra={"loss": loss, "alpha2": 0.1, "method": loss,
                                    "effective_alpha2": 0.0, "epsilon": 0.1, "gamma": 2.0,
                                    "scale": 30.0, "margin": None},
                      summary_extra={"loss": loss, "alpha2": 0.0, "noise": "none"})
    return root


@pytest.fixture
def mixed_methods():
    """:data:`MIXED_METHODS`."""
    return MIXED_METHODS


@pytest.fixture
def figure_path(tmp_path):
    def path(name: str) -> Path:
        return tmp_path / name
    return path


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture
def metrics_factory():
    """:func:`synthetic_metrics` of tests/analysis/conftest.py."""
    return _rundirs.synthetic_metrics


@pytest.fixture
def run_writer():
    """:func:`write_run` of tests/analysis/conftest.py (``run_writer(root, **options)``)."""
    return write_run
