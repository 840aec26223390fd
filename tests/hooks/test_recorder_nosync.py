"""No host sync on recorded steps, flushes included: intercepted on CPU (reads of a tensor on
the training thread), sync-debug mode on CUDA (every stream synchronisation, host-to-device
copies from pageable memory too)."""

import contextlib
import sys
import threading

import pytest
import torch
import torch.nn.functional as F
from recorder_models import make_data, make_net

from satkit.hooks import SaturationRecorder

SYNCING = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__",
           "__array__")


#: torch functions that make a tensor of host data: on an accelerator, a copy from pageable
#: memory follows (a stream synchronisation) unless it goes through buffer.to_device.
HOST_DATA = ("tensor", "as_tensor", "from_numpy")


class SyncGuard:
    """Fails, on the training (main) thread while active, what would wait for an accelerator:
    any Tensor -> host read; a tensor made of host data in satkit's own code anywhere but
    :func:`satkit.hooks.buffer.to_device` (pinned memory, non-blocking copy); indexing with a
    Python list (copied to the device first). The recorder's writer thread reads host copies
    of earlier flushes: that never blocks a training step."""

    def __init__(self, monkeypatch):
        self.active = False
        self.calls: list[str] = []
        for name in SYNCING:
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap(name, original))
        for name in HOST_DATA:
            monkeypatch.setattr(torch, name, self._wrap_host_data(name, getattr(torch, name)))
        for name in ("__getitem__", "__setitem__"):
            original = getattr(torch.Tensor, name)
            monkeypatch.setattr(torch.Tensor, name, self._wrap_index(name, original))

    def _fail(self, what: str) -> None:
        self.calls.append(what)
        raise AssertionError(f"host sync: {what} on a training step")

    def _guarding(self) -> bool:
        return self.active and threading.current_thread() is threading.main_thread()

    def _wrap_host_data(self, name, original):
        def guarded(*args, **kwargs):
            caller = sys._getframe(1).f_globals.get("__name__", "")
            if self._guarding() and caller.startswith("satkit.") \
                    and caller != "satkit.hooks.buffer":
                self._fail(f"torch.{name} in {caller}")
            return original(*args, **kwargs)
        return guarded

    def _wrap_index(self, name, original):
        def guarded(t, index, *args):
            parts = index if isinstance(index, tuple) else (index,)
            if self._guarding() and any(isinstance(p, list) for p in parts):
                self._fail(f"Tensor.{name} with a list index")
            return original(t, index, *args)
        return guarded

    def _wrap(self, name, original):
        def guarded(t, *args, **kwargs):
            if self._guarding():
                self._fail(f"Tensor.{name}")
            return original(t, *args, **kwargs)
        return guarded

    @contextlib.contextmanager
    def on(self):
        self.active = True
        try:
            yield
        finally:
            self.active = False


def _sgd(net, lr=0.1):
    with torch.no_grad():
        for p in net.parameters():
            p -= lr * p.grad


def test_no_host_sync_on_a_language_model_head_given_its_loss(monkeypatch):
    """The vocabulary-sized path: targets announced, the loss given before backward, its
    log-softmax read from the graph, all without a host read."""
    guard = SyncGuard(monkeypatch)
    n, t, d, vocab = 4, 64, 8, 300
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(d, vocab)
    x = torch.randn(n, t, d, generator=g)
    y = torch.randint(0, vocab, (n, t), generator=g)
    y[0, -3:] = -100
    flush_every = 3
    rec = SaturationRecorder(head, num_samples=n, flush_every=flush_every, histogram_every=2)
    for step in range(2 * flush_every):  # steps 2 and 5 flush, on the training thread
        with guard.on():
            head.zero_grad(set_to_none=True)
            rec.set_target(y, loss_follows=True)
            loss = F.cross_entropy(head(x).flatten(0, 1), y.flatten())
            rec.set_loss(loss)
            loss.backward()
            rec.step(index=torch.arange(n))
            _sgd(head)
        assert rec.buffered == (step + 1) % flush_every
    assert guard.calls == [] and rec.reused_log_softmax == 2 * flush_every
    assert rec.metrics()["step"].tolist() == list(range(2 * flush_every))
    rec.close()


