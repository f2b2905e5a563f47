"""Data-parallel training with PyTorch's own engine (torch.distributed + DDP).

The same ``cervseg train`` command runs under ``torchrun --nproc-per-node N``: torchrun
sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT, we join the process group
(gloo on CPU, nccl on GPUs), every rank trains on its shard of each epoch's shuffled
slices, DDP averages the gradients, validation sums are all-reduced, and only rank 0
writes checkpoints and logs. The global batch (config ``batch_size``) is split across the
ranks so that N processes take the same optimiser steps as one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: str = "cpu") -> DistContext:
    """Join the process group described by torchrun's environment; a no-op for one process."""
    world = env_world_size()
    if world <= 1:
        return DistContext()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
        log.info("rank %d of %d joined the %s process group", dist.get_rank(), world, backend)
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over ranks (in place, returned for convenience)."""
    if ctx.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def wrap_model(model: nn.Module, ctx: DistContext, device: torch.device) -> nn.Module:
    """DDP-wrapped model when distributed (parameters broadcast from rank 0), else the model."""
    if not ctx.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def shard(n: int, ctx: DistContext) -> list[int]:
    """This rank's share of n items (rank, rank + N, ...), no padding: sums over ranks stay exact."""
    return list(range(ctx.rank, n, ctx.world_size))


def local_batch_size(batch_size: int, ctx: DistContext) -> int:
    """Per-process batch so that the global batch stays ``batch_size``."""
    from cervseg.errors import ConfigError

    if batch_size % ctx.world_size:
        raise ConfigError(
            f"batch_size {batch_size} is not divisible by the {ctx.world_size} processes; "
            "choose a multiple of --nproc-per-node"
        )
    return batch_size // ctx.world_size
