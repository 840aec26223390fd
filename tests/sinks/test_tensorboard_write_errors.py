"""A TensorBoard sink whose disk fails: the error reaches the caller of the write, once per
failing write, from no thread of TensorBoard's own (whose traceback used to be printed), and
the error names the file as text; what was written before stays readable by TensorBoard."""

from __future__ import annotations

import errno
import os
import threading

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub.io import gfile

from satkit.run_dir import describe_os_error
from satkit.sinks import TensorBoardSink
from satkit.sinks.table import _atomic_write


def _tensorboard_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if type(t).__name__ == "_AsyncWriterThread"]


def test_the_sink_writes_on_the_callers_thread(tmp_path):
    before = set(_tensorboard_threads())
    sink = TensorBoardSink(tmp_path)
    assert set(_tensorboard_threads()) == before  # TensorBoard's writer thread is stopped
    sink.write([{"step": s, "p_target_mean": s / 10} for s in range(3)])
    sink.close()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [e.step for e in events.Scalars("1 saturation, clean/p_target_mean")] == [0, 1, 2]


def test_a_failing_write_raises_to_the_caller_and_names_the_file(tmp_path, monkeypatch):
    sink = TensorBoardSink(tmp_path)
    sink.write([{"step": 0, "p_target_mean": 0.5}])
    real_append = gfile.LocalFileSystem.append

    def read_only(self, filename, file_content, binary_mode=False):
        raise OSError(errno.EROFS, "Read-only file system", os.fsencode(filename))

    thread_errors = []
    monkeypatch.setattr(threading, "excepthook", thread_errors.append)
    monkeypatch.setattr(gfile.LocalFileSystem, "append", read_only)
    for step in (1, 2):  # each failing write raises, not only the first
        with pytest.raises(OSError) as info:
            sink.write([{"step": step, "p_target_mean": 0.5}])
        message = describe_os_error(info.value)
        assert message.startswith(f"read-only file system while writing {tmp_path}/events.")
        assert "b'" not in message
    monkeypatch.setattr(gfile.LocalFileSystem, "append", real_append)
    sink.write([{"step": 3, "p_target_mean": 0.25}])  # the disk is back: writing goes on
    sink.close()
    assert thread_errors == []
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [e.step for e in events.Scalars("1 saturation, clean/p_target_mean")] == [0, 3]


def test_a_table_write_names_the_destination_not_its_temporary_file(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def read_only(table, where, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(where))

    monkeypatch.setattr(pq, "write_table", read_only)
    dest = tmp_path / "metrics.parquet"
    with pytest.raises(OSError) as info:
        _atomic_write(pa.table({"step": [0]}), dest)
    assert describe_os_error(info.value) == f"read-only file system while writing {dest}"
    assert list(tmp_path.iterdir()) == []
