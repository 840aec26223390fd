"""Which samples never saturate: data maps, forgetting, AUM and mislabeled-sample scores, all
read from the samples table of one run (no extra pass, no retraining).

* :func:`data_map`: one row per training sample the run saw, with its training dynamics and
  its Data Maps *region* (Swayamdipta et al., EMNLP 2020): ``ambiguous`` when its p_y varied
  a lot over its visits (``variability >= ambiguous``, default 0.2), else ``easy-to-learn``
  when it was mostly confident (``confidence >= easy``, default 0.5), else ``hard-to-learn``.
  The paper draws these regions as the corners of its map and selects the top third of each
  by rank; the two thresholds are satkit's, chosen so that a region is a fixed part of the
  map, comparable across runs and epochs (variability is at most 0.5 for values in [0, 1]).
* :func:`label_issue_scores`: a suspicion score per sample, higher = more likely mislabeled.
* :func:`detection_quality`: how well each score finds the corrupted labels of a run trained
  with ``--label-noise`` (AUROC, average precision, precision at the true count).

Pure pandas/NumPy; see ``docs/concept.md`` for the formulas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from satkit import schema
from satkit.analysis.detection import auroc, average_precision, precision_at_k
from satkit.analysis.errors import RunError
from satkit.analysis.runs import Run
from satkit.analysis.views import check_view

__all__ = ["DATA_MAP_COLUMNS", "REGIONS", "SCORES", "data_map", "data_map_scalars",
           "detection_quality", "label_issue_scores", "regions"]

#: The Data Maps regions, in the order figures and tables list them.
REGIONS = ("easy-to-learn", "ambiguous", "hard-to-learn")
#: The suspicion scores of :func:`label_issue_scores`, each higher = more suspicious:
#: ``confidence``: 1 - mean p_y; ``aum``: minus the area under the margin; ``forgetting``:
#: forgetting events, a never-learned sample +inf (Toneva et al.); ``variability``: the
#: standard deviation of p_y; ``never_saturated``: a sample that never reached tau above every
#: sample that did (1 + (1 - confidence), in [1, 2]), one that did by how late it first did
#: (first_saturated_step / (last step + 1), in [0, 1)).
SCORES = ("confidence", "aum", "forgetting", "variability", "never_saturated")
_DYNAMICS = ("visits", "confidence", "variability", "correctness", "forgetting_events",
             "first_learned_step", "aum")
#: The columns of :func:`data_map` (the label columns only when the run has them).
DATA_MAP_COLUMNS = ("index", *schema.SAMPLE_LABEL_COLUMNS, *_DYNAMICS, "confidence_noisy",
                    "variability_noisy", "first_saturated_step", "last_p_target", "region")


def _samples(run_or_samples: Run | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if isinstance(run_or_samples, Run):
        return run_or_samples.samples, str(run_or_samples.path / schema.SAMPLES)
    if isinstance(run_or_samples, pd.DataFrame):
        return run_or_samples, "the samples table"
    raise TypeError(f"expected a Run or a samples DataFrame, got "
                    f"{type(run_or_samples).__name__}")


def _require(samples: pd.DataFrame, columns: Sequence[str], where: str) -> None:
    missing = [c for c in columns if c not in samples.columns]
    if missing:
        raise RunError(f"{where} has no {', '.join(missing)}: the run was recorded by a satkit "
                       "without the per-sample training dynamics (or kept no per-sample "
                       "record); record it again")


def regions(confidence: np.ndarray, variability: np.ndarray, *, ambiguous: float = 0.2,
            easy: float = 0.5) -> np.ndarray:
    """The Data Maps region of each sample (object array of :data:`REGIONS` names; ``None``
    where confidence is NaN, a sample never seen).

    Example:
        >>> regions(np.array([0.9, 0.6, 0.1]), np.array([0.05, 0.3, 0.05])).tolist()
        ['easy-to-learn', 'ambiguous', 'hard-to-learn']
    """
    for name, value in (("ambiguous", ambiguous), ("easy", easy)):
        if not (isinstance(value, (int, float)) and 0 <= value <= 1):
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    conf = np.asarray(confidence, dtype=np.float64)
    var = np.asarray(variability, dtype=np.float64)
    out = np.where(var >= ambiguous, REGIONS[1],
                   np.where(conf >= easy, REGIONS[0], REGIONS[2])).astype(object)
    out[np.isnan(conf)] = None
    return out


def data_map(run_or_samples: Run | pd.DataFrame, *, saturation: str = "clean",
             ambiguous: float = 0.2, easy: float = 0.5) -> pd.DataFrame:
    """The data map of a run: one row per training sample it saw (tidy).

    Args:
        run_or_samples: a :class:`Run` or its samples table.
        saturation: the view of ``confidence`` and ``variability`` (and so of the region):
            ``"clean"`` (default) or ``"noisy"`` (the training logits); the other columns are
            the clean view's.
        ambiguous, easy: the region thresholds (see the module docstring).

    Returns:
        The columns of :data:`DATA_MAP_COLUMNS` (the label columns only when present), with
        ``region`` a categorical of :data:`REGIONS`.

    Raises:
        RunError: the table lacks the training-dynamics columns.
    """
    samples, where = _samples(run_or_samples)
    _require(samples, _DYNAMICS, where)
    check_view(saturation)
    suffix = "" if saturation == "clean" else "_noisy"
    frame = samples[samples["visits"] > 0].reset_index(drop=True)
    columns = [c for c in DATA_MAP_COLUMNS[:-1] if c in frame.columns]
    out = frame[columns].copy()
    if suffix:
        _require(samples, ["confidence_noisy", "variability_noisy"], where)
        out["confidence"] = frame["confidence_noisy"]
        out["variability"] = frame["variability_noisy"]
    out["region"] = pd.Categorical(regions(out["confidence"], out["variability"],
                                           ambiguous=ambiguous, easy=easy), categories=REGIONS)
    return out


def label_issue_scores(run_or_samples: Run | pd.DataFrame, score: str = "aum", *,
                       saturation: str = "clean") -> pd.Series:
    """A suspicion score per sample the run saw: higher = more likely mislabeled.

    Args:
        run_or_samples: a :class:`Run` or its samples table.
        score: one of :data:`SCORES` (its formula is there).
        saturation: the view of ``confidence``, ``variability`` and ``never_saturated``.

    Returns:
        float64 Series named ``score``, indexed by the sample ``index``.

    Raises:
        ValueError: an unknown score.
        RunError: the table lacks the columns the score needs.

    Example:
        >>> samples = pd.DataFrame({"index": [0, 1], "visits": [3, 3], "aum": [2.5, -1.0]})
        >>> label_issue_scores(samples, "aum").tolist()
        [-2.5, 1.0]
    """
    if score not in SCORES:
        raise ValueError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    samples, where = _samples(run_or_samples)
    check_view(saturation)
    suffix = "" if saturation == "clean" else "_noisy"
    need = {"confidence": [f"confidence{suffix}"], "aum": ["aum"],
            "forgetting": ["forgetting_events", "first_learned_step"],
            "variability": [f"variability{suffix}"],
            "never_saturated": [f"first_saturated_step{suffix}", f"confidence{suffix}",
                                "last_seen_step"]}[score]
    _require(samples, ["index", "visits", *need], where)
    seen = samples[samples["visits"] > 0]
    if score == "confidence":
        values = 1.0 - seen[f"confidence{suffix}"].to_numpy(dtype=np.float64)
    elif score == "aum":
        values = -seen["aum"].to_numpy(dtype=np.float64)
    elif score == "forgetting":
        values = seen["forgetting_events"].to_numpy(dtype=np.float64)
        values = np.where(seen["first_learned_step"].isna().to_numpy(), math.inf, values)
    elif score == "variability":
        values = seen[f"variability{suffix}"].to_numpy(dtype=np.float64)
    else:
        first = seen[f"first_saturated_step{suffix}"].astype("Float64")
        last = float(samples["last_seen_step"].astype("Float64").max())
        never = first.isna().to_numpy()
        late = first.fillna(0).to_numpy(dtype=np.float64) / (last + 1)
        conf = seen[f"confidence{suffix}"].to_numpy(dtype=np.float64)
        values = np.where(never, 2.0 - conf, late)
    return pd.Series(values, index=pd.Index(seen["index"].to_numpy(), name="index"), name=score)


def detection_quality(run_or_samples: Run | pd.DataFrame,
                      scores: Sequence[str] = SCORES, *, saturation: str = "clean") -> pd.DataFrame:
    """How well each score finds the corrupted labels (known for runs trained with
    ``--label-noise``), over the samples the run saw.

    Returns:
        One row per score: ``score``, ``auroc``, ``average_precision``, ``precision_at_k``
        (k = the true number of corrupted samples), ``k``, ``n`` (samples scored). Chance
        level: AUROC 0.5; average precision and precision at k = the corrupted fraction.

    Raises:
        RunError: the table has no ``label_corrupted`` column, or no corrupted (or no clean)
            sample among those seen.
    """
    samples, where = _samples(run_or_samples)
    _require(samples, ["label_corrupted", "visits"], where)
    seen = samples[samples["visits"] > 0]
    truth = seen.set_index("index")["label_corrupted"].astype(bool)
    k = int(truth.sum())
    if k == 0 or k == len(truth):
        raise RunError(f"{where}: {k} of {len(truth)} seen samples have a corrupted label; "
                       "detection quality needs both kinds (train with --label-noise)")
    rows = []
    for name in scores:
        s = label_issue_scores(samples, name, saturation=saturation)
        y = truth.loc[s.index].to_numpy()
        v = s.to_numpy()
        rows.append({"score": name, "auroc": auroc(v, y), "average_precision":
                     average_precision(v, y), "precision_at_k": precision_at_k(v, y, k),
                     "k": k, "n": len(v)})
    return pd.DataFrame(rows)


def data_map_scalars(samples: pd.DataFrame, *, ambiguous: float = 0.2,
                     easy: float = 0.5) -> dict[str, float]:
    """The per-epoch figures TensorBoard gets (group ``data_map``): the fraction of seen
    samples in each region, and, when ``label_corrupted`` is known with both kinds, the mean
    confidence of the corrupted and of the clean samples."""
    frame = data_map(samples, ambiguous=ambiguous, easy=easy)
    out: dict[str, float] = {}
    if not len(frame):
        return out
    counts = frame["region"].value_counts()
    out.update({region: float(counts.get(region, 0)) / len(frame) for region in REGIONS})
    if "label_corrupted" in frame:
        bad = frame["label_corrupted"].astype(bool)
        if bad.any() and (~bad).any():
            out["confidence_corrupted"] = float(frame.loc[bad, "confidence"].mean())
            out["confidence_clean"] = float(frame.loc[~bad, "confidence"].mean())
    return out
