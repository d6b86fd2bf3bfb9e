"""One model trained by several processes: torchrun's environment, the process group, each process's share of a batch.

    torchrun --standalone --nproc_per_node=2 -m ddimlib.train --dataset digits --steps 50 --out runs/ddp.pt

`python -m ddimlib.train` started by torchrun (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT)
joins a process group: NCCL on CUDA, one GPU per process chosen by LOCAL_RANK; gloo on the CPU. The Trainer wraps
its model in DistributedDataParallel, whose backward pass averages the gradients across processes by all-reduce.

The batch size stays the global batch: every process draws the whole global batch (indices, t and noise) from the
same seeded stream and keeps its own contiguous share (World.shard), so N processes train on exactly the data, t and
noise that one process draws at the same batch size, and the averaged gradient is the gradient of the same loss.
Only the dropout masks differ (each process draws its own from its own stream), so a model with dropout trains the
same in distribution; one without dropout, the same to float32 rounding (tests/test_distributed.py).

Rank 0 alone writes the training state, the export and its sidecar, and evaluates; the others wait for its status
(World.finish) and exit with it. Reference: PyTorch, "Getting Started with Distributed Data Parallel" and the
torchrun documentation (https://pytorch.org/docs/stable/elastic/run.html).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# the wait of the other processes for rank 0's evaluation and writes after training, which can take hours on a CPU
FINISH_TIMEOUT = datetime.timedelta(days=2)


@dataclass(frozen=True)
class World:
    """The processes training one model: this one's rank among `size`, its GPU index on the node (local_rank) and
    the process group's backend ("nccl" or "gloo"; None for one process, which needs no group)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, writes files and evaluates."""
        return self.rank == 0

    def shard(self, batch_size: int) -> slice:
        """This process's share of a global batch of batch_size: rows [rank * b, (rank + 1) * b), b = batch_size /
        size."""
        if batch_size % self.size:
            raise ValueError(
                f"batch_size {batch_size} must divide evenly among the {self.size} processes: "
                f"it is the global batch, split {batch_size} / {self.size} per process; "
                f"choose a multiple of {self.size}"
            )
        share = batch_size // self.size
        return slice(self.rank * share, (self.rank + 1) * share)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The sum of `tensor` over the processes (all-reduce, in place); the tensor itself for one process."""
        if self.size > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def record(self, batch_size: int) -> dict:
        """What a run's record says of the processes it ran on."""
        return {"world_size": self.size, "backend": self.backend, "batch_per_process": batch_size // self.size}

    def finish(self, status: int) -> int:
        """Rank 0's exit status, on every process: rank 0 sends its own, the others wait for it (up to
        FINISH_TIMEOUT, the time rank 0 may spend evaluating). Then the process group is closed."""
        if self.size == 1:
            return status
        # a gloo group of its own, whose timeout allows for rank 0's evaluation; it also serves NCCL runs
        group = dist.new_group(backend="gloo", timeout=FINISH_TIMEOUT)
        message = torch.tensor([status], dtype=torch.int64)
        dist.broadcast(message, src=0, group=group)
        dist.destroy_process_group()
        return int(message.item())


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets its variables) with more than one
    process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: str | None = None) -> tuple[World, torch.device]:
    """Join the process group of a torchrun launch; return this process's World and its device.

    device: None (a GPU per process where CUDA is present, else the CPU), "cuda" or "cpu". The backend is NCCL for
    CUDA and gloo for the CPU; the rendezvous is torchrun's (MASTER_ADDR, MASTER_PORT)."""
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(
                f"environment variable {name} is not set: start the command with torchrun, e.g. "
                "torchrun --standalone --nproc_per_node=2 -m ddimlib.train ..."
            )
    rank, size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind not in ("cuda", "cpu"):
        raise ValueError(
            f"device must be 'cuda' or 'cpu' when training on several processes, got {device!r} "
            "(a GPU per process is chosen by LOCAL_RANK)"
        )
    if kind == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                "start at most that many processes per node"
            )
        where = torch.device("cuda", local_rank)
        torch.cuda.set_device(where)
    else:
        where = torch.device("cpu")
    backend = "nccl" if kind == "cuda" else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=size)
    return World(rank, size, local_rank, backend), where
