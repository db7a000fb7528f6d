"""Inference speed of every ranker, side by side, measured in one run.

    python benchmarks/inference.py --data-dir ../shared/data [--quick] [--output benchmarks/results/inference.json]

Sections (each prints a Markdown table; everything also goes to the JSON file):
1. throughput: pairs/s of `neurank.inference.scorer.Scorer` per model at query length 10 and document lengths 100 and
   400, batch sizes 64/256/1024 (pre-tokenised ids in, scores out), with the model's FLOPs per pair
   (`flops_per_pair`), the achieved GFLOP/s, and that as a fraction of the fp32 matmul rate measured in this process
   just before the model's rows; peak resident memory of each run. A row "plain MatchPyramid" runs the textbook
   forward (activation then re-mask after every convolution, default layout, whole batch at once) on the same inputs.
2. latency: `Reranker.rerank` of one NFCorpus test query (text in, ranked run out; texts pre-tokenised by an earlier
   pass) with its BM25 top 100 and top 1000, documents cut at 200 tokens: p50 / p95 per model; then, interleaved
   query by query, the same with and without the similarity table per distinct token (the models that use it);
   then the cell budget (`max_cells`): per model, the throughput of re-ranking every candidate of 20 queries in one
   call at budgets 2^12 to 2^18 against 2^16 (the evidence for each model's `cpu_max_cells`), and the CNN's
   one-query latency at 2^16, 2^17 and 2^18.
3. the straightforward reference: a MatchPyramid re-ranker written as tutorials and older toolkits write one
   (every text tokenised on each call and padded to the fixed maximum lengths, a Python loop scoring one candidate
   at a time), with the same weights, interleaved query by query with neurank on the same NFCorpus queries: the
   throughput ratio, and a check that both rank every query's candidates identically.
4. what each optimisation buys on that CNN re-ranking workload, interleaved: length bucketing, the cell budget,
   `inference_mode`, cached ids, the fast forward; then the options that change numerics (bf16, int8) per model
   with their rank correlation to fp32, `torch.compile`, onnxruntime per model, and two process settings (worker
   processes with and without each, interleaved): glibc's malloc thresholds and OpenMP's wait policy.

Weights are random (speed does not depend on them; rankings are compared between implementations of the same
weights). The models are configured as in neurank/configs/benchmark.yaml, with the first-stage score as a feature
(as the WikiQA and NFCorpus configs train them); MatchPyramid as neurank/configs/wikiqa.yaml.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import speedlib  # noqa: E402
from neurank.collections import load_collection  # noqa: E402
from neurank.config import resolve_config  # noqa: E402
from neurank.data.examples import normalise_scores  # noqa: E402
from neurank.data.prepare import collection_texts  # noqa: E402
from neurank.inference.reranker import Reranker  # noqa: E402
from neurank.inference.scorer import CPU_MAX_CELLS, InferenceOptions, Scorer, cpu_cell_budget, pad_ids, plan_batches  # noqa: E402
from neurank.models import build_model  # noqa: E402
from neurank.retrieval import bm25_run  # noqa: E402
from neurank.runtime.allocator import tune_malloc  # noqa: E402
from neurank.text import PAD_ID, UNK_ID, Tokenizer, Vocab, WordEncoder  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
QUERY_LEN = 10
CNN = "match_pyramid"
MAX_QUERY_LEN, MAX_DOC_LEN = 20, 200


# ---------------------------------------------------------------------------------------------------------------
# Models and inputs


def model_configs() -> dict[str, dict]:
    """Each benchmarked model's options: the shipped benchmark config's, MatchPyramid's from the wikiqa config's."""
    plan = yaml.safe_load(resolve_config("benchmark").read_text(encoding="utf-8"))
    wikiqa = yaml.safe_load(resolve_config("wikiqa").read_text(encoding="utf-8"))
    configs = {name: {**(options or {}), "use_first_stage_score": True} for name, options in plan["models"].items()}
    configs[CNN] = {**wikiqa["model_config"], "use_first_stage_score": True}
    return configs


def make_model(name: str, vocab_size: int, configs: dict[str, dict]) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, vocab_size, configs[name]).eval()


def synthetic_pairs(n: int, query_len: int, doc_len: int, vocab_size: int, seed: int = 0):
    """n pairs of exactly these lengths (id lists) whose documents repeat a few query tokens, and scores."""
    rng = np.random.default_rng(seed)
    queries = rng.integers(2, vocab_size, (n, query_len))
    docs = rng.integers(2, vocab_size, (n, doc_len))
    docs[:, 5:8] = queries[:, :3]
    return [q.tolist() for q in queries], [d.tolist() for d in docs], rng.random(n).astype(np.float32)


class NFCorpusWorkload:
    """NFCorpus test queries with their BM25 top 1000, texts and the neural tokenizer/vocabulary."""

    def __init__(self, data_dir: str, n_queries: int):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.collection = load_collection("nfcorpus", data_dir)
            run = bm25_run(self.collection, "test", k=1000)
        self.tokenizer = Tokenizer()
        self.vocab = Vocab.build(self.tokenizer.tokenize_batch(collection_texts(self.collection)))
        by_query: dict[str, list] = {}
        for entry in run:
            by_query.setdefault(entry.query_id, []).append(entry)
        queries = self.collection.split("test").queries
        # Queries with a full top 1000, in the split's order.
        chosen = [q for q in queries if len(by_query.get(q, [])) >= 1000][:n_queries]
        self.queries = {q: queries[q] for q in chosen}
        self.runs = {q: sorted(by_query[q], key=lambda r: -r.score) for q in chosen}
        self.docs = self.collection.docs

    def run_for(self, query_id: str, depth: int):
        return self.runs[query_id][:depth]

    def pretokenise(self, reranker: Reranker, query_ids, depth: int) -> None:
        """Tokenise the queries and their top `depth` once, so that timed re-ranking reads cached ids (as a service)."""
        for query_id in query_ids:
            reranker.encoder.encode_queries([self.queries[query_id].text])
            reranker.encoder.encode_docs([self.docs[r.doc_id].text for r in self.run_for(query_id, depth)])


# ---------------------------------------------------------------------------------------------------------------
# The straightforward reference and the plain forward


class TutorialMatchPyramid(nn.Module):
    """MatchPyramid as tutorials write it: fixed-length inputs, activation then mask, per-pair adaptive pooling.

    It holds the same parameters under the same names as neurank's MatchPyramid, so it loads its state_dict.
    """

    def __init__(self, vocab_size: int, config):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        channels = [len(config.interactions), *config.conv_channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, kernel, padding="same")
            for c_in, c_out, kernel in zip(channels[:-1], channels[1:], config.kernel_sizes, strict=True)
        )
        self.dropout = nn.Dropout(config.dropout)
        pq, pd = config.pool_size
        self.score = nn.Linear(channels[-1] * pq * pd + int(config.use_first_stage_score), 1)

    def forward(self, query_ids, doc_ids, first_stage_score):
        query_mask, doc_mask = query_ids != PAD_ID, doc_ids != PAD_ID
        query_emb, doc_emb = self.embedding(query_ids), self.embedding(doc_ids)
        channels = []
        for kind in self.config.interactions:
            if kind == "cosine":
                sim = F.normalize(query_emb, dim=-1) @ F.normalize(doc_emb, dim=-1).transpose(1, 2)
            elif kind == "dot":
                sim = query_emb @ doc_emb.transpose(1, 2)
            else:
                known_q, known_d = query_mask & (query_ids != UNK_ID), doc_mask & (doc_ids != UNK_ID)
                sim = (
                    (query_ids[:, :, None] == doc_ids[:, None, :]) & known_q[:, :, None] & known_d[:, None, :]
                ).float()
            channels.append(sim * (query_mask[:, :, None] & doc_mask[:, None, :]))
        x = torch.stack(channels, dim=1)
        mask = (query_mask[:, :, None] & doc_mask[:, None, :])[:, None].float()
        for conv in self.convs:
            x = torch.relu(conv(x)) * mask
        pooled = []
        for i in range(x.shape[0]):  # dynamic pooling: each pair's true region to the fixed grid
            region = x[i, :, : int(query_mask[i].sum()), : int(doc_mask[i].sum())]
            pooled.append(F.adaptive_max_pool2d(region, self.config.pool_size))
        features = self.dropout(torch.stack(pooled).flatten(1))
        if self.config.use_first_stage_score:
            features = torch.cat([features, first_stage_score[:, None]], dim=1)
        return self.score(features).squeeze(1)


def tutorial_rerank(
    model: TutorialMatchPyramid, tokenizer, vocab, query_text: str, doc_texts, bm25_scores
) -> np.ndarray:
    """The reference re-ranker: tokenise everything, pad to the fixed maximum lengths, score candidates one by one."""

    def encode(text, length):
        ids = vocab.encode(tokenizer.tokenize(text)[:length]) or [UNK_ID]
        return torch.tensor(ids + [PAD_ID] * (length - len(ids)))[None]

    query = encode(query_text, MAX_QUERY_LEN)
    first_stage = normalise_scores(list(bm25_scores))
    scores = []
    with torch.no_grad():
        for text, prior in zip(doc_texts, first_stage, strict=True):
            scores.append(model(query, encode(text, MAX_DOC_LEN), torch.tensor([prior])).item())
    return np.array(scores)


class PlainModel(nn.Module):
    """A MatchPyramid whose `__call__` runs `MatchPyramid.plain_forward`, the textbook formulation of the same weights
    (activation then re-mask after every convolution, every position looked up, the default memory layout)."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, *args):
        return self.inner.plain_forward(*args)


