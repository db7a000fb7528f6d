"""Training and re-ranking on 2 CPU processes (torchrun, gloo on 127.0.0.1) against one process.

The 2-process side runs once per module (distributed_worker.py: starting Python and torch is most of the cost),
and each test checks one claim against a single-process reference computed here:
- after one step every rank holds identical weights (dense and sparse embedding gradients), and the all-reduced
  gradient is the gradient one process takes on the same global batch, although the batch splits unevenly (3 + 2);
- 2-process training ends with the same dev metric as 1-process training on the same global batches;
- `--resume` after a kill on every rank ends with the weights of the uninterrupted 2-process run;
- 2-process re-ranking gives exactly the single-process run;
- the command line under torchrun writes the same run file as without it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
import yaml

import neurank
from neurank.cli import main as cli_main
from neurank.collections import load_collection
from neurank.collections.trec import read_run, write_run
from neurank.config import config_from_dict
from neurank.data.collate import collate
from neurank.data.prepare import prepare_data
from neurank.data.sampler import BucketBatchSampler
from neurank.inference.checkpoint import load_checkpoint
from neurank.inference.reranker import Reranker
from neurank.training import train
from neurank.training.loop import make_model, training_dataset
from neurank.training.losses import ranking_loss

# Two torchrun launches of two processes each: about 45 s of the suite.
pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("distributed_worker.py")
TIMEOUT = 900  # seconds for one torchrun launch; on a busy 2-core machine a launch takes about 30 s

ENTITIES = [
    ("glacier", "alaska"),
    ("volcano", "iceland"),
    ("desert", "namibia"),
    ("canyon", "arizona"),
    ("reef", "belize"),
    ("fjord", "norway"),
    ("geyser", "wyoming"),
    ("lagoon", "venice"),
    ("delta", "egypt"),
    ("atoll", "maldives"),
    ("tundra", "siberia"),
    ("savanna", "kenya"),
    ("marsh", "florida"),
    ("plateau", "tibet"),
    ("crater", "hawaii"),
    ("steppe", "mongolia"),
    ("rainforest", "brazil"),
    ("archipelago", "greece"),
    ("peninsula", "korea"),
    ("estuary", "scotland"),
    ("oasis", "morocco"),
]


def questions(entities):
    """Each question asks where an entity is; its answer names the entity, three distractors name others."""
    rows = []
    for i, (entity, place) in enumerate(entities):
        others = [entities[(i + k) % len(entities)] for k in (1, 2, 3)]
        sentences = [f"the {entity} lies in {place}"] + [f"the {e} lies in {p}" for e, p in others]
        rows.append((f"where is the {entity}", sentences))
    return rows


def write_split(path, rows, start):
    lines = ["QuestionID\tQuestion\tDocumentID\tDocumentTitle\tSentenceID\tSentence\tLabel"]
    for q, (question, sentences) in enumerate(rows, start=start):
        for s, sentence in enumerate(sentences):
            lines.append(f"Q{q}\t{question}\tD{q}\tTitle {q}\tD{q}-{s}\t{sentence}\t{int(s == 0)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    """11 training questions: with a global batch of 4 the epoch is 4 + 4 + 3 groups, so one step splits 2 + 1."""
    root = tmp_path_factory.mktemp("distributed")
    folder = root / "data" / "wikiqa"
    folder.mkdir(parents=True)
    rows = questions(ENTITIES)
    write_split(folder / "WikiQA-train.tsv", rows[:11], 0)
    write_split(folder / "WikiQA-dev.tsv", rows[11:16], 100)
    write_split(folder / "WikiQA-test.tsv", rows[16:], 200)
    config = {
        "model": "match_pyramid",
        # No dropout: with it, ranks draw other masks than one process does, and only the float order should differ.
        "model_config": {
            "conv_channels": [4],
            "kernel_sizes": [[3, 3]],
            "pool_size": [2, 4],
            "interactions": ["cosine", "exact"],
            "dropout": 0.0,
        },
        "data": {"collection": "wikiqa", "data_dir": str(root / "data"), "max_doc_len": 20},
        "embeddings": {"source": "random", "dim": 8},
        "train": {
            "loss": "softmax",
            "negatives": 2,
            "batch_size": 4,
            "epochs": 3,
            "lr": 0.01,
            "patience": 5,
            "seed": 7,
            "device": "cpu",
        },
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def torchrun(*args: str, processes: int = 2) -> subprocess.CompletedProcess:
    """`torchrun --nproc-per-node=processes ARGS` on this machine: gloo over loopback, a free port, a time limit."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # The children import the neurank this test imported (a checkout's src/ or the installed one).
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(neurank.__file__).parents[1]), env.get("PYTHONPATH")]))
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        f"--nproc-per-node={processes}",
        # c10d rendezvous on port 0: the launcher takes a free port itself, so parallel test runs never collide.
        "--rdzv-backend=c10d",
        "--rdzv-endpoint=127.0.0.1:0",
        f"--rdzv-id={uuid.uuid4()}",
        *args,
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # the launcher and its workers
        output, _ = process.communicate()
        pytest.fail(f"torchrun did not finish within {TIMEOUT} s:\n{output[-4000:]}")
    assert process.returncode == 0, f"torchrun {' '.join(args)} failed:\n{output[-6000:]}"
    return subprocess.CompletedProcess(command, process.returncode, output)


@pytest.fixture(scope="module")
def ranks(config_path, tmp_path_factory):
    """The folder where the two ranks of distributed_worker.py left their results."""
    out = tmp_path_factory.mktemp("ranks")
    torchrun(str(WORKER), str(config_path), str(out))
    return out


@pytest.fixture(scope="module")
def config(config_path):
    return config_from_dict(yaml.safe_load(config_path.read_text()))


