"""Rank and world size under `torchrun`, and a barrier; a plain process is rank 0 of 1.

Extraction needs very little from torch.distributed: rank 0 creates the store while the others wait, every
rank fills the clips `index % world == rank`, and rank 0 summarises once all have finished. Gloo serves these
barriers on CPU and GPU machines alike, so no NCCL set-up is needed for a job that exchanges no tensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch.distributed as dist


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init() -> Ranks:
    """Join the torchrun group when launched by torchrun (WORLD_SIZE > 1), else run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ranks = Ranks(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))
    if world > 1 and not dist.is_initialized():
        # Ranks finish their share at different times; the final barrier must outwait the slowest one.
        dist.init_process_group(backend="gloo", timeout=timedelta(days=7))
    return ranks


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
