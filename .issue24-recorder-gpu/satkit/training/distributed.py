"""Process-group setup for ``torchrun``: rank, world size and this process's device."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "resolve_device", "setup_distributed", "teardown_distributed"]


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The device a run trains on: "auto" is the local CUDA device when one is present, else the
    CPU; "cuda" is the local rank's GPU; any other torch device string (``cuda:1``, ``mps``,
    ``cpu``) is taken as it is, once it is known to be available.

    Raises:
        ValueError: the name does not parse, or the device is not available here (whatever
            error the backend raises); the message is one line, starts with "device" and says
            what to use instead.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"device {name!r} is not a torch device (e.g. cpu, cuda, cuda:1, "
                         "mps)") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} is not available: this machine has no usable CUDA "
                             "device; use --device cpu or auto")
        count = torch.cuda.device_count()
        if dev.index is None:
            return torch.device("cuda", local_rank % count)
        if dev.index >= count:
            raise ValueError(f"device {name!r} is not available: this machine has {count} CUDA "
                             f"device(s), cuda:0 to cuda:{count - 1}")
        return dev
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {name!r} is not available: MPS needs Apple silicon and a "
                         "PyTorch built with it; use --device cpu or auto")
    if dev.type == "meta":
        raise ValueError("device 'meta' holds no data and cannot train; use cpu or cuda")
    if dev.type != "cpu":
        try:
            torch.empty(1, device=dev)
        except Exception as exc:  # by backend: RuntimeError, AssertionError, NotImplementedError,
            # ModuleNotFoundError (hpu, privateuseone: no backend module in this build), ...
            raise ValueError(f"device {name!r} is not available: this PyTorch "
                             f"{torch.__version__} has no working {dev.type!r} backend "
                             f"({_first_sentence(exc)}); use --device cpu or auto") from exc
    return dev


def _first_sentence(exc: BaseException, limit: int = 120) -> str:
    """``Type: first sentence`` of an error, on one line and at most ``limit`` characters
    (PyTorch's backend errors run to dozens of lines)."""
    lines = str(exc).strip().splitlines()
    text = lines[0].split(". ")[0] if lines else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def setup_distributed(device: str) -> DistContext:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1).

    The backend is nccl on CUDA and gloo on the CPU. Without torchrun: a single process.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(device=dev)
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistContext(rank=dist.get_rank(), world_size=dist.get_world_size(), device=dev)


def teardown_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
