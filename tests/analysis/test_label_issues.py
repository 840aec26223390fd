"""Data maps, suspicion scores and detection quality: hand-computed cases in both directions,
scikit-learn as an independent oracle for the metrics, and a real digits run with 20 % of its
labels flipped."""

import math

import numpy as np
import pandas as pd
import pytest

from satkit.analysis import (
    REGIONS,
    SCORES,
    RunError,
    auroc,
    average_precision,
    data_map,
    detection_quality,
    label_issue_scores,
    precision_at_k,
)
from satkit.analysis.label_issues import data_map_scalars


def _table(**columns):
    n = len(next(iter(columns.values())))
    base = {"index": np.arange(n), "visits": np.full(n, 4), "last_seen_step": pd.array(
        [9] * n, dtype="Int64")}
    return pd.DataFrame({**base, **columns})


# -- the metrics ---------------------------------------------------------------------------

def test_metrics_by_hand_in_both_directions():
    y = np.array([True, True, False, False, False])
    good = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    assert (auroc(good, y), average_precision(good, y), precision_at_k(good, y, 2)) == (1, 1, 1)
    assert (auroc(-good, y), precision_at_k(-good, y, 2)) == (0, 0)
    assert average_precision(-good, y) == pytest.approx((1 / 4 + 2 / 5) / 2)
    flat = np.zeros(5)  # ties everywhere: chance, whatever order the rows came in
    assert auroc(flat, y) == 0.5
    assert average_precision(flat, y) == pytest.approx(0.4)
    assert precision_at_k(flat, y, 2) == pytest.approx(0.4)
    assert auroc(np.array([np.inf, 1.0, np.inf, 0.0]), np.array([True, False, False, False])) \
        == pytest.approx((1 + 0.5 + 1) / 3)


def test_metrics_agree_with_scikit_learn_on_tied_random_scores():
    metrics = pytest.importorskip("sklearn.metrics")
    g = np.random.default_rng(1)
    y = g.random(400) < 0.2
    s = np.round(g.normal(y * 1.0, 1.0), 1)  # many ties
    assert auroc(s, y) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(s, y) == pytest.approx(metrics.average_precision_score(y, s),
                                                    abs=1e-12)


@pytest.mark.parametrize(("scores", "positive", "match"), [
    (np.array([1.0, np.nan]), np.array([True, False]), "NaN"),
    (np.array([1.0, 2.0]), np.array([True, True]), "one positive and one negative"),
    (np.array([1.0, 2.0]), np.array([1, 0]), "boolean")])
def test_metrics_refuse_bad_input(scores, positive, match):
    with pytest.raises(ValueError, match=match):
        auroc(scores, positive)
    with pytest.raises(ValueError, match="k must be"):
        precision_at_k(np.array([1.0, 0.0]), np.array([True, False]), 3)


# -- regions and scores --------------------------------------------------------------------

def test_regions_follow_the_thresholds_and_leave_out_unseen_samples():
    t = _table(confidence=[0.9, 0.6, 0.1, 0.5, np.nan], variability=[0.05, 0.3, 0.05, 0.2, np.nan],
               visits=[4, 4, 4, 4, 0], correctness=[1, .5, 0, .5, np.nan],
               forgetting_events=[0, 2, 0, 1, 0], aum=[3.0, 0.5, -2.0, 0.0, np.nan],
               first_learned_step=pd.array([0, 1, None, 2, None], dtype="Int64"))
    m = data_map(t)
    assert m["index"].tolist() == [0, 1, 2, 3]  # never seen: not on the map
    assert m["region"].tolist() == ["easy-to-learn", "ambiguous", "hard-to-learn", "ambiguous"]
    assert list(m["region"].cat.categories) == list(REGIONS)
    strict = data_map(t, ambiguous=0.35, easy=0.7)
    assert strict["region"].tolist() == ["easy-to-learn", "hard-to-learn", "hard-to-learn",
                                         "hard-to-learn"]
    with pytest.raises(ValueError, match="easy"):
        data_map(t, easy=2)


