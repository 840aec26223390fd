"""The reliability diagram: its bars are the reliability table, its legend the ECE; it reads a
run's test predictions (seeds pooled), a probability array or a frame, and says what is
missing."""

import numpy as np
import pandas as pd
import pytest

from satkit import plots
from satkit.analysis import RunError, as_runs
from satkit.analysis.calibration import expected_calibration_error, reliability_table, softmax


def _predictions(seed, n=300, shift=0.0):
    """Test predictions of an overconfident model: confidence ~ U(0.5, 1), right with
    probability confidence - 0.2."""
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.5, 1.0, n)
    label = rng.integers(0, 10, n)
    right = rng.random(n) < confidence - 0.2 + shift
    return pd.DataFrame({"index": np.arange(n), "label": label,
                         "predicted": np.where(right, label, (label + 1) % 10),
                         "confidence": confidence, "p_label": np.where(right, confidence, 0.01)})


@pytest.fixture
def predicted(tmp_path, run_writer):
    root = tmp_path / "runs"
    for seed in (0, 1):
        run = run_writer(root, alpha2=0.0, seed=seed, steps=60)
        _predictions(seed).to_parquet(run / "test_predictions.parquet")
    run_writer(root, alpha2=0.1, seed=0, steps=60)  # unfinished: no predictions
    return root


def _bars(ax):
    """The accuracy bars (the first bar container) as (centre, height)."""
    bars = ax.containers[0]
    return [(p.get_x() + p.get_width() / 2, p.get_height()) for p in bars]


def test_bars_are_the_reliability_table_and_the_legend_holds_the_ece(predicted, figure_path):
    run = next(r for r in as_runs(predicted) if r.seed == 0 and r.loss == "softmax")
    ax = plots.reliability(run)
    frame = run.test_predictions
    correct = frame["predicted"] == frame["label"]
    table = reliability_table(frame["confidence"], correct)
    filled = table[table["count"] > 0]
    got = _bars(ax)
    assert [round(c, 6) for c, _ in got] == [round((lo + hi) / 2, 6) for lo, hi in
                                             zip(filled["lower"], filled["upper"], strict=True)]
    assert [h for _, h in got] == pytest.approx(filled["accuracy"].tolist())
    ece = expected_calibration_error(frame["confidence"], correct)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"accuracy (ECE = {ece:.3f}, n = 300)" in labels
    assert "perfect calibration" in labels and "samples per bin (right axis)" in labels
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1)
    assert ax.get_title() == "Reliability: softmax (α²=0)"
    ax.figure.savefig(figure_path("reliability.png"))


def test_seeds_pool_and_arrays_and_frames_draw_the_same(predicted):
    runs = [r for r in as_runs(predicted) if not r.test_predictions.empty]
    pooled = pd.concat([r.test_predictions for r in runs])
    ax = plots.reliability(runs)
    assert "2 runs pooled" in ax.get_title()
    import matplotlib.pyplot as plt

    _, (a, b) = plt.subplots(1, 2)
    plots.reliability(pooled, ax=a)
    assert _bars(a) == _bars(ax)
    rng = np.random.default_rng(0)
    probs, labels = softmax(3 * rng.standard_normal((200, 5))), rng.integers(0, 5, 200)
    plots.reliability(probs, ax=b, labels=labels, counts=False)
    assert len(b.figure.axes) == 3  # a, b and a's twin axis: b drew no counts
    with pytest.raises(ValueError, match="labels="):
        plots.reliability(probs)


def test_a_run_without_predictions_is_named(predicted):
    unfinished = [r for r in as_runs(predicted) if r.test_predictions.empty]
    with pytest.raises(RunError, match="no test_predictions.parquet"):
        plots.reliability(unfinished)


def test_figure_one_panel_per_method_saved_beside_the_dashboard(predicted, figure_path,
                                                                tmp_path):
    from satkit.training.figures import save_dashboard

    fig = plots.reliability_figure(predicted)
    titled = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in titled] == ["softmax (α²=0)"]  # the seeds in one panel
    assert "1 run(s) without test predictions left out" in fig._suptitle.get_text()
    fig.savefig(figure_path("reliability_figure.png"))
    assert plots.FIGURES["reliability"] is plots.reliability_figure  # satkit plot --figure
    save_dashboard(as_runs(predicted), tmp_path / "figures" / "dashboard.png")
    assert (tmp_path / "figures" / "reliability.png").stat().st_size > 10_000
