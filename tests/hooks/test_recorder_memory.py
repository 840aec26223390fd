"""The recorder keeps no row that every sink has: ``metrics()`` reads the table sink back, or
compact in-memory columns without one, and is the same frame either way; nothing recorded is
lost while a sink fails. (The memory itself is measured by ``bench_recorder.py --long``.)"""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from recorder_models import make_data, make_net

from satkit.columns import column_dtypes
from satkit.hooks import SaturationRecorder
from satkit.hooks.fanout import Fanout
from satkit.hooks.store import ColumnStore, StepSet
from satkit.sinks import TableSink, read_table

THRESHOLDS = (0.3, 0.5)
DTYPES = column_dtypes(THRESHOLDS)


class ListSink:
    """Every row it is given, kept as given (the oracle: what ``metrics()`` must return)."""

    def __init__(self, fail_times: int = 0):
        self.rows, self.fail_times = [], fail_times

    def write(self, rows):
        if self.fail_times:
            self.fail_times -= 1
            raise OSError("disk full")
        self.rows.extend(rows)

    def close(self):
        pass


class FlakyTable(TableSink):
    """A table sink whose first ``fail_times`` writes raise, before storing the rows or (with
    ``after=True``) after storing them (the rows are then given again: a duplicate part)."""

    def __init__(self, *args, fail_times: int, after: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_times, self.after = fail_times, after

    def write(self, rows):
        if self.fail_times:
            self.fail_times -= 1
            if self.after:
                super().write(rows)
            raise OSError("disk full")
        super().write(rows)


def _reference(rows: list[dict]) -> pd.DataFrame:
    """The frame ``metrics()`` has always built: every row kept, in order."""
    return pd.DataFrame(rows, columns=list(DTYPES)).astype(DTYPES)


def _record(sinks, steps=8, start=0, nan_loss_at=5):
    """Seeded training of a fixed-noise head; step ``nan_loss_at`` gets a NaN loss (a True
    ``nonfinite`` and a NaN float in the table)."""
    torch.manual_seed(0)
    net, (x, y) = make_net(), make_data()
    rec = SaturationRecorder(net.head, num_samples=12, thresholds=THRESHOLDS, flush_every=3,
                             sinks=sinks)
    if start:
        rec.load_state_dict({"steps": start, "samples": rec.state_dict()["samples"]})
    for s in range(start, start + steps):
        idx = torch.arange(12).roll(s)
        net.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x[idx], y[idx]), y[idx])
        loss.backward()
        rec.step(index=idx, loss=math.nan if s == nan_loss_at else loss.detach())
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.5 * p.grad
    return rec


@pytest.mark.parametrize("sinks", ["none", "table", "list", "table+list"])
def test_metrics_is_the_frame_of_every_row_whatever_the_sinks(tmp_path, sinks):
    oracle = ListSink()
    _record([oracle]).close()  # the same seeded run, every row as the sink got it
    chosen = {"none": [], "table": [TableSink(tmp_path / "m.parquet")], "list": [ListSink()],
              "table+list": [TableSink(tmp_path / "m.parquet"), ListSink()]}[sinks]
    rec = _record(chosen)
    during = rec.metrics()
    expected = _reference(oracle.rows)
    assert expected["step"].tolist() == list(range(8))
    assert expected["nonfinite"].tolist() == [s == 5 for s in range(8)]
    assert math.isnan(expected["loss"][5]) and expected["p_target_q10"].notna().all()
    pd.testing.assert_frame_equal(during, expected, check_exact=True)
    # the rows every sink has are not kept; with a table sink nothing else is either
    assert rec._flusher.fanout.pending == 0
    kept = rec._flusher.fanout._store
    assert (kept is None) == sinks.startswith("table")
    if kept is not None:
        assert len(kept) == 8 and all(a.itemsize <= 8 for a in kept._columns.values())
    rec.close()
    pd.testing.assert_frame_equal(rec.metrics(), expected, check_exact=True)  # after close
    if sinks.startswith("table"):
        pd.testing.assert_frame_equal(read_table(tmp_path / "m.parquet"), expected,
                                      check_exact=True)


def test_metrics_of_a_resumed_run_are_its_own_rows_only(tmp_path):
    path = tmp_path / "m.parquet"
    _record([TableSink(path)], steps=6).close()
    sink = TableSink(path, resume=True)
    sink.truncate_after(3)
    oracle = ListSink()
    rec = _record([sink, oracle], steps=4, start=4)
    got = rec.metrics()
    rec.close()
    assert got["step"].tolist() == [4, 5, 6, 7]  # the table also holds steps 0-3
    assert read_table(path)["step"].tolist() == list(range(8))
    pd.testing.assert_frame_equal(got, _reference(oracle.rows), check_exact=True)


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n):
        row = {}
        for c, d in DTYPES.items():
            row[c] = (3 * s if c == "step" else int(rng.integers(1, 99)) if d == "int64"
                      else bool(rng.random() < 0.3) if d == "bool"
                      else math.nan if rng.random() < 0.1 else float(rng.normal()))
        rows.append(row)
    return rows


