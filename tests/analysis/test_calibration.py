"""satkit.analysis.calibration against torchmetrics and a float64 hand loop; Brier against its
formula; temperature scaling recovers known temperatures in both directions."""

import math
import warnings

import numpy as np
import pytest

from satkit.analysis.calibration import (
    adaptive_calibration_error,
    bin_edges,
    brier_score,
    calibration,
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_table,
    softmax,
    top1,
)

BINS = 15


# -- the oracles -----------------------------------------------------------------------------


def hand_top1(probs, labels):
    """Top-1 by a plain loop: the first class of largest probability."""
    confidence, correct = [], []
    for row, y in zip(probs, labels, strict=True):
        best = 0
        for j in range(len(row)):
            if row[j] > row[best]:
                best = j
        confidence.append(float(row[best]))
        correct.append(best == y)
    return confidence, correct


def hand_ece(confidence, correct, bins=BINS):
    """Guo et al.'s ECE by a loop over bins (lower, upper], float64 edges k / B."""
    n, total = len(confidence), 0.0
    edges = list(np.linspace(0, 1, bins + 1))  # the float64 edges the docstring states
    for b in range(bins):
        members = [i for i, c in enumerate(confidence)
                   if (edges[b] < c <= edges[b + 1]) or (b == 0 and c == 0.0)]
        if members:
            acc = sum(bool(correct[i]) for i in members) / len(members)
            conf = sum(confidence[i] for i in members) / len(members)
            total += len(members) / n * abs(acc - conf)
    return total


