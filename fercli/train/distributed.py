"""Data-parallel training under torchrun: gloo on CPU, NCCL on GPUs; rank 0 logs and saves."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def local_part(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch (every rank draws the same global batch)."""
        return batch[self.rank :: self.world] if self.world > 1 else batch


def init_distributed(device_name: str) -> tuple[Distributed, str]:
    """Join the process group torchrun set up (WORLD_SIZE > 1); returns the device name to use."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed(), device_name
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("", "auto", "cuda")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        return Distributed(rank, world), f"cuda:{local_rank}"
    return Distributed(rank, world), "cpu" if device_name in ("", "auto") else device_name


def wrap_model(model: nn.Module, ddp: Distributed, device: torch.device) -> nn.Module:
    if ddp.world <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def broadcast(value, ddp: Distributed):
    """Rank 0's ``value`` on every rank (e.g. the run folder it created)."""
    if ddp.world <= 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(ddp: Distributed) -> None:
    if ddp.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
