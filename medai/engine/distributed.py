"""DistributedDataParallel support: the Trainer runs unchanged under ``torchrun``.

``torchrun --nproc_per_node 2 -m medai train ...`` sets RANK/WORLD_SIZE; medai then initialises a process
group (gloo on CPU, nccl on GPU), shards every epoch's batches across ranks and lets rank 0 write results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context_from_environment() -> DistributedContext:
    """Read torchrun's variables; a plain ``python`` run is a world of one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistributedContext()
    return DistributedContext(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size)


def init_distributed(device: torch.device) -> DistributedContext:
    """Initialise the default process group once when launched by torchrun; no-op otherwise."""
    context = context_from_environment()
    if context.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=context.rank, world_size=context.world_size)
    return context


def barrier(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.barrier()
