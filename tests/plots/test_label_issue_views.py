"""`satkit label-issues`, the report's section and the data-map figures, on one real digits run
with 20 % of its training labels flipped (3 epochs)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from satkit import plots
from satkit.analysis import detection_quality, load_run, report
from satkit.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def noisy_run(tmp_path_factory):
    import torch

    from satkit.training import TrainConfig, train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("label_issues") / "run"
    train(TrainConfig(dataset="digits", epochs=3, batch_size=128, lr=0.1, alpha2=0.0,
                      label_noise=0.2, quiet=True, device="cpu", figures=False, out=str(out)))
    return out


def test_cli_prints_the_top_samples_and_the_detection_quality(noisy_run, tmp_path, capsys):
    out = tmp_path / "issues.csv"
    assert main(["label-issues", str(noisy_run), "--top", "7", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0].split("|")[1:5] == [" index ", " label ", " score ", " true_label "]
    ranked = pd.read_csv(out)
    assert len(ranked) == 1437 and ranked["score"].is_monotonic_decreasing
    top = ranked.head(7)
    assert [int(line.split("|")[1]) for line in lines[1:8]] == top["index"].tolist()
    # the flipped labels are what rises to the top (a known answer in this direction) ...
    assert top["label_corrupted"].all() and (top["label"] != top["true_label"]).all()
    # ... and the quality table is the analysis's
    quality = detection_quality(load_run(noisy_run)).set_index("score")
    assert f"| aum | {quality.loc['aum', 'auroc']:.3f} |" in text
    assert set(ranked["region"]) <= {"easy-to-learn", "ambiguous", "hard-to-learn"}


def test_cli_other_score_and_errors(noisy_run, tmp_path, capsys):
    assert main(["label-issues", str(noisy_run), "--score", "forgetting", "--top", "3"]) == 0
    assert "by 'forgetting'" in capsys.readouterr().out
    assert main(["label-issues", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("satkit label-issues: error:")
    assert main(["label-issues", str(noisy_run), "--out", str(tmp_path / "x.txt")]) == 2
    with pytest.raises(SystemExit) as bad:
        main(["label-issues", str(noisy_run), "--top", "0"])
    assert bad.value.code == 2


def test_report_has_the_section(noisy_run):
    text = report([noisy_run])
    section = text.split("## Which samples never saturate", 1)[1].split("\n## ", 1)[0]
    quality = detection_quality(load_run(noisy_run)).set_index("score")
    assert f"{quality.loc['confidence', 'auroc']:.3f}" in section and "| 20% |" in section


def test_figures_draw_what_the_tables_say(noisy_run):
    run = load_run(noisy_run)
    fig, axes = plt.subplots(1, 3)
    try:
        plots.data_map(run, ax=axes[0], density=False)
        points = sum(len(c.get_offsets()) for c in axes[0].collections)
        assert points == 1437
        assert axes[0].get_xlabel().startswith("variability")
        plots.score_distributions(run, ax=axes[1], score="aum")
        labels = [t.get_text() for t in axes[1].get_legend().get_texts()]
        assert labels == ["clean label", "corrupted label"]
        plots.region_survival(run, ax=axes[2], saturation="clean")
        curves = [line for line in axes[2].get_lines() if line.get_label()[0] != "_"]
        sizes = [int(line.get_label().split("(")[1].rstrip(")")) for line in curves]
        assert sum(sizes) == 1437 and all(np.diff(line.get_ydata()).max() <= 0
                                          for line in curves)
    finally:
        plt.close(fig)
