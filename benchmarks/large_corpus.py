"""A synthetic ad-hoc collection of any size in BEIR layout, made of random Brown corpus sentences.

    python benchmarks/large_corpus.py --docs 1000000 --output /tmp/neurank-large/brown-1000000
    python benchmarks/large_corpus.py --docs 10000              # -> $TMPDIR/neurank-large/brown-10000

Writes `corpus.jsonl` (`_id`, `title` (empty), `text`), `queries.jsonl`, `qrels/test.tsv` and `generation.json` (the
settings and counts) into a new folder; an existing folder is never touched. Each document joins random sentences of
NLTK's Brown corpus (57,340 sentences, read from `brown.zip` by `neurank.data.embeddings.brown_corpus_sentences`)
until it has at least `--min-words` words (words: tokens with a letter or digit; about 60 on average with the
default 50), and no two documents have the same text (a repeat is drawn again). Each query is 3 to 5 distinct words
of 4 or more letters drawn from one document, which is judged relevant (1) to it; the queried documents are spread
over the whole corpus.

Everything follows from `--seed`: the same settings give the same files, byte for byte, and the first N texts of a
larger corpus are the N texts of a smaller one (the ids' zero padding and the queries differ). Documents are written
as they are made, so memory stays at the Brown sentences plus 8 bytes per document (to keep texts unique).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR_VERSION = 1


def default_brown() -> Path:
    data = Path(os.environ.get("NEURANK_DATA", ROOT.parent / "shared" / "data"))
    return data / "brown_corpus" / "brown.zip"


def default_output(docs: int) -> Path:
    return Path(tempfile.gettempdir()) / "neurank-large" / f"brown-{docs}"


def settings(docs: int, queries: int, seed: int, min_words: int) -> dict:
    """What determines the files: two folders with equal settings hold the same collection."""
    return {
        "generator": "benchmarks/large_corpus.py",
        "version": GENERATOR_VERSION,
        "documents": docs,
        "queries": queries,
        "seed": seed,
        "min_words": min_words,
    }


def generate(
    output: Path, docs: int, queries: int = 1000, seed: int = 0, min_words: int = 50, brown: Path | None = None
) -> dict:
    """Write the collection into the new folder `output` and return its `generation.json` content.

    Raises:
        FileExistsError: `output` exists.
    """
    from neurank.data.embeddings import brown_corpus_sentences

    if output.exists():
        raise FileExistsError(f"{output}: exists; choose a new folder (an existing one is never overwritten)")
    if not 0 < queries <= docs:
        raise ValueError(f"need 0 < queries <= docs, got {queries} queries for {docs} documents")
    started = time.perf_counter()
    sentences = [" ".join(words) for words in brown_corpus_sentences(brown or default_brown())]
    sentence_words = [sum(any(c.isalnum() for c in word) for word in s.split()) for s in sentences]
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        info = _write(tmp, sentences, sentence_words, docs, queries, seed, min_words)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    info["seconds"] = round(time.perf_counter() - started, 1)
    (tmp / "generation.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, output)  # the folder appears complete, or not at all
    return info


def _write(
    tmp: Path, sentences: list[str], sentence_words: list[int], docs: int, queries: int, seed: int, min_words: int
) -> dict:
    doc_rng = random.Random(f"{seed}-documents")
    query_rng = random.Random(f"{seed}-queries")
    queried = set(query_rng.sample(range(docs), queries))
    width = len(str(docs - 1))
    seen: set[bytes] = set()
    total_words = redrawn = 0
    query_lines: list[str] = []
    qrel_lines: list[str] = []
    (tmp / "qrels").mkdir()
    with open(tmp / "corpus.jsonl", "w", encoding="utf-8", newline="\n") as corpus:
        for number in range(docs):
            while True:
                parts: list[str] = []
                words = 0
                while words < min_words:
                    index = doc_rng.randrange(len(sentences))
                    parts.append(sentences[index])
                    words += sentence_words[index]
                text = " ".join(parts)
                digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
                if digest not in seen:
                    seen.add(digest)
                    break
                redrawn += 1
            total_words += words
            doc_id = f"doc{number:0{width}d}"
            corpus.write(json.dumps({"_id": doc_id, "title": "", "text": text}) + "\n")
            if number in queried:
                query_id = f"q{len(query_lines):04d}"
                query_lines.append(json.dumps({"_id": query_id, "text": _query_text(text, query_rng)}) + "\n")
                qrel_lines.append(f"{query_id}\t{doc_id}\t1\n")
    (tmp / "queries.jsonl").write_text("".join(query_lines), encoding="utf-8")
    (tmp / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(qrel_lines), encoding="utf-8")
    return settings(docs, queries, seed, min_words) | {
        "mean_words": round(total_words / docs, 2),
        "redrawn_repeats": redrawn,
        "corpus_bytes": (tmp / "corpus.jsonl").stat().st_size,
    }


def _query_text(text: str, rng: random.Random) -> str:
    candidates = sorted({word.lower() for word in text.split() if word.isalpha() and len(word) >= 4})
    return " ".join(rng.sample(candidates, min(len(candidates), rng.randint(3, 5))))


def matches(folder: Path, docs: int, queries: int, seed: int, min_words: int) -> bool:
    """Whether `folder` holds a complete collection generated with these settings (so it can be reused)."""
    try:
        info = json.loads((folder / "generation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    wanted = settings(docs, queries, seed, min_words)
    return all(info.get(key) == value for key, value in wanted.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, required=True, help="number of documents")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-words", type=int, default=50, help="sentences are added until a document has this many")
    parser.add_argument("--brown", type=Path, default=None, help="brown.zip (default: $NEURANK_DATA/brown_corpus)")
    parser.add_argument("--output", type=Path, default=None, help="a new folder (default: $TMPDIR/neurank-large/)")
    args = parser.parse_args(argv)
    output = args.output or default_output(args.docs)
    try:
        info = generate(output, args.docs, args.queries, args.seed, args.min_words, args.brown)
    except (FileExistsError, ValueError) as error:
        print(f"large_corpus.py: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"output": str(output)} | info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
