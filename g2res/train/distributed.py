"""Distributed training with ``torch.distributed`` as launched by ``torchrun``.

``torchrun --nproc-per-node N -m g2res cv-train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous in the environment. Every process calls
:func:`setup`; with one process (a plain ``g2res cv-train``) nothing is initialised and
every helper below is a no-op, so the single-process path is the same code.

Backends: ``nccl`` when the processes train on CUDA devices (one device per process,
``cuda:LOCAL_RANK``), ``gloo`` on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

__all__ = ["Dist", "setup", "teardown"]


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world_size`` (1: not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this module initialised the process group

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_gather(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of ``values`` (float64) over ranks."""
        if not self.enabled:
            return np.asarray(values, np.float64)
        t = torch.as_tensor(np.asarray(values, np.float64))
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return t.cpu().numpy()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def setup(device_name: str = "auto") -> tuple[Dist, torch.device]:
    """Join the ``torchrun`` job described by the environment (if any) and pick the device.

    Returns the :class:`Dist` of this process and its device: ``cuda:LOCAL_RANK`` when CUDA
    is used, else the CPU.
    """
    from g2res.utils import resolve_device

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), resolve_device(device_name)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA device(s): "
                "use --nproc-per-node <= the number of GPUs"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local, owns), device


def teardown(d: Dist) -> None:
    """Leave the process group if :func:`setup` created it."""
    if d.owns_group and dist.is_initialized():
        import gc

        # DDP reducers of finished folds hold the group and pending work: free them while
        # the group is alive, not in the interpreter's finalisation.
        gc.collect()
        dist.destroy_process_group()
