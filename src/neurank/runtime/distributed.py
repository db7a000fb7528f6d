"""Several processes, one training run: the thin layer between `torchrun` and the training loop and re-ranker.

    torchrun --nproc_per_node=2 -m neurank.cli train wikiqa --output-dir runs/wikiqa

`init_distributed()` reads what `torchrun` sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), joins the
process group (nccl on CUDA, gloo on CPU) and returns a `DistributedContext`; without those variables it returns
`SINGLE_PROCESS`, whose every helper is a pass-through, so the loop reads the same with one process or many.

What the helpers guarantee:
- Training (`shard_batches`): every rank draws the same global batches (they are a function of (seed, epoch), see
  `BucketBatchSampler`) and takes its own contiguous slice of each, so each step's union over ranks is exactly the
  batch one process would take, and every rank runs the same number of steps (DDP would hang otherwise).
  `train.batch_size` is the global batch. `global_batch_mean` rescales each rank's mean loss so that DDP's average
  of the ranks' gradients is the gradient of the mean over the whole global batch, even when it does not split
  evenly. A final global batch with fewer groups than ranks is dropped (at most world_size - 1 groups per epoch).
- Inference (`deal_batches` + `gather_dealt`): the length-sorted batches one process would score are dealt
  round-robin, whole, and the results put back in their original order, so every score is computed on exactly
  the batch (same rows, same padding) that a single process uses: the run is identical, not merely close.
- `wrap` puts the model in DistributedDataParallel (whose construction copies rank 0's weights to every rank);
  checkpoints still hold the unwrapped module (`training.checkpoint.unwrap`).

Sparse embedding gradients (`embeddings.sparse: true`) work with gloo, whose all-reduce accepts sparse tensors;
PyTorch's nccl backend has no sparse all-reduce (pytorch/pytorch#22400), so under nccl `wrap` refuses them and
names the fix: dense gradients (`embeddings.sparse=false`), which DDP all-reduces with the other parameters.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

BACKENDS = ("auto", "gloo", "nccl")


class EpochBatches(Protocol):
    """What `shard_batches` slices: batches of indices, drawn anew for each epoch (`BucketBatchSampler`)."""

    def __iter__(self) -> Iterator[list[int]]: ...

    def set_epoch(self, epoch: int) -> None: ...


class SizedBatches(Protocol):
    """What `deal_batches` deals: batches of indices in a fixed order, and how many there are."""

    def __iter__(self) -> Iterator[list[int]]: ...

    def __len__(self) -> int: ...


class DistributedError(RuntimeError):
    """The launch environment or the ranks disagree in a way that would make training hang or go wrong."""


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands among the ranks, and the few collective steps training and re-ranking need.

    Attributes:
        rank: this process among all of them (0 writes files and prints).
        world_size: number of processes; 1 means no process group and no collectives.
        local_rank: this process on its machine (selects the GPU).
        backend: "gloo" or "nccl"; None for a single process.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether there are other processes to talk to."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, metrics and runs, and prints."""
        return self.rank == 0

    # -- placement ---------------------------------------------------------------------------------------------

    def place(self, device: torch.device) -> torch.device:
        """This rank's device: a CUDA device becomes `cuda:LOCAL_RANK` when distributed, anything else is kept."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` (already on this rank's device) in DistributedDataParallel; as is for a single process.

        Raises:
            DistributedError: sparse embedding gradients under nccl (see the module docstring).
        """
        if not self.enabled:
            return model
        sparse = [m for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse and m.weight.requires_grad]
        if sparse and self.backend == "nccl":
            raise DistributedError(
                "embeddings.sparse=true cannot train under the nccl backend: PyTorch has no NCCL all-reduce for sparse "
                "gradients. Use embeddings.sparse=false (dense gradients, all-reduced with the other parameters), or "
                "run on CPUs with gloo, which all-reduces sparse gradients"
            )
        device = next(model.parameters()).device
        device_ids = [device.index] if device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    # -- batches -----------------------------------------------------------------------------------------------

    def shard_batches(self, sampler: EpochBatches) -> EpochBatches:
        """Training: each rank's contiguous slice of every global batch of `sampler` (see `ShardedBatchSampler`)."""
        return ShardedBatchSampler(sampler, self.rank, self.world_size) if self.enabled else sampler

    def deal_batches(self, sampler: SizedBatches) -> SizedBatches:
        """Inference: whole batches of `sampler`, dealt round-robin (batch i to rank i mod world_size)."""
        return DealtBatchSampler(sampler, self.rank, self.world_size) if self.enabled else sampler

    def gather_dealt(self, chunks: Sequence[Any]) -> list[Any]:
        """Every rank's per-batch results of `deal_batches`, back in the order of the undealt sampler (all ranks)."""
        if not self.enabled:
            return list(chunks)
        gathered: list[list[Any]] = [[] for _ in range(self.world_size)]
        dist.all_gather_object(gathered, list(chunks))
        return undeal(gathered)

    # -- reductions --------------------------------------------------------------------------------------------

    def global_batch_mean(self, loss: torch.Tensor, groups: int) -> torch.Tensor:
        """Rescale this rank's mean loss over its `groups` so that DDP's gradient average is the global-batch mean.

        DDP averages gradients over ranks: (1/W) sum_r grad(L_r). With L_r = mean_r * groups_r * W / N (N groups in
        the global batch) that average is grad(sum over all groups / N), the loss one process takes on the whole
        batch. For equal shards the factor is exactly 1. Every loss in `training.losses` is a mean over groups.
        """
        if not self.enabled:
            return loss
        total = torch.tensor([float(groups)], device=loss.device)
        dist.all_reduce(total)  # N, the groups of this step's global batch
        return loss * (groups * self.world_size / total)

    def mean(self, value: float) -> float:
        """The mean of `value` over ranks (every rank gets it)."""
        if not self.enabled:
            return value
        total = torch.tensor([float(value)], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(total)
        return float(total.item()) / self.world_size

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank (any picklable object)."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self._collective_device())
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def check_same(self, what: str, value: Any) -> None:
        """Raise on every rank when `value` (JSON-able) differs between ranks: training on different vocabularies or
        examples per rank would silently mix incompatible ids."""
        if not self.enabled:
            return
        digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
        digests: list[str] = [""] * self.world_size
        dist.all_gather_object(digests, digest)
        differing = [r for r, d in enumerate(digests) if d != digests[0]]
        if differing:
            raise DistributedError(
                f"{what} differ between ranks (rank 0 {digests[0]}, rank {differing[0]} {digests[differing[0]]}): "
                "every process must read the same data and configuration"
            )

    # -- randomness --------------------------------------------------------------------------------------------

    def seed_epoch(self, seed: int, epoch: int) -> None:
        """Seed torch (dropout) from (seed, epoch, rank) when distributed: ranks draw different dropout masks, and
        an epoch's masks depend on nothing else, so `--resume` continues exactly. A single process keeps the one
        random stream that its checkpoints save and restore."""
        if self.enabled:
            state = np.random.SeedSequence([seed, epoch, self.rank]).generate_state(1, dtype=np.uint64)[0]
            torch.manual_seed(int(state) & 0x7FFF_FFFF_FFFF_FFFF)

    # -- lifetime ----------------------------------------------------------------------------------------------

    def close(self, failed: bool = False) -> None:
        """Leave the process group.

        A rank that finished waits at a barrier first, so that no rank tears down its connections while a peer's
        last collective (the final broadcast of the results) is still in flight: gloo then aborted the process at
        exit now and then ("terminate called without an active exception") after the work was done. A rank that
        `failed` leaves at once: it must not make the others wait.
        """
        if self.enabled and dist.is_initialized():
            if not failed:
                dist.barrier()
            gc.collect()  # a DDP model left in a reference cycle lets go of the group now, not at interpreter exit
            dist.destroy_process_group()

    def end_process(self) -> None:
        """End this rank's process now, with exit status 0, skipping the interpreter's teardown: for a command
        whose work is done, saved and printed (the context closed).

        Even after the barrier and `destroy_process_group` in `close`, gloo's C++ threads now and then abort the
        process while Python tears down (SIGABRT, "terminate called without an active exception"; seen on
        rank 1 of a 2-process CPU `neurank train` in CI), and torchrun then reports the whole run as failed.
        Nothing is left to do at that point but flush the output, so a rank leaves with `os._exit`. A single
        process returns and exits as usual.
        """
        if not self.enabled:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    def __enter__(self) -> DistributedContext:
        return self

    def __exit__(self, exc_type, *exc_info) -> None:
        self.close(failed=exc_type is not None)

    def _collective_device(self) -> torch.device:
        # NCCL moves only CUDA tensors; gloo moves CPU tensors.
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


SINGLE_PROCESS = DistributedContext()


class ShardedBatchSampler(Sampler[list[int]]):
    """This rank's slice of every batch of `batch_sampler`: np.array_split of the batch into `world_size` parts.

    Slices are contiguous, so the length-sorted batches of `BucketBatchSampler` give each rank texts of similar
    lengths (little padding); their sizes differ by at most one. Every rank iterates the same batches (the wrapped
    sampler must yield the same batches on every rank, as a seeded one does), so every rank takes the same number
    of steps. A batch with fewer items than ranks is skipped on all of them: some rank would have nothing to
    compute, and DDP needs a backward pass from every rank.
    """

    def __init__(self, batch_sampler: EpochBatches, rank: int, world_size: int):
        batch_size = getattr(batch_sampler, "batch_size", None)
        if batch_size is not None and batch_size < world_size:
            raise ValueError(
                f"batch size {batch_size} is smaller than the {world_size} processes: the batch size is global "
                f"(split over processes), so it must be at least {world_size}"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.batch_sampler = batch_sampler
        self.rank = rank
        self.world_size = world_size

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)

    def __len__(self) -> int:
        lengths = getattr(self.batch_sampler, "lengths", None)
        batch_size = getattr(self.batch_sampler, "batch_size", None)
        if lengths is None or batch_size is None:
            return sum(1 for _ in self._global_batches())
        full, rest = divmod(len(lengths), batch_size)
        keep_rest = rest >= self.world_size and not getattr(self.batch_sampler, "drop_last", False)
        return full + int(keep_rest)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self._global_batches():
            yield np.array_split(np.asarray(batch), self.world_size)[self.rank].tolist()

    def _global_batches(self) -> Iterator[list[int]]:
        return (batch for batch in self.batch_sampler if len(batch) >= self.world_size)


class DealtBatchSampler(Sampler[list[int]]):
    """Batches `rank`, `rank + world_size`, `rank + 2 * world_size`, ... of `batch_sampler`, unchanged."""

    def __init__(self, batch_sampler: SizedBatches, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} out of range for world size {world_size}")
        self.batch_sampler = batch_sampler
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return len(range(self.rank, len(self.batch_sampler), self.world_size))

    def __iter__(self) -> Iterator[list[int]]:
        for position, batch in enumerate(self.batch_sampler):
            if position % self.world_size == self.rank:
                yield batch


def undeal(parts: Sequence[Sequence[Any]]) -> list[Any]:
    """Inverse of dealing round-robin: `parts[r]` holds items r, r + W, r + 2W, ...; returns items 0, 1, 2, ..."""
    world_size = len(parts)
    total = sum(len(part) for part in parts)
    return [parts[i % world_size][i // world_size] for i in range(total)]


def init_distributed(
    device: str | torch.device = "auto",
    backend: str = "auto",
    timeout: timedelta | None = None,
) -> DistributedContext:
    """Join the process group `torchrun` describes in the environment, or return `SINGLE_PROCESS`.

    Args:
        device: the device training or scoring will use ("auto", "cuda", "cpu", ...); picks the backend.
        backend: "gloo", "nccl", or "auto" (nccl for CUDA, gloo otherwise).
        timeout: how long a collective may wait for the other ranks (torch's default when None).

    Raises:
        DistributedError: a variable torchrun sets is missing or malformed, the backend cannot serve the device,
            or LOCAL_RANK names a GPU that does not exist.
    """
    from neurank.runtime.device import select_device

    environ = os.environ
    if backend not in BACKENDS:
        raise DistributedError(f"unknown distributed backend {backend!r}; valid: {', '.join(BACKENDS)}")
    world_size = _env_int(environ, "WORLD_SIZE", default=1)
    if world_size < 1:
        raise DistributedError(f"WORLD_SIZE must be >= 1, got {world_size}")
    if world_size == 1:
        return SINGLE_PROCESS
    rank = _env_int(environ, "RANK")
    local_rank = _env_int(environ, "LOCAL_RANK", default=rank)
    if not 0 <= rank < world_size:
        raise DistributedError(f"RANK={rank} is out of range for WORLD_SIZE={world_size}")
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if not environ.get(name):
            raise DistributedError(
                f"WORLD_SIZE={world_size} but {name} is not set: launch with torchrun (see README, 'Scaling out')"
            )

    device = select_device(device) if isinstance(device, str) else device
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl":
        if device.type != "cuda":
            raise DistributedError(f"the nccl backend needs CUDA devices, but the device is {device}; use gloo on CPUs")
        if not dist.is_nccl_available():
            raise DistributedError("this PyTorch build has no NCCL; use the gloo backend")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise DistributedError(
                f"LOCAL_RANK={local_rank} but this machine has {torch.cuda.device_count()} CUDA device(s): "
                "start at most one process per GPU (--nproc_per_node)"
            )
        torch.cuda.set_device(local_rank)  # before the group forms, so NCCL and object collectives use this GPU
    options: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size, **options)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, backend=backend)


def require_single_process(command: str) -> None:
    """Raise when started by torchrun with several processes: for commands that would run N copies of one job,
    each writing the same files."""
    if _env_int(os.environ, "WORLD_SIZE", default=1) > 1:
        raise DistributedError(
            f"`neurank {command}` runs in one process; start it without torchrun "
            "(`neurank train` and `neurank rerank` are the commands that run distributed)"
        )


def _env_int(environ: Mapping[str, str], name: str, default: int | None = None) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        if default is None:
            raise DistributedError(f"{name} is not set: launch with torchrun (see README, 'Scaling out')")
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistributedError(f"{name} must be an integer, got {raw!r}") from None
