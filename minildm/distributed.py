"""Data-parallel training on PyTorch's own engine (``torch.distributed``), for ``torchrun``.

``torchrun --nproc_per_node=N -m minildm train text2img ...`` starts N copies of the training
command. Each copy (a *rank*) holds the whole model; every step, all ranks seed the step's generator
the same way and draw the **whole global batch** (indices, timesteps, noise), then each keeps its
own contiguous part of it:

    rank r of W computes the loss on examples [r B/W, (r + 1) B/W) of the global batch B.

``DistributedDataParallel`` averages the gradients over the ranks during ``backward``; since every
part has B/W examples, the average of the parts' mean losses is the mean loss of the global batch,
so W processes take the step one process takes on the global batch (up to the order of float sums).
Only rank 0 writes checkpoints; ``--resume`` loads the same training state on every rank.

Gloo runs it on CPUs (the tests use two processes on loopback), NCCL on CUDA GPUs (one per rank).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """Where this process stands: its ``rank`` among ``size`` processes (1 without torchrun)."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes checkpoints and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, batch_size: int) -> slice:
        """This rank's contiguous part of a global batch of ``batch_size`` examples."""
        check_divides(batch_size, self.size)
        part = batch_size // self.size
        return slice(self.rank * part, (self.rank + 1) * part)


def check_divides(batch_size: int, world_size: int) -> None:
    """A global batch must split evenly over the ranks (else the gradients would be weighted
    unevenly and the run would not be the single-process one)."""
    if batch_size % world_size:
        raise ValueError(
            f"batch_size {batch_size} does not divide by the world size {world_size} "
            f"(torchrun --nproc_per_node): pick a batch size that is a multiple of {world_size}"
        )


def launched_by_torchrun() -> bool:
    """True inside a process that ``torchrun`` started (it sets ``WORLD_SIZE`` and ``RANK``)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def current_world() -> World:
    """This process's place in the process group (``World()`` when none is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size())


def init_distributed(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun set up (gloo on the CPU, NCCL on CUDA) and return this
    rank's world and device (``cuda:LOCAL_RANK`` on CUDA). Without torchrun: ``(World(), device)``."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return World(), device
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"rank with LOCAL_RANK={local_rank} has no GPU of its own ({torch.cuda.device_count()} "
                "visible): use --nproc_per_node <= the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ValueError(f"distributed training runs on 'cpu' (gloo) or 'cuda' (NCCL), not {device.type!r}")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return current_world(), device


def shutdown_distributed() -> None:
    """Leave the process group (at the end of a torchrun'd command)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()