def manual_scores(model, queries, docs, first_stage, grad_mode, max_cells, fixed_lengths=None, batch_size=256):
    """Score pairs with a chosen grad mode, cell budget and padding (the ablations of `Scorer`'s choices)."""
    n = len(docs)
    out = np.empty(n, dtype=np.float32)
    if fixed_lengths is None:
        batches = plan_batches([len(q) for q in queries], [len(d) for d in docs], batch_size, max_cells)
    else:
        batches = [np.arange(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]
    context = torch.inference_mode() if grad_mode == "inference_mode" else torch.no_grad()
    with context:
        for index in batches:
            q_ids, q_mask = pad_ids([queries[i] for i in index])
            d_ids, d_mask = pad_ids([docs[i] for i in index])
            if fixed_lengths is not None:
                q_ids, q_mask = (
                    F.pad(q_ids, (0, fixed_lengths[0] - q_ids.shape[1])),
                    F.pad(q_mask, (0, fixed_lengths[0] - q_mask.shape[1])),
                )
                d_ids, d_mask = (
                    F.pad(d_ids, (0, fixed_lengths[1] - d_ids.shape[1])),
                    F.pad(d_mask, (0, fixed_lengths[1] - d_mask.shape[1])),
                )
            out[index] = model(q_ids, d_ids, q_mask, d_mask, torch.from_numpy(first_stage[index])).numpy()
    return out


# ---------------------------------------------------------------------------------------------------------------
# Sections


def throughput(configs, vocab_size, doc_lengths, batch_sizes, min_seconds, log) -> list[dict]:
    rows = []
    for name in configs:
        model = make_model(name, vocab_size, configs)
        scorer = Scorer(model)
        mm = speedlib.matmul_gflops(seconds=0.5)
        runners = [(name, lambda q, d, s, scorer=scorer: scorer.score(q, d, s))]
        if name == CNN:
            plain = PlainModel(model).eval()
            runners.append(
                (
                    "plain MatchPyramid",
                    lambda q, d, s, plain=plain: manual_scores(plain, q, d, s, "no_grad", None, batch_size=len(d)),
                )
            )
        for label, run in runners:
            for doc_len in doc_lengths:
                flops = model.flops_per_pair(QUERY_LEN, doc_len)
                for batch_size in batch_sizes:
                    queries, docs, first_stage = synthetic_pairs(batch_size, QUERY_LEN, doc_len, vocab_size)
                    gc.collect()
                    speedlib.reset_peak_memory()
                    times = speedlib.timed(
                        lambda run=run, q=queries, d=docs, s=first_stage: run(q, d, s), budget=min_seconds
                    )
                    seconds = speedlib.median(times)
                    gflops = flops * batch_size / seconds / 1e9
                    rows.append(
                        {
                            "model": label,
                            "query_len": QUERY_LEN,
                            "doc_len": doc_len,
                            "batch": batch_size,
                            "pairs_per_s": batch_size / seconds,
                            "mflop_per_pair": flops / 1e6,
                            "gflop_per_s": gflops,
                            "matmul_gflop_per_s": mm,
                            "of_matmul": gflops / mm,
                            "peak_mib": speedlib.peak_memory_mb(),
                            "repetitions": len(times),
                        }
                    )
                    log(
                        f"  {label} d={doc_len} B={batch_size}: {rows[-1]['pairs_per_s']:,.0f} pairs/s, "
                        f"{gflops:.1f} GFLOP/s ({gflops / mm:.0%} of {mm:.0f})"
                    )
    return rows


def latency(configs, workload: NFCorpusWorkload, depths, n_queries, log) -> list[dict]:
    rows = []
    for name in configs:
        model = make_model(name, len(workload.vocab), configs)
        reranker = Reranker(model, workload.tokenizer, workload.vocab, MAX_QUERY_LEN, MAX_DOC_LEN, device="cpu")
        for depth in depths:
            query_ids = list(workload.queries)[: n_queries[depth]]
            workload.pretokenise(reranker, query_ids, depth)  # tokenise once: re-ranking reads cached ids afterwards
            reranker.rerank(workload.run_for(query_ids[0], depth), workload.queries, workload.docs, depth)  # warm up
            gc.collect()
            speedlib.reset_peak_memory()
            times = []
            for query_id in query_ids:
                run = workload.run_for(query_id, depth)
                start = time.perf_counter()
                reranker.rerank(run, workload.queries, workload.docs, depth)
                times.append(time.perf_counter() - start)
            rows.append(
                {
                    "model": name,
                    "candidates": depth,
                    "queries": len(times),
                    "p50_ms": 1e3 * speedlib.median(times),
                    "p95_ms": 1e3 * speedlib.percentile(times, 95),
                    "peak_mib": speedlib.peak_memory_mb(),
                }
            )
            log(f"  {name} top {depth}: p50 {rows[-1]['p50_ms']:.1f} ms, p95 {rows[-1]['p95_ms']:.1f} ms")
    return rows


def shared_query_option(configs, workload: NFCorpusWorkload, depth, n_queries, log) -> list[dict]:
    """One-query re-ranking with and without the per-distinct-token similarity table (`embedding_similarity`),
    interleaved query by query, for the models that use it; the scores of both ways are compared."""
    from neurank.models import one_query_tables

    users = [name for name in (CNN, "knrm", "drmm", "pacrr") if name in configs]
    rows = []
    for name in users:
        model = make_model(name, len(workload.vocab), configs)
        reranker = Reranker(model, workload.tokenizer, workload.vocab, MAX_QUERY_LEN, MAX_DOC_LEN, device="cpu")
        query_ids = list(workload.queries)[:n_queries]
        workload.pretokenise(reranker, query_ids, depth)
        times = {True: [], False: []}
        difference = 0.0
        for _ in range(3):
            for query_id in query_ids:
                run, scores = workload.run_for(query_id, depth), {}
                for shared in (False, True):
                    with one_query_tables(shared):
                        start = time.perf_counter()
                        scores[shared] = reranker.rerank(run, workload.queries, workload.docs, depth)
                        times[shared].append(time.perf_counter() - start)
                plain = {r.doc_id: r.score for r in scores[False]}
                difference = max(difference, max(abs(r.score - plain[r.doc_id]) for r in scores[True]))
        plain_p50, shared_p50 = speedlib.median(times[False]), speedlib.median(times[True])
        rows.append(
            {
                "model": name,
                "candidates": depth,
                "plain_p50_ms": 1e3 * plain_p50,
                "shared_p50_ms": 1e3 * shared_p50,
                "speedup": plain_p50 / shared_p50,
                "max_score_difference": difference,
            }
        )
        log(
            f"  {name} top {depth}: {1e3 * plain_p50:.1f} -> {1e3 * shared_p50:.1f} ms p50 "
            f"({plain_p50 / shared_p50:.2f}x), scores within {difference:.1e}"
        )
    return rows


BUDGETS = (1 << 12, 1 << 14, 1 << 16, 1 << 17, 1 << 18)


def budget_option(configs, workload: NFCorpusWorkload, n_queries, min_seconds, log) -> tuple[list[dict], list[dict]]:
    """The cell budget (`max_cells`), per model: bulk re-ranking throughput (every candidate of the queries in one
    call, interleaved over the budgets) against the old single default 2^16, the model's own default marked; and the
    CNN's one-query latency (top 100, interleaved query by query) at 2^16, 2^17 and 2^18."""
    queries, docs, first_stage, _ = cnn_pairs(workload, 100, n_queries)
    bulk_rows = []
    for name in configs:
        model = make_model(name, len(workload.vocab), configs)
        default = cpu_cell_budget(model)
        budgets = sorted(set(BUDGETS) | {default})
        scorers = {budget: Scorer(model, InferenceOptions(max_cells=budget)) for budget in budgets}
        calls = {budget: (lambda s=s: s.score(queries, docs, first_stage)) for budget, s in scorers.items()}
        reference = calls[CPU_MAX_CELLS]()
        times = speedlib.interleave(calls, repetitions=3, min_seconds=min_seconds)
        base = speedlib.median(times[CPU_MAX_CELLS])
        for budget in budgets:
            seconds = speedlib.median(times[budget])
            bulk_rows.append(
                {
                    "model": name,
                    "max_cells": budget,
                    "default": budget == default,
                    "pairs_per_s": len(docs) / seconds,
                    "speedup_over_2_16": base / seconds,
                    "max_score_difference": float(np.abs(calls[budget]() - reference).max()),
                }
            )
        log(
            f"  {name} (default {default}): "
            + ", ".join(f"{r['max_cells']}: {r['speedup_over_2_16']:.2f}x" for r in bulk_rows if r["model"] == name)
        )
    latency_rows = []
    if CNN in configs:
        model = make_model(CNN, len(workload.vocab), configs)
        reranker = Reranker(model, workload.tokenizer, workload.vocab, MAX_QUERY_LEN, MAX_DOC_LEN, device="cpu")
        budgets = (CPU_MAX_CELLS, 1 << 17, 1 << 18)
        scorers = {budget: Scorer(model, InferenceOptions(max_cells=budget)) for budget in budgets}
        query_ids = list(workload.queries)[:n_queries]
        workload.pretokenise(reranker, query_ids, 100)
        latencies = {budget: [] for budget in budgets}
        for _ in range(3):
            for query_id in query_ids:
                run = workload.run_for(query_id, 100)
                for budget, scorer in scorers.items():
                    reranker.scorer = scorer
                    start = time.perf_counter()
                    reranker.rerank(run, workload.queries, workload.docs, 100)
                    latencies[budget].append(time.perf_counter() - start)
        for budget in budgets:
            p50 = speedlib.median(latencies[budget])
            latency_rows.append(
                {
                    "model": CNN,
                    "max_cells": budget,
                    "default": budget == cpu_cell_budget(model),
                    "p50_ms": 1e3 * p50,
                    "p95_ms": 1e3 * speedlib.percentile(latencies[budget], 95),
                    "speedup_over_2_16": speedlib.median(latencies[CPU_MAX_CELLS]) / p50,
                }
            )
            log(
                f"  {CNN} one query, max_cells {budget}: p50 {latency_rows[-1]['p50_ms']:.1f} ms "
                f"({latency_rows[-1]['speedup_over_2_16']:.2f}x)"
            )
    return bulk_rows, latency_rows


def reference_comparison(configs, workload: NFCorpusWorkload, depth, n_queries, log) -> dict:
    model = make_model(CNN, len(workload.vocab), configs)
    reference = TutorialMatchPyramid(len(workload.vocab), model.config).eval()
    reference.load_state_dict(model.state_dict())
    reranker = Reranker(model, workload.tokenizer, workload.vocab, MAX_QUERY_LEN, MAX_DOC_LEN, device="cpu")
    query_ids = list(workload.queries)[:n_queries]
    # neurank's texts are tokenised once, as a re-ranking service holds them
    workload.pretokenise(reranker, query_ids, depth)
    reranker.rerank(workload.run_for(query_ids[0], depth), workload.queries, workload.docs, depth)  # warm up
    times = {"neurank": [], "reference": []}
    same_ranking, max_difference, pairs = 0, 0.0, 0
    for query_id in query_ids:
        run = workload.run_for(query_id, depth)
        texts = [workload.docs[r.doc_id].text for r in run]
        start = time.perf_counter()
        ours = reranker.rerank(run, workload.queries, workload.docs, depth)
        times["neurank"].append(time.perf_counter() - start)
        start = time.perf_counter()
        theirs = tutorial_rerank(
            reference,
            workload.tokenizer,
            workload.vocab,
            workload.queries[query_id].text,
            texts,
            [r.score for r in run],
        )
        times["reference"].append(time.perf_counter() - start)
        ours_by_doc = {r.doc_id: r.score for r in ours}
        ours_scores = np.array([ours_by_doc[r.doc_id] for r in run])
        # The same ranking: sorting by either score gives the same order of the candidates.
        same_ranking += int(np.array_equal(np.argsort(-ours_scores, kind="stable"), np.argsort(-theirs, kind="stable")))
        max_difference = max(max_difference, float(np.abs(ours_scores - theirs).max()))
        pairs += len(run)
    result = {
        "queries": len(query_ids),
        "candidates": depth,
        "pairs": pairs,
        "neurank_pairs_per_s": pairs / sum(times["neurank"]),
        "reference_pairs_per_s": pairs / sum(times["reference"]),
        "speedup": sum(times["reference"]) / sum(times["neurank"]),
        "same_ranking_queries": same_ranking,
        "max_score_difference": max_difference,
    }
    log(
        f"  neurank {result['neurank_pairs_per_s']:,.0f} pairs/s, "
        f"reference {result['reference_pairs_per_s']:,.0f} pairs/s: {result['speedup']:.1f}x; "
        f"same ranking on {same_ranking}/{len(query_ids)} queries (max |diff| {max_difference:.1e})"
    )
    return result


def cnn_pairs(workload: NFCorpusWorkload, depth: int, n_queries: int):
    """The CNN re-ranking workload as id lists: every (query, candidate) of the chosen queries, cut at 20 / 200."""
    encoder = WordEncoder(workload.tokenizer, workload.vocab, MAX_QUERY_LEN, MAX_DOC_LEN)
    queries, docs, first_stage, texts = [], [], [], []
    for query_id in list(workload.queries)[:n_queries]:
        run = workload.run_for(query_id, depth)
        query = encoder.encode_queries([workload.queries[query_id].text])[0]
        doc_texts = [workload.docs[r.doc_id].text for r in run]
        docs += encoder.encode_docs(doc_texts)
        queries += [query] * len(run)
        first_stage += normalise_scores([r.score for r in run])
        texts.append((workload.queries[query_id].text, doc_texts, [r.score for r in run]))
    return queries, docs, np.array(first_stage, dtype=np.float32), texts


def optimisations(configs, workload: NFCorpusWorkload, n_queries, min_seconds, log) -> list[dict]:
    """Each of Scorer's exact choices switched off alone, on the CNN re-ranking workload, interleaved."""
    model = make_model(CNN, len(workload.vocab), configs)
    plain = PlainModel(model).eval()
    queries, docs, first_stage, texts = cnn_pairs(workload, 100, n_queries)
    scorer = Scorer(model)

    def retokenising():
        encoder = WordEncoder(workload.tokenizer, workload.vocab, MAX_QUERY_LEN, MAX_DOC_LEN)
        q_ids, d_ids = [], []
        for query, doc_texts, _ in texts:
            d_ids += encoder.encode_docs(doc_texts)
            q_ids += encoder.encode_queries([query]) * len(doc_texts)
        return scorer.score(q_ids, d_ids, first_stage)

    variants = {
        "neurank (all of the below)": lambda: scorer.score(queries, docs, first_stage),
        "without the cell budget": lambda: manual_scores(model, queries, docs, first_stage, "inference_mode", None),
        "fixed padding (20 / 200), no bucketing": lambda: manual_scores(
            model, queries, docs, first_stage, "inference_mode", None, (MAX_QUERY_LEN, MAX_DOC_LEN)
        ),
        "no_grad instead of inference_mode": lambda: manual_scores(
            model, queries, docs, first_stage, "no_grad", cpu_cell_budget(model)
        ),
        "re-tokenising every call": retokenising,
        "plain forward (before this work; with the cell budget)": lambda: manual_scores(
            plain, queries, docs, first_stage, "inference_mode", cpu_cell_budget(model)
        ),
    }
    reference = variants["neurank (all of the below)"]()
    times = speedlib.interleave(variants, repetitions=3, min_seconds=min_seconds)
    base = speedlib.median(times["neurank (all of the below)"])
    rows = []
    for label, fn in variants.items():
        seconds = speedlib.median(times[label])
        scores = fn()
        rows.append(
            {
                "variant": label,
                "pairs_per_s": len(docs) / seconds,
                "neurank_speedup": seconds / base,
                "max_score_difference": float(np.abs(scores - reference).max()),
            }
        )
        log(f"  {label}: {rows[-1]['pairs_per_s']:,.0f} pairs/s (neurank is {seconds / base:.2f}x faster)")
    return rows


def rank_agreement(exact: np.ndarray, other: np.ndarray, groups: list[int]) -> dict:
    """Mean Spearman and Kendall correlation over queries, and the share of queries with the same top 10."""
    from scipy.stats import kendalltau, spearmanr

    spearman, kendall, top10 = [], [], []
    start = 0
    for size in groups:
        a, b = exact[start : start + size], other[start : start + size]
        start += size
        spearman.append(spearmanr(a, b).statistic)
        kendall.append(kendalltau(a, b).statistic)
        top10.append(set(np.argsort(-a)[:10]) == set(np.argsort(-b)[:10]))
    clean = lambda values: float(np.nanmean(values)) if not np.all(np.isnan(values)) else float("nan")  # noqa: E731
    return {"spearman": clean(spearman), "kendall": clean(kendall), "same_top10": float(np.mean(top10))}


def numerics_options(configs, workload: NFCorpusWorkload, n_queries, min_seconds, log) -> list[dict]:
    """bf16 autocast (an option of Scorer) and int8 dynamic quantisation of the linear and LSTM layers (measured,
    not kept) per model: speed against fp32 and the ranking they give."""
    rows = []
    queries, docs, first_stage, texts = cnn_pairs(workload, 100, n_queries)
    groups = [len(t[1]) for t in texts]
    for name in configs:
        model = make_model(name, len(workload.vocab), configs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch marks its eager quantisation API deprecated (for torchao)
            quantized = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(model), {nn.Linear, nn.LSTM}, dtype=torch.qint8
            )
            scorers = {
                "fp32": Scorer(model),
                "bf16": Scorer(model, InferenceOptions(precision="bf16")),
                "int8": Scorer(quantized),
            }
            times = speedlib.interleave(
                {k: (lambda s=s: s.score(queries, docs, first_stage)) for k, s in scorers.items()},
                repetitions=2,
                min_seconds=min_seconds,
            )
            scores = {k: s.score(queries, docs, first_stage) for k, s in scorers.items()}
        base = speedlib.median(times["fp32"])
        for option in ("bf16", "int8"):
            agreement = rank_agreement(scores["fp32"], scores[option], groups)
            rows.append(
                {"model": name, "option": option, "speedup": base / speedlib.median(times[option]), **agreement}
            )
            log(
                f"  {name} {option}: {rows[-1]['speedup']:.2f}x, Spearman {agreement['spearman']:.4f}, "
                f"Kendall {agreement['kendall']:.4f}, same top 10 {agreement['same_top10']:.0%}"
            )
    return rows


def compile_option(configs, vocab_size, shape, min_seconds, log) -> dict:
    """torch.compile (static shapes) against eager on one shape of the CNN, as the Scorer batches it."""
    batch_size, query_len, doc_len = shape
    model = make_model(CNN, vocab_size, configs)
    queries, docs, first_stage = synthetic_pairs(batch_size, query_len, doc_len, vocab_size)
    eager = Scorer(model, InferenceOptions(batch_size=batch_size))
    compiled = Scorer(model, InferenceOptions(batch_size=batch_size))
    compiled.runner = torch.compile(model, dynamic=False)  # every batch of this workload has one shape
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = compiled.score(queries, docs, first_stage)
    except Exception as error:  # inductor needs a C++ compiler; report instead of failing the whole benchmark
        log(f"  torch.compile failed: {type(error).__name__}: {str(error).splitlines()[0][:200]}")
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    compile_seconds = time.perf_counter() - start
    times = speedlib.interleave(
        {
            "eager": lambda: eager.score(queries, docs, first_stage),
            "compiled": lambda: compiled.score(queries, docs, first_stage),
        },
        repetitions=3,
        min_seconds=min_seconds,
    )
    result = {
        "shape": shape,
        "compile_seconds": compile_seconds,
        "eager_pairs_per_s": batch_size / speedlib.median(times["eager"]),
        "compiled_pairs_per_s": batch_size / speedlib.median(times["compiled"]),
        "max_score_difference": float(np.abs(expected - eager.score(queries, docs, first_stage)).max()),
    }
    result["speedup"] = result["compiled_pairs_per_s"] / result["eager_pairs_per_s"]
    log(
        f"  compile {compile_seconds:.0f} s; eager {result['eager_pairs_per_s']:,.0f}, "
        f"compiled {result['compiled_pairs_per_s']:,.0f} pairs/s ({result['speedup']:.2f}x), "
        f"max |diff| {result['max_score_difference']:.1e}"
    )
    return result


def onnx_option(configs, vocab_size, shape, min_seconds, log, tmp_dir: Path) -> list[dict]:
    """onnxruntime against PyTorch per model on one shape."""
    try:
        import onnxruntime as ort

        from neurank.inference.export import export_model_onnx
        from neurank.inference.onnx_reranker import OnnxScorer
    except ImportError as error:
        log(f"  skipped: {error}")
        return []
    batch_size, query_len, doc_len = shape
    rows = []
    for name in configs:
        model = make_model(name, vocab_size, configs)
        path = tmp_dir / f"{name}.onnx"
        start = time.perf_counter()
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            info = export_model_onnx(model, name, path, max_query_len=max(query_len, 20), max_doc_len=max(doc_len, 200))
        export_seconds = time.perf_counter() - start
        session_options = ort.SessionOptions()
        session_options.intra_op_num_threads = torch.get_num_threads()  # the same threads as PyTorch
        session = ort.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
        onnx_scorer = OnnxScorer(session, True, info["static_lengths"], InferenceOptions(batch_size=batch_size))
        torch_scorer = Scorer(model, InferenceOptions(batch_size=batch_size))
        queries, docs, first_stage = synthetic_pairs(batch_size, query_len, doc_len, vocab_size)
        times = speedlib.interleave(
            {
                "torch": lambda scorer=torch_scorer, q=queries, d=docs, s=first_stage: scorer.score(q, d, s),
                "onnx": lambda scorer=onnx_scorer, q=queries, d=docs, s=first_stage: scorer.score(q, d, s),
            },
            repetitions=2,
            min_seconds=min_seconds,
        )
        difference = float(
            np.abs(onnx_scorer.score(queries, docs, first_stage) - torch_scorer.score(queries, docs, first_stage)).max()
        )
        rows.append(
            {
                "model": name,
                "export_seconds": export_seconds,
                "torch_pairs_per_s": batch_size / speedlib.median(times["torch"]),
                "onnx_pairs_per_s": batch_size / speedlib.median(times["onnx"]),
                "max_score_difference": difference,
                "static_lengths": info["static_lengths"],
            }
        )
        rows[-1]["onnx_speedup"] = rows[-1]["onnx_pairs_per_s"] / rows[-1]["torch_pairs_per_s"]
        log(
            f"  {name}: torch {rows[-1]['torch_pairs_per_s']:,.0f}, "
            f"onnxruntime {rows[-1]['onnx_pairs_per_s']:,.0f} pairs/s ({rows[-1]['onnx_speedup']:.2f}x), "
            f"max |diff| {difference:.1e}"
        )
    return rows


def allocator_option(shapes, rounds, log, env=None) -> list[dict]:
    """The CNN scoring workload in two worker processes, interleaved: default settings against `env` (default: the
    tuned glibc malloc thresholds; the OpenMP wait policy is the other setting compared this way)."""
    drop = speedlib.ALLOCATOR_VARS
    workers = {
        "default": speedlib.Worker(__file__, drop=drop),
        "tuned": speedlib.Worker(__file__, env=env or speedlib.TUNED_MALLOC, drop=drop),
    }
    rows = []
    try:
        for shape in shapes:
            for worker in workers.values():
                worker.ask(task="setup", shape=shape)
            seconds = {name: [] for name in workers}
            for _ in range(rounds):
                for name, worker in workers.items():
                    seconds[name].append(worker.ask(task="time")["seconds"])
            faults = {name: worker.ask(task="faults")["minor_faults_per_call"] for name, worker in workers.items()}
            default, tuned = speedlib.median(seconds["default"]), speedlib.median(seconds["tuned"])
            rows.append(
                {
                    "shape": shape,
                    "default_pairs_per_s": shape[0] / default,
                    "tuned_pairs_per_s": shape[0] / tuned,
                    "speedup": default / tuned,
                    "default_faults_per_call": faults["default"],
                    "tuned_faults_per_call": faults["tuned"],
                }
            )
            log(
                f"  B x Lq x Ld = {shape}: default {rows[-1]['default_pairs_per_s']:,.0f}, "
                f"tuned {rows[-1]['tuned_pairs_per_s']:,.0f} pairs/s ({rows[-1]['speedup']:.2f}x; "
                f"page faults per call {faults['default']:,.0f} vs {faults['tuned']:,.0f})"
            )
    finally:
        for worker in workers.values():
            worker.close()
    return rows


def worker_main() -> None:
    """The allocator workers: one CNN Scorer on one fixed batch, timed on request."""
    import resource

    state = {}

    def setup(shape):
        batch_size, query_len, doc_len = shape
        state["scorer"] = Scorer(make_model(CNN, 30_000, model_configs()), InferenceOptions(batch_size=batch_size))
        state["pairs"] = synthetic_pairs(batch_size, query_len, doc_len, 30_000)
        state["scorer"].score(*state["pairs"])
        state["calls"], state["faults"] = 0, resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        return {}

    def time_call():
        start = time.perf_counter()
        state["scorer"].score(*state["pairs"])
        state["calls"] += 1
        return {"seconds": time.perf_counter() - start}

    def faults():
        return {
            "minor_faults_per_call": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - state["faults"])
            / max(1, state["calls"])
        }

    speedlib.serve({"setup": setup, "time": time_call, "faults": faults})


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    if "--worker" in sys.argv:
        worker_main()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "inference.json"))
    parser.add_argument("--quick", action="store_true", help="fewer sizes, queries and repetitions (a smoke test)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    parser.add_argument(
        "--sections",
        default="throughput,latency,sharedquery,budget,reference,optimisations,numerics,compile,onnx,allocator,waitpolicy",
    )
    parser.add_argument("--models", default=None, help="comma-separated subset of the models (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the allocator workers start with it
    sections = set(args.sections.split(","))
    quick = args.quick
    log = lambda line: print(line, flush=True)  # noqa: E731
    started = time.perf_counter()
    configs = model_configs()
    if args.models:
        unknown = set(args.models.split(",")) - set(configs)
        if unknown:
            parser.error(f"unknown model(s) {sorted(unknown)}; benchmarked: {', '.join(configs)}")
        configs = {name: configs[name] for name in args.models.split(",")}
    tune_malloc()  # as `neurank` runs (a Reranker, train); the allocator sections compare it with glibc's defaults
    result = {"command": " ".join(["python", *sys.argv]), "machine": speedlib.machine(), "quick": quick}
    result["matmul_gflop_per_s_start"] = speedlib.matmul_gflops()
    log(
        f"fp32 matmul (1024^3): {result['matmul_gflop_per_s_start']:.1f} GFLOP/s "
        f"with {torch.get_num_threads()} threads; load {result['machine']['load_average']}"
    )
    workload = NFCorpusWorkload(args.data_dir, n_queries=10 if quick else 40)
    vocab_size = len(workload.vocab)
    tables = []

    if "throughput" in sections:
        log("\n## Throughput (pairs/s; query length 10)")
        result["throughput"] = throughput(
            configs, vocab_size, [100, 400], [64, 256] if quick else [64, 256, 1024], 0.2 if quick else 1.5, log
        )
        tables.append(
            (
                "Throughput: pre-tokenised pairs scored per second (query length 10)",
                speedlib.markdown_table(
                    result["throughput"],
                    [
                        "model",
                        "doc_len",
                        "batch",
                        "pairs_per_s",
                        "mflop_per_pair",
                        "gflop_per_s",
                        "of_matmul",
                        "peak_mib",
                    ],
                    {
                        "doc_len": "d",
                        "batch": "d",
                        "pairs_per_s": ",.0f",
                        "mflop_per_pair": ".2f",
                        "gflop_per_s": ".1f",
                        "of_matmul": ".1%",
                        "peak_mib": ",.0f",
                    },
                ),
            )
        )
    if "latency" in sections:
        log("\n## Re-ranking latency, one NFCorpus query (documents cut at 200 tokens)")
        result["latency"] = latency(
            configs, workload, [100, 1000], {100: 5 if quick else 30, 1000: 2 if quick else 10}, log
        )
        tables.append(
            (
                "Latency: Reranker.rerank of one query",
                speedlib.markdown_table(
                    result["latency"],
                    ["model", "candidates", "queries", "p50_ms", "p95_ms", "peak_mib"],
                    {"candidates": "d", "queries": "d", "p50_ms": ".1f", "p95_ms": ".1f", "peak_mib": ",.0f"},
                ),
            )
        )
    if "sharedquery" in sections:
        log(
            "\n## One query's candidates: the per-distinct-token similarity table against the plain look-up "
            "(interleaved)"
        )
        result["shared_query"] = shared_query_option(configs, workload, 100, 5 if quick else 20, log)
        tables.append(
            (
                "One-query re-ranking, top 100: similarity table per distinct token",
                speedlib.markdown_table(
                    result["shared_query"],
                    ["model", "plain_p50_ms", "shared_p50_ms", "speedup", "max_score_difference"],
                    {"plain_p50_ms": ".1f", "shared_p50_ms": ".1f", "speedup": ".2f", "max_score_difference": ".1e"},
                ),
            )
        )
    if "budget" in sections:
        log("\n## The cell budget per model: bulk re-ranking throughput, and the CNN's one-query latency (interleaved)")
        result["budget"], result["budget_latency"] = budget_option(
            configs, workload, 5 if quick else 20, 0.3 if quick else 2.0, log
        )
        tables.append(
            (
                "Cell budget: bulk re-ranking (every candidate of 20 queries' top 100) against 2^16",
                speedlib.markdown_table(
                    result["budget"],
                    ["model", "max_cells", "default", "pairs_per_s", "speedup_over_2_16", "max_score_difference"],
                    {
                        "max_cells": "d",
                        "pairs_per_s": ",.0f",
                        "speedup_over_2_16": ".2f",
                        "max_score_difference": ".1e",
                    },
                ),
            )
        )
        if result["budget_latency"]:
            tables.append(
                (
                    "Cell budget: the CNN's one-query latency (top 100)",
                    speedlib.markdown_table(
                        result["budget_latency"],
                        ["model", "max_cells", "default", "p50_ms", "p95_ms", "speedup_over_2_16"],
                        {"max_cells": "d", "p50_ms": ".1f", "p95_ms": ".1f", "speedup_over_2_16": ".2f"},
                    ),
                )
            )
    if "reference" in sections:
        log("\n## The straightforward reference (CNN), interleaved on the same queries")
        result["reference"] = reference_comparison(configs, workload, 100, 5 if quick else 20, log)
    if "optimisations" in sections:
        log("\n## What each choice buys (CNN, NFCorpus top 100, interleaved)")
        result["optimisations"] = optimisations(configs, workload, 5 if quick else 20, 0.5 if quick else 5.0, log)
        tables.append(
            (
                "Exact optimisations, each switched off alone",
                speedlib.markdown_table(
                    result["optimisations"],
                    ["variant", "pairs_per_s", "neurank_speedup", "max_score_difference"],
                    {"pairs_per_s": ",.0f", "neurank_speedup": ".2f", "max_score_difference": ".1e"},
                ),
            )
        )
    if "numerics" in sections:
        log("\n## Options that change numerics: bf16 and int8 against fp32 (NFCorpus top 100)")
        result["numerics"] = numerics_options(configs, workload, 3 if quick else 10, 0.3 if quick else 2.0, log)
        tables.append(
            (
                "bf16 / int8 against fp32",
                speedlib.markdown_table(
                    result["numerics"],
                    ["model", "option", "speedup", "spearman", "kendall", "same_top10"],
                    {"speedup": ".2f", "spearman": ".4f", "kendall": ".4f", "same_top10": ".0%"},
                ),
            )
        )
    if "compile" in sections:
        log("\n## torch.compile (CNN, static shapes)")
        result["compile"] = compile_option(configs, vocab_size, (256, QUERY_LEN, 200), 0.5 if quick else 3.0, log)
    if "onnx" in sections:
        log("\n## onnxruntime against PyTorch (B 256, query 10, document 100)")
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            chosen = {CNN: configs[CNN], "knrm": configs["knrm"]} if quick else configs
            result["onnx"] = onnx_option(
                chosen, vocab_size, (256, QUERY_LEN, 100), 0.3 if quick else 2.0, log, Path(tmp)
            )
        if result["onnx"]:
            tables.append(
                (
                    "onnxruntime against PyTorch",
                    speedlib.markdown_table(
                        result["onnx"],
                        [
                            "model",
                            "torch_pairs_per_s",
                            "onnx_pairs_per_s",
                            "onnx_speedup",
                            "max_score_difference",
                            "export_seconds",
                        ],
                        {
                            "torch_pairs_per_s": ",.0f",
                            "onnx_pairs_per_s": ",.0f",
                            "onnx_speedup": ".2f",
                            "max_score_difference": ".1e",
                            "export_seconds": ".0f",
                        },
                    ),
                )
            )
    if "allocator" in sections:
        log("\n## Allocator: glibc defaults against raised mmap/trim thresholds (CNN scoring, worker processes)")
        result["allocator"] = allocator_option([[256, QUERY_LEN, 100], [256, QUERY_LEN, 400]], 3 if quick else 8, log)
    if "waitpolicy" in sections:
        log(
            "\n## OpenMP waiting: spinning (default) against OMP_WAIT_POLICY=PASSIVE "
            "(CNN scoring, worker processes; 'tuned' = passive)"
        )
        result["wait_policy"] = allocator_option(
            [[100, 3, 150], [256, QUERY_LEN, 400]], 3 if quick else 8, log, env=speedlib.PASSIVE_WAIT
        )

    result["matmul_gflop_per_s_end"] = speedlib.matmul_gflops()
    result["seconds"] = time.perf_counter() - started
    result["machine"]["load_average_end"] = speedlib.machine()["load_average"]
    speedlib.write_json(args.output, result)
    print()
    for title, table in tables:
        print(f"### {title}\n\n{table}\n")
    log(
        f"fp32 matmul {result['matmul_gflop_per_s_start']:.1f} GFLOP/s at the start, "
        f"{result['matmul_gflop_per_s_end']:.1f} at the end; {result['seconds']:.0f} s in all; JSON in {args.output}"
    )


if __name__ == "__main__":
    main()