def test_every_score_ranks_the_known_suspect_first():
    # sample 1 is the suspect by every score; sample 2 is the least suspicious
    t = _table(confidence=[0.7, 0.2, 0.99], variability=[0.1, 0.3, 0.01],
               confidence_noisy=[0.6, 0.1, 0.9], variability_noisy=[0.1, 0.2, 0.0],
               aum=[1.0, -3.0, 6.0], forgetting_events=[1, 0, 0],
               first_learned_step=pd.array([0, None, 0], dtype="Int64"),
               first_saturated_step=pd.array([5, None, 1], dtype="Int64"))
    for score in SCORES:
        s = label_issue_scores(t, score)
        assert s.idxmax() == 1 and s.idxmin() == 2, score
        assert s.name == score and s.index.name == "index"
    assert label_issue_scores(t, "forgetting")[1] == math.inf  # never learned
    assert label_issue_scores(t, "never_saturated").tolist() == pytest.approx(
        [5 / 10, 2 - 0.2, 1 / 10])
    assert label_issue_scores(t, "confidence", saturation="noisy").tolist() == pytest.approx(
        [0.4, 0.9, 0.1])
    with pytest.raises(ValueError, match="score must be one of"):
        label_issue_scores(t, "loss")


def test_detection_quality_known_answers_and_missing_truth():
    t = _table(confidence=[0.9, 0.8, 0.1, 0.2], variability=[0.1] * 4, aum=[2.0, 1.0, -1, -2],
               forgetting_events=[0, 0, 0, 0],
               first_learned_step=pd.array([0, 0, 0, 0], dtype="Int64"),
               first_saturated_step=pd.array([1, 2, None, None], dtype="Int64"),
               label_corrupted=[False, False, True, True])
    q = detection_quality(t).set_index("score")
    assert list(q.columns) == ["auroc", "average_precision", "precision_at_k", "k", "n"]
    assert q.loc["aum"].tolist() == [1.0, 1.0, 1.0, 2, 4]
    assert q.loc["confidence", "auroc"] == 1.0
    assert q.loc["forgetting", "auroc"] == 0.5 and q.loc["variability", "auroc"] == 0.5
    flipped = t.assign(label_corrupted=[True, True, False, False])
    assert detection_quality(flipped, ["aum"])["auroc"].tolist() == [0.0]
    with pytest.raises(RunError, match="both kinds"):
        detection_quality(t.assign(label_corrupted=False))
    with pytest.raises(RunError, match="label_corrupted"):
        detection_quality(t.drop(columns="label_corrupted"))
    with pytest.raises(RunError, match="training dynamics"):
        data_map(t.drop(columns="aum"))


def test_epoch_scalars_fractions_and_confidence_by_corruption():
    t = _table(confidence=[0.9, 0.6, 0.1, 0.2], variability=[0.05, 0.3, 0.05, 0.1],
               correctness=[1, 1, 0, 0], forgetting_events=[0] * 4, aum=[1.0] * 4,
               first_learned_step=pd.array([0] * 4, dtype="Int64"),
               label_corrupted=[False, False, True, False])
    got = data_map_scalars(t)
    assert got == pytest.approx({"easy-to-learn": 0.25, "ambiguous": 0.25, "hard-to-learn": 0.5,
                                 "confidence_corrupted": 0.1,
                                 "confidence_clean": (0.9 + 0.6 + 0.2) / 3})
    assert "confidence_corrupted" not in data_map_scalars(t.drop(columns="label_corrupted"))


# -- a real run ----------------------------------------------------------------------------

@pytest.mark.slow
def test_digits_with_20_percent_flipped_labels_are_found(tmp_path):
    """Done-when of issue 22: AUROC >= 0.95 for confidence and aum (digits-cnn, 12 epochs,
    20 % symmetric noise, one run)."""
    import torch

    from satkit.analysis import load_run
    from satkit.training import TrainConfig, train

    torch.set_num_threads(1)
    result = train(TrainConfig(dataset="digits", model="digits-cnn", epochs=12, batch_size=128,
                               lr=0.1, alpha2=0.0, label_noise=0.2, quiet=True, device="cpu",
                               figures=False, out=str(tmp_path / "run")))
    q = detection_quality(load_run(result.run_dir)).set_index("score")
    assert q.loc["confidence", "auroc"] >= 0.95 and q.loc["aum", "auroc"] >= 0.95, q
    assert (q["k"] == 287).all() and (q["n"] == 1437).all()
    # and a known negative: a score that says nothing is near chance on the same run
    assert q.loc["aum", "precision_at_k"] > 0.8 > q.loc["variability", "precision_at_k"]
