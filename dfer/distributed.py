"""Rank, world size and the few collectives dfer's stages need under `torchrun`; a plain process is rank 0 of 1.

- `dfer extract`: rank 0 creates the store while the others wait (`barrier`), every rank fills the clips of the
  store's shards `shard % world == rank` (`dfer.store.clip_store`), and rank 0 summarises once all have finished.
- `dfer train --fold all`: fold k trains on rank k % world, alone; `all_gather` hands every rank every fold's test
  metrics and `broadcast` rank 0's decisions, so all ranks take the same path through the protocol.
- `dfer finetune`: one model under DistributedDataParallel (`dfer.train.loop.fit`), each rank on `local_device`.

Extraction and stage 2 exchange only small Python objects, which gloo serves on CPU and GPU machines alike; only
stage 3 all-reduces gradients, on NCCL when it trains on CUDA (`backend_for`). Library functions read `ranks()`:
the group the command line joined with `init`, or rank 0 of 1 when there is none.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int
    local_rank: int  # this process's index on its machine: which GPU it drives
    local_world: int  # processes on this machine: they share its CPU cores

    @property
    def is_main(self) -> bool:
        return self.rank == 0


ALONE = Ranks(0, 1, 0, 1)


def backend_for(device: str) -> str:
    return "nccl" if device.startswith("cuda") else "gloo"


def init(backend: str = "gloo") -> Ranks:
    """Join the torchrun group when launched by torchrun (WORLD_SIZE > 1), else run alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        # Ranks finish their share at different times; a barrier must outwait the slowest one.
        dist.init_process_group(backend=backend, timeout=timedelta(days=7))
    return ranks()


def ranks() -> Ranks:
    if not dist.is_initialized():
        return ALONE
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                 int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def local_device(device: str) -> torch.device:
    """`device` for this process: plain "cuda" means this rank's own GPU (local rank r drives GPU r)."""
    if device != "cuda" or not torch.cuda.is_available():
        return torch.device(device)
    index = ranks().local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)  # NCCL's object collectives use the current device
    return torch.device("cuda", index)


def cpu_threads() -> int:
    """This rank's share of the machine's cores."""
    return max(1, (os.cpu_count() or 1) // ranks().local_world)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_gather(value) -> list:
    """Every rank's `value` (any picklable object), in rank order, on every rank."""
    if not dist.is_initialized():
        return [value]
    values = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return values


def broadcast(value):
    """Rank 0's `value` on every rank."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: nn.Module) -> None:
    """Rank 0's buffers (running statistics) into every rank's copy of `module`, as DDP does before each forward."""
    if dist.is_initialized():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
