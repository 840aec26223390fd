"""RunWriter, the one writer of a run directory: what it writes, and what it leaves behind when
it cannot (satkit train and the callbacks are tested end to end in tests/training and
tests/integrations)."""

import json

import pytest
import torch
from torch import nn

from satkit import schema
from satkit.hooks import RecorderOptions
from satkit.run_dir import CLAIM, RunLockedError, lock_run_dir
from satkit.run_writer import RunWriter


def _record(rec, head, steps=2):
    for _ in range(steps):
        x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        nn.functional.cross_entropy(head(x), y).backward()
        rec.step(y)


def test_a_run_written_and_its_lock_held_until_close(tmp_path):
    torch.manual_seed(0)
    writer = RunWriter.claim(tmp_path / "run")
    writer.write_config({"method": "softmax", "dataset": "toy", "seed": 0})
    head = nn.Linear(4, 3)
    with writer.recorder(head, RecorderOptions(flush_every=1, histogram_every=None)) as rec:
        _record(rec, head)
    with pytest.raises(RunLockedError):
        lock_run_dir(writer.path)  # another writer is refused while this one holds it
    summary = writer.write_summary({"steps": 2, "not a summary field": 1})
    writer.close()
    writer.close()  # idempotent
    assert list(summary) == list(schema.SUMMARY_FIELDS) and summary["steps"] == 2
    assert json.loads((writer.path / schema.SUMMARY).read_text()) == summary
    assert json.loads((writer.path / schema.CONFIG).read_text())["dataset"] == "toy"
    from satkit.sinks import read_table

    assert read_table(writer.path / schema.METRICS)["step"].tolist() == [0, 1]
    lock_run_dir(writer.path).release()  # free again


def test_a_fresh_directory_whose_config_cannot_be_written_is_given_up(tmp_path):
    class Interrupting:
        def __str__(self):
            raise KeyboardInterrupt  # Ctrl-C while config.json is being written

    writer = RunWriter.claim(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        writer.write_config({"value": Interrupting()})
    assert not (tmp_path / "run").exists()  # nothing left behind, and the lock let go
    writer.close()


def test_resuming_truncates_the_table_and_drops_the_stale_summary(tmp_path):
    torch.manual_seed(0)
    first = RunWriter.claim(tmp_path / "run")
    first.write_config({"dataset": "toy"})
    head = nn.Linear(4, 3)
    with first.recorder(head, RecorderOptions(flush_every=1, histogram_every=None)) as rec:
        _record(rec, head, steps=4)
    first.write_summary({"steps": 4})
    first.close()
    (first.path / ".metrics.parquet.123.abcd.tmp").write_bytes(b"half")  # a killed write
    (first.path / schema.CHECKPOINT).write_bytes(b"the state at step 1")
    again = RunWriter.claim(first.path, resume=True)
    again.write_config({"dataset": "toy"})
    assert not (first.path / schema.SUMMARY).exists()
    assert not list(first.path.glob(".*.tmp"))
    rec = again.recorder(head, RecorderOptions(flush_every=1, histogram_every=None))
    again.truncate_after(1)
    rec.remove()
    again.table.close()
    again.close()
    from satkit.sinks import read_table

    assert read_table(first.path / schema.METRICS)["step"].tolist() == [0, 1]


def test_a_writer_on_another_rank_writes_nothing(tmp_path):
    writer = RunWriter.claim(tmp_path / "run", writes=False)
    assert writer.path is None and not writer.writes
    writer.write_config({"dataset": "toy"})
    rec = writer.recorder(nn.Linear(4, 3), RecorderOptions())
    assert list(rec.sinks) == [] and writer.write_summary({}) is None
    rec.close()
    writer.close()
    assert list(tmp_path.iterdir()) == [] and not (tmp_path / CLAIM).exists()