@pytest.fixture(scope="module")
def data(config):
    return prepare_data(config)


def single_process_step(config, data, groups: int, world_size: int) -> dict[str, torch.Tensor]:
    """The gradients one process takes on the global batch that the ranks' first step splits."""
    torch.manual_seed(config.train.seed)
    model = make_model(config, len(data.vocab), data.embeddings)
    dataset = training_dataset(config, data.train_examples)
    sampler = BucketBatchSampler(dataset.lengths, groups, shuffle=True, seed=config.train.seed)
    indices = next(b for b in sampler if len(b) >= world_size)  # ranks skip a batch too small to split
    batch = collate([dataset[i] for i in indices])
    logits = model(batch.query_ids, batch.doc_ids, batch.query_mask, batch.doc_mask, batch.first_stage_score)
    ranking_loss(config.train.loss, logits, batch.labels, batch.group_size).backward()
    return {name: p.grad.to_dense() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("embeddings", ["dense", "sparse"])
def test_after_one_step_every_rank_holds_the_same_weights(ranks, config, data, embeddings):
    import dataclasses

    step = torch.load(ranks / "step.pt", weights_only=True)[embeddings]
    rank0, rank1 = step["weights"]
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    assert step["local_groups"] == 3  # rank 0's part of a 5-group batch: the split is uneven, 3 + 2

    # The all-reduced gradient is that of the whole global batch. Not bitwise: DDP averages two per-rank means
    # where one process sums all rows at once, so float additions happen in another order (relative error ~1e-7).
    variant = dataclasses.replace(
        config, embeddings=dataclasses.replace(config.embeddings, sparse=embeddings == "sparse")
    )
    reference = single_process_step(variant, data, groups=5, world_size=2)
    assert step["grads"].keys() == reference.keys()
    for name, grad in reference.items():
        torch.testing.assert_close(step["grads"][name], grad, rtol=1e-5, atol=1e-7, msg=name)
    # The optimizer moved the weights away from the initialisation (a step that changed nothing proves nothing).
    torch.manual_seed(config.train.seed)
    initial = make_model(variant, len(data.vocab), data.embeddings).state_dict()
    assert any(not torch.equal(initial[name], rank0[name]) for name in initial)


def test_two_processes_reach_the_dev_metric_of_one_on_the_same_global_batches(ranks, config, data, tmp_path):
    single = train(config, tmp_path / "single", progress=False, data=data)
    records = [json.loads(line) for line in (ranks / "train" / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [r["step"] for r in expected] == [3, 6, 9]  # the same steps: 4 + 4 + 3
    assert single["best_metric"] > 0.5  # it learned something
    # Tolerance. The two runs see the same global batches from the same initialisation; their gradients differ
    # only in float summation order (~1e-7 relative, the test above). AdamW's first updates are about
    # lr * sign(gradient) per weight, so a weight whose true gradient is ~0 (score.bias under the softmax loss, a
    # conv bias whose contributions cancel) moves by up to +-lr in either run depending on the sign of that noise:
    # after 9 steps weights differ by up to ~1e-2, and the training loss by ~1e-3 relative (rel=1e-2 below).
    # Dev AP is a function of the rankings alone, and those differences stay far below the score margins between
    # this collection's candidates, so the rankings, hence AP at every epoch, are the same: abs=1e-9.
    for got, want in zip(records, expected, strict=True):
        assert got["dev_AP"] == pytest.approx(want["dev_AP"], abs=1e-9)
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-2)
    distributed = load_checkpoint(ranks / "train" / "last.pt")
    assert not any(k.startswith(("module.", "_orig_mod.")) for k in distributed["state_dict"])  # the unwrapped model
    assert distributed["world_size"] == 2 and distributed["step"] == 9


def test_resume_after_a_kill_on_every_rank_ends_with_the_uninterrupted_weights(ranks):
    straight = load_checkpoint(ranks / "straight" / "last.pt")["state_dict"]
    resumed = load_checkpoint(ranks / "killed" / "last.pt")["state_dict"]
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    lines = (ranks / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_two_process_reranking_gives_the_single_process_run(ranks, config, tmp_path):
    reranker = Reranker.from_checkpoint(ranks / "train" / "best.pt", device="cpu")
    single = reranker.rerank_collection(load_collection("wikiqa", config.data.data_dir), "test")
    write_run(single, tmp_path / "single.run", tag="distributed")
    assert len(read_run(ranks / "rerank.run")) == len(single) == 5 * 4
    # Byte for byte (scores are written in full, `repr`): each batch is scored whole, with the same rows and
    # padding as in one process, on one of the ranks, and the results are put back in the same order.
    assert (ranks / "rerank.run").read_bytes() == (tmp_path / "single.run").read_bytes()


def test_command_line_under_torchrun_trains_and_writes_the_single_process_run(
    ranks, config_path, config, tmp_path, capsys
):
    run_dir = tmp_path / "cli"
    torchrun("-m", "neurank.cli", "train", str(config_path), "train.epochs=1", "--output-dir", str(run_dir), "--json")
    checkpoint = load_checkpoint(run_dir / "best.pt")
    assert checkpoint["world_size"] == 2 and checkpoint["epoch"] == 1
    common = ["wikiqa", "--split", "test", "--device", "cpu", "--data-dir", config.data.data_dir]
    torchrun(
        "-m", "neurank.cli", "rerank", str(ranks / "train" / "best.pt"), *common, "--output", str(tmp_path / "two.run")
    )
    try:
        cli_main(["rerank", str(ranks / "train" / "best.pt"), *common, "--output", str(tmp_path / "one.run")])
    except SystemExit as exit_:
        assert not exit_.code
    capsys.readouterr()
    assert (tmp_path / "two.run").read_bytes() == (tmp_path / "one.run").read_bytes()