def hand_adaptive_ece(confidence, correct, bins=BINS):
    """Equal-mass bins by a loop: rank = how many confidences are strictly smaller."""
    n = len(confidence)
    members = {b: [] for b in range(bins)}
    for i, c in enumerate(confidence):
        rank = sum(other < c for other in confidence)
        members[rank * bins // n].append(i)
    total = 0.0
    for group in members.values():
        if group:
            total += abs(sum(confidence[i] for i in group)
                         - sum(bool(correct[i]) for i in group)) / n
    return total


def torchmetrics_ece(probs, labels, bins=BINS):
    """torchmetrics' l1 calibration error (it works in float32: its confidences, edges, sums)."""
    torch = pytest.importorskip("torch")
    metrics = pytest.importorskip("torchmetrics.classification")
    metric = metrics.MulticlassCalibrationError(num_classes=probs.shape[1], n_bins=bins,
                                                norm="l1")
    return float(metric(torch.as_tensor(probs, dtype=torch.float32),
                        torch.as_tensor(labels)))


def random_probs(n=500, classes=10, seed=0, sharpness=3.0):
    """float32 probabilities (as a network gives them; torchmetrics sees the same values)."""
    rng = np.random.default_rng(seed)
    logits = sharpness * rng.standard_normal((n, classes))
    return softmax(logits).astype(np.float32), rng.integers(0, classes, n)


# -- ECE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("sharpness", [0.5, 3.0, 20.0])
def test_ece_matches_torchmetrics_and_the_hand_loop_on_random_inputs(seed, sharpness):
    probs, labels = random_probs(seed=seed, sharpness=sharpness)
    # random labels: a badly overconfident model; labels = argmax: an underconfident one
    for y in (labels, probs.argmax(1)):
        m = calibration(probs, y)
        conf, ok = hand_top1(probs, y)
        assert m["ece"] == pytest.approx(hand_ece(conf, ok), rel=1e-12, abs=1e-15)
        assert m["ece"] == pytest.approx(torchmetrics_ece(probs, y), rel=1e-5, abs=1e-7)
        assert m["ece_adaptive"] == pytest.approx(hand_adaptive_ece(conf, ok), rel=1e-12,
                                                  abs=1e-15)


def test_all_in_one_bin_and_empty_bins():
    labels = np.array([0, 0, 1, 0, 0, 1, 0, 0])
    probs = np.column_stack([np.full(8, 0.7), np.full(8, 0.3)])  # one bin: (0.667, 0.733]
    table = reliability_table(*top1(probs, labels))
    assert table["count"].tolist() == [0] * 10 + [8] + [0] * 4
    assert table["accuracy"].isna().sum() == 14  # the empty bins have no accuracy
    expected = abs(0.7 - 6 / 8)  # one bin: ECE = |confidence - accuracy|
    assert calibration(probs, labels)["ece"] == pytest.approx(expected, abs=1e-15)
    assert calibration(probs, labels)["ece"] == pytest.approx(torchmetrics_ece(probs, labels),
                                                              rel=1e-5)
    # one bin holds every sample in the equal-mass binning too: the same number
    assert calibration(probs, labels)["ece_adaptive"] == pytest.approx(expected, abs=1e-15)


def test_perfectly_calibrated_bins_give_zero_and_a_known_gap_gives_its_value():
    # bin (0.533, 0.6]: 10 samples at 0.58, 58 % right would be calibrated; 3 of 5 right at 0.6
    conf = np.array([0.9] * 10 + [0.6] * 5)
    correct = np.array([True] * 9 + [False] + [True] * 3 + [False] * 2)
    assert expected_calibration_error(conf, correct) == pytest.approx(0.0, abs=1e-15)
    correct[0] = False  # 8 of 10 at 0.9: a gap of 0.1 on 10 of 15 samples
    assert expected_calibration_error(conf, correct) == pytest.approx(0.1 * 10 / 15)


def test_the_edge_convention_is_guo_et_al_and_torchmetrics_differs_only_there():
    """A confidence exactly on an edge k/B belongs to the bin below it ((lower, upper]);
    torchmetrics puts it in the bin above ([lower, upper), and 1.0 in a bin of its own)."""
    edges = bin_edges(BINS)
    table = reliability_table([edges[3], edges[3] + 1e-12, 1.0, 0.0], [True, True, True, True])
    assert table.loc[table["count"] > 0, "bin"].tolist() == [0, 2, 3, 14]
    conf = np.concatenate([edges[1:], edges[1:]])  # every edge, once right and once wrong
    ok = np.array([True] * BINS + [False] * BINS)
    assert expected_calibration_error(conf, ok) == pytest.approx(hand_ece(list(conf), ok),
                                                                 abs=1e-15)
    # torchmetrics works in float32: with 16 bins the edges k/16 are exact there too. At each
    # edge one sample (right) with a neighbour inside the bin below (wrong) and one inside the
    # bin above (right): the conventions group the edge sample with different neighbours
    bins, classes = 16, 20
    edge = np.arange(6, bins, dtype=np.float32) / bins  # 0.375 ... 0.9375
    values = np.concatenate([edge, edge - np.float32(0.01), edge + np.float32(0.01), [1.0]])
    values = values.astype(np.float32)
    probs = np.zeros((len(values), classes), dtype=np.float32)
    probs[:, 0] = values
    probs[:, 1:] = ((1 - values) / (classes - 1))[:, None]
    labels = np.array([0] * len(edge) + [1] * len(edge) + [0] * len(edge) + [1])
    ours = calibration(probs, labels, bins=bins)["ece"]
    conf, ok = hand_top1(probs, labels)
    assert ours == pytest.approx(hand_ece(conf, ok, bins=bins), abs=1e-15)
    assert not math.isclose(ours, torchmetrics_ece(probs, labels, bins), rel_tol=1e-3)
    # one float32 ulp below its edge, every value lies in the same bin in both conventions
    nudged = probs.copy()
    nudged[:, 0] = np.nextafter(values, np.float32(0))
    assert ours == pytest.approx(torchmetrics_ece(nudged, labels, bins), rel=1e-5)


def test_ties_in_the_top1_go_to_the_first_class():
    probs = np.array([[0.4, 0.4, 0.2], [0.4, 0.4, 0.2], [0.1, 0.45, 0.45], [0.5, 0.25, 0.25]])
    labels = np.array([0, 1, 2, 0])
    confidence, correct = top1(probs, labels)
    assert confidence.tolist() == [0.4, 0.4, 0.45, 0.5]
    assert correct.tolist() == [True, False, False, True]  # the tie goes to the lower index
    conf, ok = hand_top1(probs, labels)
    assert calibration(probs, labels)["ece"] == pytest.approx(hand_ece(conf, ok), abs=1e-15)
    assert calibration(probs, labels)["ece"] == pytest.approx(torchmetrics_ece(probs, labels),
                                                              rel=1e-6)


def test_adaptive_bins_keep_tied_confidences_together_whatever_the_order():
    """60 % of the samples at exactly 1.0 (a saturated softmax): one bin holds them all, and
    shuffling the samples changes nothing."""
    rng = np.random.default_rng(0)
    conf = np.concatenate([np.ones(60), rng.uniform(0.3, 0.99, 40)])
    correct = rng.random(100) < conf
    value = adaptive_calibration_error(conf, correct)
    assert value == pytest.approx(hand_adaptive_ece(list(conf), list(correct)), abs=1e-15)
    order = rng.permutation(100)
    assert adaptive_calibration_error(conf[order], correct[order]) == pytest.approx(value,
                                                                                 abs=1e-15)
    saturated = abs(1.0 - correct[:60].mean()) * 60 / 100
    rest = hand_adaptive_ece(list(conf[60:]), list(correct[60:]), bins=6)  # 40 -> 6 bins
    assert value == pytest.approx(saturated + rest * 40 / 100, abs=1e-12)


def test_brier_nll_confidence_and_overconfidence_against_their_formulas():
    probs, labels = random_probs(n=50, classes=4, seed=3)
    probs = probs.astype(np.float64)  # the hand sums below in float64
    m = calibration(probs, labels)
    brier = sum(sum((probs[i, j] - (j == labels[i])) ** 2 for j in range(4))
                for i in range(50)) / 50
    assert m["brier"] == pytest.approx(brier, rel=1e-13) == brier_score(probs, labels)
    assert m["nll"] == pytest.approx(-np.mean(np.log(probs[np.arange(50), labels])), rel=1e-13)
    conf, ok = hand_top1(probs, labels)
    assert m["confidence"] == pytest.approx(sum(conf) / 50, rel=1e-13)
    assert m["accuracy"] == sum(ok) / 50
    assert m["overconfidence"] == pytest.approx(m["confidence"] - m["accuracy"], abs=1e-15)
    # both ends: a one-hot right prediction scores 0, a one-hot wrong one 2
    assert brier_score([[1.0, 0.0], [0.0, 1.0]], [0, 0]) == pytest.approx(1.0)
    assert brier_score([[1.0, 0.0]], [0]) == 0.0 and brier_score([[0.0, 1.0]], [0]) == 2.0


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="probs must be an \\(N, C\\) array"):
        calibration(np.ones(3), [0, 1, 0])
    with pytest.raises(ValueError, match="labels must lie in \\[0, 2\\)"):
        calibration([[0.5, 0.5]], [2])
    with pytest.raises(ValueError, match="labels must be a 1-D array of 1"):
        calibration([[0.5, 0.5]], [0, 1])
    with pytest.raises(ValueError, match="finite"):
        calibration([[np.nan, 0.5]], [0])
    with pytest.raises(ValueError, match="confidence must lie in \\[0, 1\\]"):
        expected_calibration_error([1.5], [True])
    with pytest.raises(ValueError, match="bins"):
        expected_calibration_error([0.5], [True], bins=0)
    assert math.isnan(expected_calibration_error([], []))


