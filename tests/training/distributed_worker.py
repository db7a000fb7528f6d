"""One rank of the multi-process tests in test_distributed_training.py, started by torchrun (gloo on 127.0.0.1).

    python -m torch.distributed.run --nproc_per_node=2 ... distributed_worker.py CONFIG OUT

Every rank runs the same scenarios in one process group (one launch: starting Python and torch is the slow part);
rank 0 writes what the test process then checks against single-process references:
- OUT/step.pt: after one optimisation step on an uneven global batch (3 + 2 groups), every rank's weights, and
  rank 0's all-reduced gradients; with dense and with sparse embedding gradients.
- OUT/train: `train()` on 2 ranks (best.pt, last.pt, metrics.jsonl).
- OUT/straight: `train()` with dropout 0.3; OUT/killed: the same, killed after its first epoch on every rank,
  then resumed with `resume=True`.
- OUT/rerank.run: the test split re-ranked on 2 ranks with OUT/train/best.pt.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from neurank.collections import load_collection
from neurank.collections.trec import write_run
from neurank.config import load_config
from neurank.data.collate import collate
from neurank.data.prepare import prepare_data
from neurank.data.sampler import BucketBatchSampler
from neurank.inference.reranker import Reranker
from neurank.runtime.distributed import init_distributed
from neurank.training import train
from neurank.training.loop import make_model, training_dataset
from neurank.training.losses import ranking_loss


class Killed(Exception):
    pass


def one_step(config, data, context, groups: int) -> dict:
    """One DDP step on the first global batch of `groups` groups, as the training loop takes it."""
    torch.manual_seed(config.train.seed)
    model = context.wrap(make_model(config, len(data.vocab), data.embeddings))
    dataset = training_dataset(config, data.train_examples)
    sampler = context.shard_batches(BucketBatchSampler(dataset.lengths, groups, shuffle=True, seed=config.train.seed))
    batch = next(iter(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)))
    logits = model(batch.query_ids, batch.doc_ids, batch.query_mask, batch.doc_mask, batch.first_stage_score)
    loss = context.global_batch_mean(
        ranking_loss(config.train.loss, logits, batch.labels, batch.group_size), len(batch) // batch.group_size
    )
    loss.backward()
    plain = model.module
    grads = {name: p.grad.to_dense().clone() for name, p in plain.named_parameters() if p.grad is not None}
    sparse = [p for m in plain.modules() if isinstance(m, torch.nn.Embedding) and m.sparse for p in m.parameters()]
    dense = [p for p in plain.parameters() if all(p is not s for s in sparse)]
    torch.optim.AdamW(dense, lr=0.01).step()
    if sparse:
        torch.optim.SparseAdam(sparse, lr=0.01).step()
    weights = [None] * context.world_size
    torch.distributed.all_gather_object(weights, {k: v.clone() for k, v in plain.state_dict().items()})
    return {"weights": weights, "grads": grads, "local_groups": len(batch) // batch.group_size}


def main(config_path: str, out: str) -> None:
    out = Path(out)
    config = load_config(config_path)
    with init_distributed("cpu") as context:
        assert context.world_size == 2 and context.backend == "gloo", context
        data = prepare_data(config)

        steps = {}
        for name, sparse in (("dense", False), ("sparse", True)):
            variant = dataclasses.replace(config, embeddings=dataclasses.replace(config.embeddings, sparse=sparse))
            steps[name] = one_step(variant, data, context, groups=5)
        if context.is_main:
            torch.save(steps, out / "step.pt")

        train(config, out / "train", progress=False, data=data, distributed=context)

        def kill_after_first_epoch(epoch, record):
            if epoch == 0:
                raise Killed

        # With dropout, so that resuming must also restore what each rank draws.
        dropout = dataclasses.replace(config, model_config={**config.model_config, "dropout": 0.3})
        train(dropout, out / "straight", progress=False, data=data, distributed=context)
        try:
            train(
                dropout,
                out / "killed",
                progress=False,
                data=data,
                distributed=context,
                on_epoch_end=kill_after_first_epoch,
            )
        except Killed:
            pass
        train(dropout, out / "killed", progress=False, data=data, distributed=context, resume=True)

        reranker = Reranker.from_checkpoint(out / "train" / "best.pt", device="cpu", distributed=context)
        collection = load_collection("wikiqa", config.data.data_dir)
        run = reranker.rerank_collection(collection, "test")
        if context.is_main:
            write_run(run, out / "rerank.run", tag="distributed")
    context.end_process()  # as the commands do: no interpreter teardown, where gloo now and then aborts


if __name__ == "__main__":
    main(*sys.argv[1:])
