"""Two CPU ranks (gloo, DDP) each see half of every batch; the merged table must equal one
process that sees the whole batch: means weighted by batch size, exact quantiles, per-sample
records merged across ranks (samples move between ranks from step to step), their training
dynamics (visits, moments, forgetting) included."""

import os

import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from recorder_models import make_data, make_net

from satkit.hooks import SaturationRecorder
from satkit.sinks import TableSink, read_table

N, BATCH, STEPS, WORLD = 16, 12, 7, 2
SETTINGS = {"num_samples": N, "thresholds": (0.3, 0.45), "flush_every": 3}


def _batches():
    for step in range(STEPS):
        yield torch.randperm(N, generator=torch.Generator().manual_seed(step))[:BATCH]


def _setup():
    # float64 so that the two-rank and the one-process trajectories stay equal to ~1e-12 over
    # the SGD steps (in float32 the summation order alone makes them drift apart).
    x, y = make_data(n=N, seed=2)
    return x.double(), y, make_net(seed=2).double()


def _train(model, head, x, y, rec, part):
    """SGD steps; ``part(idx)`` picks this process's share of each batch."""
    for idx in _batches():
        idx = part(idx)
        loss = F.cross_entropy(model(x[idx], y[idx]), y[idx])
        head.zero_grad()
        model.zero_grad()
        loss.backward()
        rec.step(index=idx, loss=loss.detach())
        with torch.no_grad():
            for p in head.parameters():
                p -= 2.0 * p.grad
            for p in model.parameters():
                if p.grad is not None and p is not head.weight:
                    p -= 2.0 * p.grad


def _worker(rank, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=WORLD)
    try:
        x, y, net = _setup()
        ddp = torch.nn.parallel.DistributedDataParallel(net)
        sinks = [TableSink(os.path.join(out_dir, "metrics.parquet"))] if rank == 0 else []
        half = BATCH // WORLD
        with SaturationRecorder(net.head, sinks=sinks, **SETTINGS) as rec:
            _train(ddp, net.head, x, y, rec, lambda idx: idx[rank * half:(rank + 1) * half])
            rec.metrics().to_parquet(os.path.join(out_dir, f"metrics{rank}.parquet"))
            rec.samples().to_parquet(os.path.join(out_dir, f"samples{rank}.parquet"))
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(600)
def test_two_gloo_ranks_merge_to_the_single_process_table(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)

    x, y, net = _setup()
    with SaturationRecorder(net.head, **SETTINGS) as rec:
        _train(net, net.head, x, y, rec, lambda idx: idx)
        single, single_samples = rec.metrics(), rec.samples()

    assert single["step"].tolist() == list(range(STEPS)) and (single["batch_size"] == 12).all()
    assert single_samples["desaturations"].sum() > 0  # the merge of transitions is exercised
    assert single_samples["forgetting_events"].sum() > 0  # and of the training dynamics
    assert (single_samples["visits"] > 1).sum() > 0 and (single_samples["variability"] > 0).any()
    for table in (read_table(tmp_path / "metrics.parquet"),
                  pd.read_parquet(tmp_path / "metrics0.parquet"),
                  pd.read_parquet(tmp_path / "metrics1.parquet")):
        pd.testing.assert_frame_equal(table, single, rtol=1e-5, atol=1e-6)
    for r in range(WORLD):
        got = pd.read_parquet(tmp_path / f"samples{r}.parquet")
        pd.testing.assert_frame_equal(got, single_samples, rtol=1e-5)
    # rank 0 wrote the samples table at close
    assert pd.read_parquet(tmp_path / "samples.parquet").equals(
        pd.read_parquet(tmp_path / "samples0.parquet"))