# -- temperature scaling -------------------------------------------------------------------------


def calibrated_logits(n=100_000, classes=10, seed=0):
    """Logits of a calibrated model: each label is drawn from softmax(logits) itself."""
    rng = np.random.default_rng(seed)
    z = 2.5 * rng.standard_normal((n, classes))
    p = softmax(z)
    labels = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return z, np.minimum(labels, classes - 1)


def test_temperature_scaling_recovers_a_known_temperature_in_both_directions():
    z, y = calibrated_logits()
    assert fit_temperature(z, y) == pytest.approx(1.0, rel=0.01)  # already calibrated
    assert fit_temperature(3 * z, y) == pytest.approx(3.0, rel=0.01)  # overconfident: T > 1
    assert fit_temperature(z / 3, y) == pytest.approx(1 / 3, rel=0.01)  # over-smoothed: T < 1
    t = fit_temperature(3 * z, y)
    # it is the minimum of the NLL, and it improves the calibration it was fitted for
    for factor in (0.99, 1.01):
        assert nll(3 * z, y, t) < nll(3 * z, y, t * factor)
    before = calibration(softmax(3 * z), y)["ece"]
    after = calibration(softmax(3 * z, t), y)["ece"]
    assert after < 0.01 < before


def test_temperature_at_the_bound_warns_and_bad_bounds_are_refused():
    z = np.array([[5.0, 0.0], [0.0, 5.0]])  # every sample right: NLL falls as T -> 0
    with pytest.warns(RuntimeWarning, match="end of the range"):
        assert fit_temperature(z, [0, 1]) == pytest.approx(0.01, rel=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # 3 of 4 right at a logit gap of 2: the NLL is lowest at p = 3/4, 2 / T = log 3
        t = fit_temperature(np.array([[2.0, 0.0]] * 4), [0, 0, 0, 1])
    assert t == pytest.approx(2 / math.log(3), rel=1e-6)
    with pytest.raises(ValueError, match="bounds"):
        fit_temperature(z, [0, 1], bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match="at least one sample"):
        fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=int))
