"""Large collections: index, search and re-rank a synthetic corpus of 100,000 and 1,000,000 documents, with the
wall time and peak memory of each step.

    python benchmarks/large_collection.py                       # 100k and 1M documents (20-40 minutes on 2 cores)
    python benchmarks/large_collection.py --quick               # 10k documents, a smoke test (under a minute)
    python benchmarks/large_collection.py --docs 100000 --work /tmp/neurank-large

For each size N, the corpus (`benchmarks/large_corpus.py`: random Brown sentences, about 60 words a document, 1,000
queries of 3-5 words from one judged document each) is generated in --work, or reused when a folder generated with
the same settings is there. Then each step runs in its own child process, so that each peak is its own:

- index:  `neurank.retrieval.index_corpus_file`: streams corpus.jsonl into the BM25 index (stemmed, stop words
          removed, Lucene BM25 k1=0.9 b=0.4, as `neurank index`) and its document store, and saves both;
- search: loads the index memory-mapped (`BM25Retriever.load(..., mmap=True)`), retrieves the top 1,000 of each of
          the 1,000 queries and writes the TREC run;
- rerank: reads that run, keeps each query's top 100 (100,000 pairs), reads their texts by id from the document
          store (`DocumentStore`, memory-mapped) and re-ranks them with MatchPyramid (`Reranker.rerank`).
          The model has random weights (seed 0), the default MatchPyramid config, and a vocabulary of the 30,000
          most frequent words of the first 20,000 documents: time and memory do not depend on what the weights are.

Peak memory is the child's VmHWM (peak resident set, file pages it touched through memory maps included), read from
/proc/self/status at the end of the step (its objects still alive), with the anonymous and file-backed parts of the
resident set at that moment (RssAnon, RssFile: the file part is page cache the kernel can drop). Wall seconds cover
the step itself, after imports ("process" adds the interpreter's start and the imports). The table goes to stdout,
all figures to --output (JSON). BM25's recall of the judged document at 100 and 1,000 and its reciprocal rank (a
sanity check: the queries are words of that document) are evaluated by the parent.

Measured (benchmarks/results/large_collection.json; 2 CPU cores shared with other work, so times vary by up to 3x
from run to run, peaks by a few MiB; corpus of 1M documents: 404 MiB, 40.1M postings, 26,615 terms):

    | step   | N         | wall s | peak RSS MiB | of which file pages at the end |
    |--------|-----------|-------:|-------------:|-------------------------------:|
    | index  | 100,000   |   11.6 |          281 |                             23 |
    | search | 100,000   |   27.1 |          283 |                             53 |
    | rerank | 100,000   |   43.4 |          831 |                            156 |
    | index  | 1,000,000 |   96.3 |        1,176 |                             22 |
    | search | 1,000,000 |  163.1 |          640 |                            327 |
    | rerank | 1,000,000 |   63.8 |        1,213 |                            507 |

Search spends most of its time in bm25s's top-k (numpy's argpartition, about 0.16 s a query on these score arrays:
a million scores with ~1,000 distinct values, most of them 0), not in scoring.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import large_corpus  # noqa: E402

DEPTH = 100  # documents re-ranked per query
K = 1000  # documents retrieved per query
VOCAB_SAMPLE, VOCAB_SIZE = 20_000, 30_000


def memory_mib() -> dict[str, float]:
    """This process's peak resident set (VmHWM) and, now, its anonymous and file-backed resident parts, in MiB."""
    fields = {"VmHWM": "peak_rss_mib", "RssAnon": "anon_rss_mib", "RssFile": "file_rss_mib"}
    found = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            name = line.split(":")[0]
            if name in fields:
                found[fields[name]] = int(line.split()[1]) / 1024
    if "peak_rss_mib" not in found:
        raise RuntimeError("no VmHWM in /proc/self/status")
    return found


# -- the steps, each run in a child process ----------------------------------------------------------------------------


def step_index(corpus: Path, work: Path) -> dict:
    from neurank.retrieval import index_corpus_file

    started = time.perf_counter()
    retriever = index_corpus_file(corpus / "corpus.jsonl", work / "index")
    wall = time.perf_counter() - started
    scores = retriever.bm25.scores
    return {
        "wall_s": wall,
        "documents": len(retriever.doc_ids),
        "postings": int(len(scores["data"])),
        "terms": len(retriever.bm25.vocab_dict) - 1,
        "index_mib": _folder_mib(work / "index"),
        "store_mib": _folder_mib(work / "index" / "docs"),
    } | memory_mib()


def step_search(corpus: Path, work: Path) -> dict:
    from neurank.collections import write_run
    from neurank.collections.beir import read_beir_queries
    from neurank.retrieval import BM25Retriever

    started = time.perf_counter()
    retriever = BM25Retriever.load(work / "index", mmap=True)
    loaded = time.perf_counter() - started
    queries = read_beir_queries(corpus / "queries.jsonl")
    run = retriever.search(queries, k=K)
    write_run(run, work / "bm25.run", tag="bm25")
    return {"wall_s": time.perf_counter() - started, "load_s": loaded, "results": len(run)} | memory_mib()


