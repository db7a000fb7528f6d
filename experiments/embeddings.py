"""Would better corpus-trained word vectors lift the results table's WikiQA models? Judged on the DEV split only.

    python experiments/embeddings.py --data-dir ../shared/data [--models arci mvlstm] [--seeds 1 2 3 4 5] \
        [--variants table more-text] [--word2vec-seeds 42 7] [--output embeddings.json]

The table's WikiQA embeddings are word2vec (gensim, skip-gram, 100 dimensions, 10 epochs) trained on WikiQA's texts
and the Brown corpus, drawn once with the config's seed (`neurank/configs/wikiqa.yaml`). Each variant below changes one
thing about them (drawn with each of --word2vec-seeds, by default the config's seed only) and trains the given
models as `neurank benchmark` does (same options, same data, one model seed after another),
then prints the mean best dev AP over the seeds and the mean dev AP after the BM25 fusion weight is chosen on dev.
Test labels are never read here (test texts feed the vocabulary and word2vec, without labels, as they do for the
table). Training runs on one torch thread, as the table's ArcI and MV-LSTM did.

Variants:
- ``table``: the table's vectors;
- ``more-text``: word2vec also reads the other collections we have here (NFCorpus, CISI, Cranfield), the only
  further English text available without the internet;
- ``epochs``: 30 word2vec epochs instead of 10;
- ``fastText``: gensim's FastText (character n-gram subwords, so rare words share what their spelling shares).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from neurank.collections import DataWarning, load_collection
from neurank.collections.textio import atomic_write
from neurank.data import embeddings as emb
from neurank.data.prepare import (
    collection_texts,
    make_embeddings,
    prepare_data,
    word2vec_embeddings,
    word2vec_sentences,
)
from neurank.training import train
from neurank.workflows.experiment import with_seed
from neurank.workflows.results_table import load_plan

VARIANTS = ("table", "more-text", "epochs", "fastText")
MORE_TEXT = ("nfcorpus", "cisi", "cranfield")


def vectors(variant: str, config, data) -> torch.Tensor | None:
    """The embedding matrix of a variant over the table's vocabulary, drawn with `config.train.seed`."""
    if variant == "table":
        return make_embeddings(config, data.vocab, token_lists(data), data.collection)[0]
    if variant == "epochs":
        longer = dataclasses.replace(config, embeddings=dataclasses.replace(config.embeddings, epochs=30))
        return make_embeddings(longer, data.vocab, token_lists(data), data.collection)[0]
    sentences = word2vec_sentences(config, token_lists(data))
    if variant == "more-text":
        for name in MORE_TEXT:
            other = load_collection(name, config.data.data_dir)
            sentences += [tokens for tokens in data.tokenizer.tokenize_batch(collection_texts(other)) if tokens]
        return word2vec_embeddings(config, data.vocab, sentences)[0]
    if variant == "fastText":
        from gensim.models import FastText

        source = config.embeddings
        model = FastText(
            sentences,
            vector_size=source.dim,
            window=source.window,
            min_count=source.min_count,
            epochs=source.epochs,
            seed=config.train.seed,
            workers=1,
            sg=1,
            hashfxn=emb._stable_hash,
        )
        return emb.embeddings_from_keyed_vectors(model.wv, data.vocab, seed=config.train.seed)[0]
    raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")


def token_lists(data) -> list[list[str]]:
    return data.tokenizer.tokenize_batch(collection_texts(data.collection))


def try_variant(variant: str, word2vec_seed: int, args, plan, base, data, tmp: Path) -> list[dict]:
    """Train every model with every seed on the variant's vectors; one row per model."""
    started = time.perf_counter()
    if variant == "table" and word2vec_seed == base.train.seed:
        matrix = data.embeddings
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            matrix = vectors(variant, with_seed(base, word2vec_seed), data)
    made = time.perf_counter() - started
    variant_data = dataclasses.replace(data, embeddings=matrix)
    rows = []
    for model in args.models:
        config = plan.experiment_config("wikiqa", model)
        seeds = []
        for seed in args.seeds:
            outcome = train(
                with_seed(config, seed), tmp / f"{variant}-{word2vec_seed}-{model}-{seed}", data=variant_data
            )
            seeds.append(
                {
                    "seed": seed,
                    "dev": outcome["best_metric"],
                    "dev_fused": outcome["fusion"]["value"] if outcome["fusion"] else None,
                    "best_epoch": outcome["best_epoch"],
                }
            )
        fused = [s["dev_fused"] for s in seeds]
        row = {
            "variant": variant,
            "word2vec_seed": word2vec_seed,
            "model": model,
            "metric": outcome["metric"],
            "vectors_seconds": made,
            "seeds": seeds,
            "mean_dev": statistics.mean(s["dev"] for s in seeds),
            "mean_dev_fused": statistics.mean(fused) if None not in fused else None,
        }
        rows.append(row)
        fused_text = f", fused {row['mean_dev_fused']:.4f}" if row["mean_dev_fused"] is not None else ""
        print(
            f"{variant:>9} word2vec seed {word2vec_seed:>3} {model:>8}: mean dev {row['metric']} {row['mean_dev']:.4f}"
            f"{fused_text} (" + ", ".join(f"seed {s['seed']} {s['dev']:.4f}" for s in seeds) + ")",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="benchmark", help="a benchmark config: a path, or a shipped name")
    parser.add_argument("--models", nargs="+", default=["arci", "mvlstm"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--word2vec-seeds", type=int, nargs="+", default=None, help="default: the config's seed")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--output", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    plan = load_plan(args.config, data_dir=args.data_dir, models=args.models, collections=["wikiqa"])
    base = plan.collections["wikiqa"]
    if base.embeddings.source != "word2vec":
        parser.error(f"{args.config}: WikiQA's embeddings are {base.embeddings.source!r}, not word2vec")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = prepare_data(base)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for word2vec_seed in args.word2vec_seeds or [base.train.seed]:
            for variant in args.variants:
                rows += try_variant(variant, word2vec_seed, args, plan, base, data, Path(tmp))
                if args.output:  # after every variant: an hour's run keeps what it finished
                    with atomic_write(args.output) as out:
                        json.dump(rows, out, indent=2)


if __name__ == "__main__":
    main()
