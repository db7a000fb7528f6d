"""neurank.runtime.distributed without a process group: batch sharding and dealing, the launch checks, and the
single-process context that leaves everything as it was. The multi-process tests are in
tests/training/test_distributed_training.py."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neurank.data.sampler import BucketBatchSampler
from neurank.runtime.distributed import (
    SINGLE_PROCESS,
    DealtBatchSampler,
    DistributedContext,
    DistributedError,
    ShardedBatchSampler,
    init_distributed,
    undeal,
)

LENGTHS = [3, 9, 4, 1, 7, 7, 2, 8, 5, 6, 3, 2, 9]  # 13 items


@pytest.mark.parametrize("batch_size, world_size", [(4, 2), (5, 2), (6, 3), (4, 4), (13, 2)])
def test_each_step_the_ranks_split_exactly_the_global_batch(batch_size, world_size):
    base = BucketBatchSampler(LENGTHS, batch_size, shuffle=True, seed=3)
    base.set_epoch(2)
    global_batches = [b for b in base if len(b) >= world_size]
    shards = []
    for rank in range(world_size):
        sampler = ShardedBatchSampler(BucketBatchSampler(LENGTHS, batch_size, shuffle=True, seed=3), rank, world_size)
        sampler.set_epoch(2)
        shards.append(list(sampler))
        assert len(sampler) == len(shards[-1]) == len(global_batches)  # every rank takes the same number of steps
    for step, batch in enumerate(global_batches):
        parts = [shard[step] for shard in shards]
        assert [i for part in parts for i in part] == batch  # contiguous slices, in order
        assert max(map(len, parts)) - min(map(len, parts)) <= 1 and min(map(len, parts)) >= 1


def test_a_final_batch_smaller_than_the_ranks_is_dropped_on_every_rank():
    # 13 items in batches of 4: 4, 4, 4 and a last batch of 1, which 2 ranks cannot share.
    samplers = [ShardedBatchSampler(BucketBatchSampler(LENGTHS, 4, seed=0), rank, 2) for rank in range(2)]
    assert [len(s) for s in samplers] == [3, 3]
    assert sorted(i for s in samplers for batch in s for i in batch) == sorted(
        i for batch in BucketBatchSampler(LENGTHS, 4, seed=0) if len(batch) > 1 for i in batch
    )


def test_the_global_batch_must_cover_every_rank():
    with pytest.raises(ValueError, match="batch size 2 is smaller than the 3 processes"):
        ShardedBatchSampler(BucketBatchSampler(LENGTHS, 2), 0, 3)
    with pytest.raises(ValueError, match="rank 2 out of range"):
        ShardedBatchSampler(BucketBatchSampler(LENGTHS, 4), 2, 2)


@pytest.mark.parametrize("world_size", [2, 3, 5])
def test_dealt_batches_go_back_in_the_single_process_order(world_size):
    base = BucketBatchSampler(LENGTHS, 3, shuffle=False)
    dealt = [list(DealtBatchSampler(base, rank, world_size)) for rank in range(world_size)]
    assert [len(DealtBatchSampler(base, rank, world_size)) for rank in range(world_size)] == [len(d) for d in dealt]
    assert all(batch in list(base) for part in dealt for batch in part)  # whole batches, never re-cut
    assert undeal(dealt) == list(base)


def test_single_process_changes_nothing():
    model = nn.Linear(2, 1)
    sampler = BucketBatchSampler(LENGTHS, 4)
    loss = torch.tensor(1.5)
    assert not SINGLE_PROCESS.enabled and SINGLE_PROCESS.is_main
    assert SINGLE_PROCESS.wrap(model) is model
    assert SINGLE_PROCESS.shard_batches(sampler) is sampler and SINGLE_PROCESS.deal_batches(sampler) is sampler
    assert SINGLE_PROCESS.global_batch_mean(loss, 3) is loss
    assert SINGLE_PROCESS.mean(2.5) == 2.5 and SINGLE_PROCESS.broadcast({"a": 1}) == {"a": 1}
    assert SINGLE_PROCESS.gather_dealt([[1], [2]]) == [[1], [2]]
    assert SINGLE_PROCESS.place(torch.device("cuda")) == torch.device("cuda")  # no rank to pick a GPU for
    state = torch.get_rng_state()
    SINGLE_PROCESS.seed_epoch(7, 3)  # one process keeps its single random stream (checkpoints restore it)
    assert torch.equal(state, torch.get_rng_state())


def test_each_rank_gets_its_own_gpu_and_its_own_dropout_stream():
    assert DistributedContext(rank=3, world_size=4, local_rank=1, backend="nccl").place(
        torch.device("cuda")
    ) == torch.device("cuda", 1)
    assert DistributedContext(rank=1, world_size=2, local_rank=1, backend="gloo").place(
        torch.device("cpu")
    ) == torch.device("cpu")
    draws = []
    for rank in (0, 1, 0):
        DistributedContext(rank=rank, world_size=2, backend="gloo").seed_epoch(7, 3)
        draws.append(torch.rand(4))
    assert torch.equal(draws[0], draws[2]) and not torch.equal(draws[0], draws[1])


def test_sparse_embedding_gradients_are_refused_under_nccl_with_the_fix():
    model = nn.Sequential(nn.Embedding(10, 4, sparse=True), nn.Linear(4, 1))
    with pytest.raises(DistributedError, match="embeddings.sparse=false"):
        DistributedContext(rank=0, world_size=2, backend="nccl").wrap(model)


@pytest.fixture
def torchrun_env(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_torchrun_it_is_one_process(torchrun_env):
    assert init_distributed("cpu") is SINGLE_PROCESS
    torchrun_env.setenv("WORLD_SIZE", "1")
    torchrun_env.setenv("RANK", "0")
    assert init_distributed("cpu") is SINGLE_PROCESS  # torchrun --nproc_per_node=1: no group needed


@pytest.mark.parametrize(
    "env, backend, device, message",
    [
        ({"WORLD_SIZE": "2"}, "auto", "cpu", "RANK is not set: launch with torchrun"),
        ({"WORLD_SIZE": "two"}, "auto", "cpu", "WORLD_SIZE must be an integer, got 'two'"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "auto", "cpu", "RANK=2 is out of range for WORLD_SIZE=2"),
        ({"WORLD_SIZE": "2", "RANK": "1"}, "auto", "cpu", "MASTER_ADDR is not set"),
        (
            {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"},
            "mpi",
            "cpu",
            "unknown distributed backend 'mpi'",
        ),
        (
            {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"},
            "nccl",
            "cpu",
            "nccl backend needs CUDA",
        ),
    ],
)
def test_a_broken_launch_is_named(torchrun_env, env, backend, device, message):
    for name, value in env.items():
        torchrun_env.setenv(name, value)
    with pytest.raises(DistributedError, match=message):
        init_distributed(device, backend=backend)


def test_commands_that_do_not_run_distributed_refuse_torchrun(torchrun_env, capsys):
    from neurank.cli import main

    torchrun_env.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit) as exit_:
        main(["experiment", "wikiqa", "--output-dir", "unused"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "`neurank experiment` runs in one process" in err


def test_a_rank_ends_its_process_with_its_output_flushed_and_a_single_process_goes_on():
    import subprocess
    import sys

    SINGLE_PROCESS.end_process()  # one process: returns, and this test goes on
    script = (
        "import sys\n"
        "from neurank.runtime.distributed import DistributedContext\n"
        "print('saved', end='')\n"
        "sys.stderr.write('progress')\n"
        "DistributedContext(rank=1, world_size=2).end_process()\n"
        "print('never printed')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "saved", "progress")