def step_rerank(corpus: Path, work: Path) -> dict:
    import itertools

    import torch

    from neurank.collections import read_run, write_run
    from neurank.collections.beir import read_beir_queries
    from neurank.inference import Reranker
    from neurank.models.registry import build_model
    from neurank.retrieval import DocumentStore
    from neurank.text import Tokenizer, Vocab, WordEncoder

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()
    store = DocumentStore(work / "index" / "docs")
    tokenizer = Tokenizer()
    sample = [doc.text for doc in itertools.islice(store.values(), VOCAB_SAMPLE)]
    vocab = Vocab.build(tokenizer.tokenize_batch(sample), max_size=VOCAB_SIZE)
    del sample
    torch.manual_seed(0)
    model = build_model("match_pyramid", len(vocab))
    reranker = Reranker(model, WordEncoder(tokenizer, vocab, 20, 200), device="cpu", batch_size=256)
    queries = {query.query_id: query for query in read_beir_queries(corpus / "queries.jsonl")}
    run = _top(read_run(work / "bm25.run"), DEPTH)
    prepared = time.perf_counter()
    texts = {entry.doc_id: store[entry.doc_id] for entry in run}  # only the retrieved documents' texts
    fetched = time.perf_counter()
    reranked = reranker.rerank(run, queries, texts, depth=DEPTH)
    write_run(reranked, work / "reranked.run", tag="match_pyramid")
    return {
        "wall_s": time.perf_counter() - started,
        "setup_s": prepared - started,
        "fetch_s": fetched - prepared,
        "texts_fetched": len(texts),
        "score_s": time.perf_counter() - fetched,
        "pairs": len(reranked),
        "vocab": len(vocab),
    } | memory_mib()


def _top(run: list, depth: int) -> list:
    by_query: dict[str, list] = {}
    for entry in run:
        by_query.setdefault(entry.query_id, []).append(entry)
    return [entry for entries in by_query.values() for entry in sorted(entries, key=lambda r: -r.score)[:depth]]


def _folder_mib(folder: Path) -> float:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) / 2**20


STEPS = {"index": step_index, "search": step_search, "rerank": step_rerank}


def child(step: str, corpus: Path, work: Path) -> None:
    result = STEPS[step](corpus, work)
    print("RESULT " + json.dumps(result), flush=True)


# -- the parent ------------------------------------------------------------------------------------------------------


def run_step(step: str, corpus: Path, work: Path) -> dict:
    command = [sys.executable, __file__, "--child", step, "--corpus", str(corpus), "--work", str(work)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ | {"TQDM_DISABLE": "1"})
    process_s = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"step {step} failed with exit code {done.returncode}")
    line = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return json.loads(line.removeprefix("RESULT ")) | {"process_s": process_s}


def effectiveness(corpus: Path, run_path: Path) -> dict:
    from neurank.collections import read_run
    from neurank.collections.beir import read_beir_qrels
    from neurank.evaluation import evaluate

    qrels = read_beir_qrels(corpus / "qrels" / "test.tsv")
    return evaluate(read_run(run_path), qrels, ["R@100", "R@1000", "RR"])


def benchmark(docs: int, work_root: Path, seed: int, steps: list[str]) -> list[dict]:
    corpus = work_root / f"brown-{docs}"
    generated = None
    if corpus.exists():
        if not large_corpus.matches(corpus, docs, 1000, seed, 50):
            raise SystemExit(f"{corpus}: exists but was not generated with these settings; remove it or use --work")
        print(f"reusing {corpus}", file=sys.stderr)
    else:
        print(f"generating {corpus}", file=sys.stderr)
        generated = large_corpus.generate(corpus, docs, queries=1000, seed=seed)
    work = work_root / f"steps-{docs}"
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for step in steps:
        print(f"N={docs:,}: {step} ...", file=sys.stderr, flush=True)
        result = run_step(step, corpus, work)
        if step == "search":
            result |= effectiveness(corpus, work / "bm25.run")
        rows.append({"step": step, "documents": docs} | result)
        print(f"  {result['wall_s']:.1f} s, peak {result['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)
    if generated:
        rows.insert(0, {"step": "generate", "documents": docs, "wall_s": generated["seconds"]})
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| step | N | wall s | process s | peak RSS MiB |", "|---|---:|---:|---:|---:|"]
    for row in rows:
        if row["step"] == "generate":
            continue
        lines.append(
            f"| {row['step']} | {row['documents']:,} | {row['wall_s']:.1f} | {row['process_s']:.1f} "
            f"| {row['peak_rss_mib']:,.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="10,000 documents only (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "neurank-large")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "large_collection.json")
    parser.add_argument(
        "--steps", nargs="+", choices=list(STEPS), default=list(STEPS), help="run only these (each needs the last)"
    )
    parser.add_argument("--child", choices=list(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.corpus, args.work)
        return 0
    sizes = [10_000] if args.quick else args.docs
    rows = [row for docs in sizes for row in benchmark(docs, args.work, args.seed, args.steps)]
    print(table(rows))
    if args.quick and args.output == parser.get_default("output"):
        return 0  # a smoke test does not replace the recorded results
    import torch

    if args.output.exists():  # keep the rows of the sizes and steps not run this time
        ran = {(row["step"], row["documents"]) for row in rows}
        kept = json.loads(args.output.read_text(encoding="utf-8"))["rows"]
        rows = [row for row in kept if (row["step"], row["documents"]) not in ran] + rows
        order = ["generate", *STEPS]
        rows.sort(key=lambda row: (row["documents"], order.index(row["step"])))
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "platform": platform.platform(),
        },
        "depth": DEPTH,
        "k": K,
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.output.with_name(f".{args.output.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, args.output)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