@pytest.mark.parametrize("after", [False, True])
def test_a_failing_table_sink_loses_nothing(tmp_path, after):
    rows = _rows(9)
    other = ListSink()
    fan = Fanout([FlakyTable(tmp_path / "m.parquet", fail_times=2, after=after), other], DTYPES)
    for chunk, fails in ((rows[:3], 1), (rows[3:5], 1), (rows[5:], 0)):
        fan.add(chunk, [])
        assert len(fan.write()) == fails
        seen = rows[:rows.index(chunk[-1]) + 1]
        pd.testing.assert_frame_equal(fan.frame(), _reference(seen), check_exact=True)
        assert fan.pending == (len(seen) if fails else 0)  # kept until the table has them
    assert other.rows == rows  # the other sink got each row once, while the table failed
    pd.testing.assert_frame_equal(read_table(tmp_path / "m.parquet"), _reference(rows),
                                  check_exact=True)


def test_rows_wait_for_a_failing_other_sink_and_are_read_from_the_table(tmp_path):
    rows = _rows(7, seed=1)
    flaky = ListSink(fail_times=2)
    fan = Fanout([TableSink(tmp_path / "m.parquet"), flaky], DTYPES)
    fan.add(rows[:4], [])
    assert len(fan.write()) == 1 and fan.pending == 4
    assert len(fan.write()) == 1 and fan.pending == 4
    pd.testing.assert_frame_equal(fan.frame(), _reference(rows[:4]), check_exact=True)
    fan.add(rows[4:], [])
    assert fan.write() == [] and fan.pending == 0 and flaky.rows == rows
    pd.testing.assert_frame_equal(fan.frame(), _reference(rows), check_exact=True)


def test_without_a_readable_sink_rows_are_kept_as_columns():
    rows = _rows(1000, seed=2)
    fan = Fanout([ListSink()], DTYPES)
    for i in range(0, 1000, 7):
        fan.add(rows[i:i + 7], [])
        assert fan.write() == []
    assert fan.pending == 0
    pd.testing.assert_frame_equal(fan.frame(), _reference(rows), check_exact=True)
    store = fan._store
    values = len(rows) * len(DTYPES)
    # at most 8 bytes a value, and the geometric growth leaves at most half unused
    assert store.nbytes <= 2 * 8 * values and store.nbytes >= values


def test_column_store_copies_and_empty_frame():
    store = ColumnStore(DTYPES)
    pd.testing.assert_frame_equal(store.frame(), _reference([]), check_exact=True)
    rows = _rows(3)
    store.extend(rows)
    frame = store.frame()
    store.extend(_rows(200, seed=5))  # grows: the earlier frame is unchanged
    pd.testing.assert_frame_equal(frame, _reference(rows), check_exact=True)


def test_step_set_against_a_python_set():
    rng = np.random.default_rng(3)
    steps = [*range(0, 300, 3), *range(100, 140), 7, 7, 500, *range(600, 10_000, 10)]
    extra = rng.integers(0, 20_000, 500).tolist()
    steps += extra
    kept = StepSet()
    for i in range(0, len(steps), 13):
        kept.extend(steps[i:i + 13])
    query = np.arange(-5, 20_005)
    expected = np.isin(query, np.asarray(steps))
    assert expected.sum() > 1000 and (~expected).sum() > 1000  # both answers occur
    np.testing.assert_array_equal(kept.contains(query), expected)
    regular = StepSet()
    regular.extend(range(5, 1_000_000, 4))
    assert regular.runs == [(5, 4, 249_999)]  # a whole run of every=4 is three integers


def test_opt_in_columns_are_read_back_from_the_table_too(tmp_path):
    """An opt-in column (entropy) is in the frame read back from the table sink, equal to the
    frame kept in memory without a sink."""
    def run(sinks):
        torch.manual_seed(0)
        net, (x, y) = make_net(), make_data()
        with SaturationRecorder(net.head, thresholds=THRESHOLDS, flush_every=2, sinks=sinks,
                                opt_in=("entropy",)) as rec:
            for _ in range(5):
                net.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(net(x, y), y).backward()
                rec.step()
        return rec.metrics()

    kept, read = run([]), run([TableSink(tmp_path / "m.parquet")])
    assert list(kept.columns) == list(column_dtypes(THRESHOLDS, ("entropy",)))
    assert kept["entropy_mean"].between(0, math.log(4)).all()
    pd.testing.assert_frame_equal(read, kept, check_exact=True)