@pytest.mark.parametrize("kind", ["linear", "noisy"])
def test_no_host_sync_on_recorded_non_flush_steps(monkeypatch, kind):
    guard = SyncGuard(monkeypatch)
    with guard.on(), pytest.raises(AssertionError, match="host sync"):
        torch.ones(2).sum().item()  # the guard works
    guard.calls.clear()
    x, y = make_data(n=12)
    net = make_net(kind)
    # For the Noisy Softmax head, switch the guard on right after its forward: the head itself
    # validates its inputs on CPU (a read that is free on CPU and done once on accelerators).
    hook = net.head.register_forward_hook(lambda *a: setattr(guard, "active", True),
                                          prepend=True) if kind == "noisy" else None
    flush_every = 5
    rec = SaturationRecorder(net.head, num_samples=12, flush_every=flush_every,
                             histogram_every=2, thresholds=(0.3, 0.5), opt_in=("entropy",))
    for step in range(2 * flush_every):  # steps 4 and 9 flush (reduce, pack, per-sample)
        with guard.on() if kind == "linear" else contextlib.nullcontext():
            net.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x, y), y)
            loss.backward()
            rec.step(y, index=torch.arange(12), loss=loss.detach() if step % 2 else None)
            _sgd(net)
        guard.active = False
        assert rec.buffered == (step + 1) % flush_every
    if hook is not None:
        hook.remove()
    assert guard.calls == []
    assert rec.metrics()["step"].tolist() == list(range(2 * flush_every))
    rec.close()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["noisy", "linear"])
def test_no_sync_under_cuda_sync_debug_mode(kind):
    """Recorded steps and the flushes among them (a small step's records reduced at the
    flush, the scalars packed, the per-sample record updated, the rows copied to the host)
    never wait for the GPU."""
    device = torch.device("cuda")
    x, y = (t.to(device) for t in make_data(n=64))
    net = make_net(kind).to(device)
    if kind == "noisy":
        net.head.generator = None
    rec = SaturationRecorder(net.head, num_samples=64, flush_every=4, histogram_every=2,
                             opt_in=("entropy",))
    index = torch.arange(64, device=device)

    def step(k):
        net.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x, y), y)
        loss.backward()
        rec.step(y, index=index, loss=loss.detach() if k % 2 else 0.5)
        _sgd(net)

    for k in range(4):  # warm-up: the head checks its inputs once; one flush allocates
        step(k)
    rec.wait_for_writes()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for k in range(4, 12):  # steps 4..11: recorded, steps 7 and 11 flush
            step(k)
            assert rec.buffered == (k + 1) % 4
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert rec.metrics()["step"].tolist() == list(range(12))
    rec.close()


def _log_softmax_dtype(loss: torch.Tensor) -> torch.dtype | None:
    """The dtype of the log-softmax result saved in ``loss``'s graph (None: there is none)."""
    todo, seen = [loss.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        if type(fn).__name__ == "LogSoftmaxBackward0":
            return fn._saved_result.dtype
        todo.extend(f for f, _ in fn.next_functions)
    return None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_sync_on_a_language_model_head_under_cuda_sync_debug_mode():
    """The vocabulary-sized path on CUDA, no sync: the loss's log-softmax read from the graph
    where it is float32, and the recorder's own computed under autocast where torch takes it in
    bf16 (both kinds of step, each warmed up first)."""
    device = torch.device("cuda")
    n, t, d, vocab = 4, 64, 32, 1000
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(d, vocab).to(device)
    x = torch.randn(n, t, d, generator=g).to(device)
    y = torch.randint(0, vocab, (n, t), generator=g).to(device)
    rec = SaturationRecorder(head, num_samples=n, flush_every=4, histogram_every=2)
    index = torch.arange(n, device=device)

    float32_log_softmax = []  # per step: whether the loss's log-softmax is one to reuse

    def step(autocast: bool):
        head.zero_grad(set_to_none=True)
        rec.set_target(y, loss_follows=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(head(x).flatten(0, 1), y.flatten())
        float32_log_softmax.append(_log_softmax_dtype(loss) == torch.float32)
        rec.set_loss(loss)
        loss.backward()
        rec.step(index=index)
        _sgd(head)

    # Warm-up: buffers are allocated, the statistics compiled for float32 and for bf16 logits
    # (compiling a graph reads a constant back once, a sync of torch's own), step 3 flushes.
    for k in range(4):
        step(k % 2 == 1)
    rec.wait_for_writes()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for k in range(4, 10):  # steps 4..9: recorded, step 7 flushes
            step(k % 2 == 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert rec.metrics()["step"].tolist() == list(range(10))
    # float32 steps always reuse it; under CUDA autocast torch 2.11 takes the log-softmax in
    # bf16 and casts its result, which the recorder must not reuse (it computes its own)
    assert float32_log_softmax[0::2] == [True] * 5
    assert rec.reused_log_softmax == sum(float32_log_softmax)
    rec.close()
