"""TableSink: Parquet that survives a killed process, resumes, truncates, consolidates."""

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from satkit.sinks import TableSink, read_table
from satkit.sinks import table as table_module


def _rows(steps):
    return [{"step": s, "loss": 1.0 / (s + 1), "nonfinite": False} for s in steps]


def test_write_close_and_samples(tmp_path):
    path = tmp_path / "run" / "metrics.parquet"
    sink = TableSink(path)
    sink.write(_rows(range(3)))
    sink.write(_rows(range(3, 5)))
    sink.write([])
    sink.write_samples(pd.DataFrame({"index": [0, 1], "desaturations": [0, 2]}))
    sink.close()
    sink.close()  # idempotent
    table = pd.read_parquet(path)
    assert table["step"].tolist() == [0, 1, 2, 3, 4] and table["nonfinite"].dtype == bool
    assert pd.read_parquet(tmp_path / "run" / "samples.parquet")["desaturations"].tolist() == [0, 2]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["metrics.parquet",
                                                                    "samples.parquet"]
    with pytest.raises(RuntimeError, match="closed"):
        sink.write(_rows([5]))


def test_rows_are_durable_at_write_even_if_the_process_is_killed(tmp_path):
    path = tmp_path / "metrics.parquet"
    script = textwrap.dedent(f"""
        import os, signal
        from satkit.sinks import TableSink
        sink = TableSink({str(path)!r})
        sink.write([{{"step": 0, "loss": 1.0}}, {{"step": 1, "loss": 0.5}}])
        sink.write([{{"step": 2, "loss": 0.25}}])
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode != 0  # killed before close()
    assert read_table(path)["step"].tolist() == [0, 1, 2]
    sink = TableSink(path, resume=True)  # resume consolidates what the crash left
    assert pd.read_parquet(path)["loss"].tolist() == [1.0, 0.5, 0.25]
    sink.write(_rows([3]))
    sink.close()
    assert pd.read_parquet(path)["step"].tolist() == [0, 1, 2, 3]


def test_resume_truncate_after_and_fresh_start(tmp_path):
    path = tmp_path / "metrics.parquet"
    sink = TableSink(path)
    sink.write(_rows(range(6)))
    sink.close()
    sink = TableSink(path, resume=True)
    sink.truncate_after(3)  # the checkpoint was taken at step 3
    assert read_table(path)["step"].tolist() == [0, 1, 2, 3]
    sink.write(_rows(range(4, 8)))
    sink.close()
    assert pd.read_parquet(path)["step"].tolist() == list(range(8))
    TableSink(path).close()  # not resuming: a fresh, empty table
    assert len(pd.read_parquet(path)) == 0


def test_crash_between_consolidation_and_part_deletion_duplicates_nothing(tmp_path):
    path = tmp_path / "metrics.parquet"
    sink = TableSink(path)
    sink.write(_rows(range(3)))
    # As if killed after consolidation's os.replace, before the parts were deleted:
    read_table(path).to_parquet(path)
    assert len(list((tmp_path / ".metrics.parquet.parts").iterdir())) == 1
    assert read_table(path)["step"].tolist() == [0, 1, 2]
    sink.close()
    assert pd.read_parquet(path)["step"].tolist() == [0, 1, 2]


def test_many_parts_are_consolidated(tmp_path, monkeypatch):
    monkeypatch.setattr(table_module, "_MAX_PARTS", 3)
    path = tmp_path / "metrics.parquet"
    sink = TableSink(path)
    for s in range(7):
        sink.write(_rows([s]))
    parts = list((tmp_path / ".metrics.parquet.parts").glob("part-*.parquet"))
    assert len(parts) < 3 and path.exists()
    assert read_table(path)["step"].tolist() == list(range(7))
    sink.close()


def test_unwritable_path_fails_at_construction(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="TableSink cannot write"):
        TableSink(blocker / "metrics.parquet")
    with pytest.raises(OSError, match="TableSink cannot write"):
        TableSink(tmp_path / "metrics.parquet", samples_path=blocker / "samples.parquet")
    with pytest.raises(ValueError, match="differ"):
        TableSink(tmp_path / "m.parquet", samples_path=tmp_path / "m.parquet")


def test_sample_columns_are_appended_and_checked(tmp_path):
    extra = pd.DataFrame({"label": [3, 1], "label_corrupted": [True, False]})
    sink = TableSink(tmp_path / "metrics.parquet", sample_columns=extra)
    sink.write_samples(pd.DataFrame({"index": [0, 1], "visits": [2, 2]}))
    got = pd.read_parquet(tmp_path / "samples.parquet")
    assert list(got.columns) == ["index", "visits", "label", "label_corrupted"]
    assert got["label"].tolist() == [3, 1] and got["label_corrupted"].tolist() == [True, False]
    with pytest.raises(ValueError, match="2 rows, the samples table 3"):
        sink.write_samples(pd.DataFrame({"index": [0, 1, 2]}))
    sink.close()
    with pytest.raises(ValueError, match="must not repeat"):
        TableSink(tmp_path / "m2.parquet", sample_columns=pd.DataFrame({"visits": [1]}))


def test_consolidation_streams_in_batches_and_keeps_every_row(tmp_path, monkeypatch):
    """A long run's consolidation copies the table batch by batch (memory does not grow with
    the table) and gives what the in-memory merge gives; out-of-order parts fall back."""
    import numpy as np
    import pyarrow.parquet as pq

    streamed = []
    real = table_module._append_streaming
    monkeypatch.setattr(table_module, "_append_streaming",
                        lambda *a: streamed.append(real(*a)) or streamed[-1])
    monkeypatch.setattr(table_module, "_MAX_PARTS", 3)
    path = tmp_path / "metrics.parquet"
    sink = TableSink(path)
    big = [{"step": s, "loss": float(np.sin(s)), "nonfinite": s % 7 == 0} for s in range(70_000)]
    sink.write(big[:40_000])
    sink.write(big[40_000:69_000])
    sink.write(big[69_000:])  # the third part: consolidated, nothing to stream onto yet
    assert streamed == [False] and path.exists()
    for s in range(70_000, 70_009, 3):
        sink.write(_rows(range(s, s + 3)))
    assert streamed == [False, True]
    expected = pd.DataFrame(big + _rows(range(70_000, 70_009)))
    pd.testing.assert_frame_equal(read_table(path), expected, check_exact=True)
    assert max(pq.ParquetFile(path).metadata.row_group(i).num_rows
               for i in range(pq.ParquetFile(path).num_row_groups)) <= table_module._BATCH_ROWS
    sink.truncate_after(69_999)
    assert streamed[-1] is True
    pd.testing.assert_frame_equal(read_table(path), expected[:70_000], check_exact=True)
    sink.write(_rows([5]))  # a step the table holds already (a rewound run): the newest wins
    sink.close()
    assert streamed[-1] is False
    expected.loc[5, ["loss", "nonfinite"]] = [1 / 6, False]
    pd.testing.assert_frame_equal(pd.read_parquet(path), expected[:70_000], check_exact=True)
