"""Shared fixtures: where the real collections live (integration tests), a tiny WikiQA-format collection written
to disk with a config that trains on it in seconds, a run folder trained on it, and test-wide torch settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

from neurank.config import config_from_dict

# The tests push tiny tensors, where intra-op threading costs more than it saves: tests/models ran in 8.9 s with
# one thread against 40.7 s with the default two on this 2-core machine.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_shared_vector_stores():
    """Every test starts without the frozen encoders' shared vector stores of the tests before it
    (`neurank.models.cedr.clear_shared_caches`), so a test's encoder calls and FLOP counts are its own."""
    yield
    cedr = sys.modules.get("neurank.models.cedr")
    if cedr is not None:
        cedr.clear_shared_caches()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real collections: $NEURANK_DATA, else ../shared/data beside the repository.

    Fails (never skips) when the directory is missing, so integration tests cannot pass by not running.
    """
    env = os.environ.get("NEURANK_DATA")
    # tests/conftest.py -> parents[1] is the repository root; shared/ sits beside it.
    path = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.fail(f"shared data directory {path} not found; set NEURANK_DATA to the folder holding the collections")
    return path


QUESTIONS = [
    (
        "who wrote hamlet",
        [
            "hamlet is a tragedy written by william shakespeare",
            "paris is the capital of france",
            "the thames flows through london",
        ],
    ),
    ("what is the capital of france", ["paris is the capital of france", "berlin is in germany", "hamlet is a play"]),
    (
        "where does the thames flow",
        ["the thames flows through london", "the nile is in africa", "paris has many museums"],
    ),
    (
        "who painted the mona lisa",
        ["the mona lisa was painted by leonardo da vinci", "picasso painted guernica", "rome is old"],
    ),
    (
        "what is the largest ocean",
        ["the pacific is the largest ocean", "the atlantic separates europe and america", "lakes are small"],
    ),
    (
        "who discovered penicillin",
        ["alexander fleming discovered penicillin in 1928", "newton described gravity", "cats are mammals"],
    ),
]


def write_wikiqa(folder, questions, start=0):
    """Write a WikiQA-format split: the first candidate of each question is its answer."""
    lines = ["QuestionID\tQuestion\tDocumentID\tDocumentTitle\tSentenceID\tSentence\tLabel"]
    for q, (question, sentences) in enumerate(questions, start=start):
        for s, sentence in enumerate(sentences):
            lines.append(f"Q{q}\t{question}\tD{q}\tTitle {q}\tD{q}-{s}\t{sentence}\t{int(s == 0)}")
    return "\r\n".join(lines) + "\r\n"


@pytest.fixture()
def tiny_data_dir(tmp_path):
    folder = tmp_path / "data" / "wikiqa"
    folder.mkdir(parents=True)
    (folder / "WikiQA-train.tsv").write_text(write_wikiqa(folder, QUESTIONS), encoding="utf-8")
    (folder / "WikiQA-dev.tsv").write_text(write_wikiqa(folder, QUESTIONS[:3], 100), encoding="utf-8")
    (folder / "WikiQA-test.tsv").write_text(write_wikiqa(folder, QUESTIONS[3:], 200), encoding="utf-8")
    return tmp_path / "data"


def tiny_config_for(data_dir, **model_config):
    """The tiny MatchPyramid training config over the collection in `data_dir` (3 epochs, CPU); `model_config`
    adds or replaces model options. The `tiny_config` fixture, and the serving tests' session-wide models."""
    return config_from_dict(
        {
            "model": "match_pyramid",
            "model_config": {
                "conv_channels": [4],
                "kernel_sizes": [[3, 3]],
                "pool_size": [2, 4],
                "interactions": ["cosine", "exact"],
                "dropout": 0.2,
                **model_config,
            },
            "data": {"collection": "wikiqa", "data_dir": str(data_dir), "max_doc_len": 20},
            "embeddings": {"source": "random", "dim": 8},
            "train": {
                "loss": "softmax",
                "negatives": 2,
                "batch_size": 2,
                "epochs": 3,
                "lr": 0.01,
                "patience": 5,
                "seed": 7,
                "device": "cpu",
            },
        }
    )


@pytest.fixture()
def tiny_config(tiny_data_dir):
    return tiny_config_for(tiny_data_dir)


@pytest.fixture()
def trained(tiny_config, tmp_path):
    """A MatchPyramid run folder (best.pt, last.pt, metrics.jsonl) trained for two epochs on the tiny collection."""
    import dataclasses

    from neurank.training import train

    config = dataclasses.replace(tiny_config, train=dataclasses.replace(tiny_config.train, epochs=2))
    train(config, tmp_path / "run", progress=False)
    return tmp_path / "run"


@pytest.fixture()
def fused_checkpoint(tiny_config, tmp_path):
    """A tiny MatchPyramid's best.pt that reads the BM25 score and is fused with it, as the shipped wikiqa config
    trains it."""
    import dataclasses

    from neurank.training import train

    config = dataclasses.replace(
        tiny_config,
        model_config={**tiny_config.model_config, "use_first_stage_score": True},
        train=dataclasses.replace(tiny_config.train, epochs=2, fusion=True),
    )
    train(config, tmp_path / "run", progress=False)
    return tmp_path / "run" / "best.pt"


# A random 2-layer BERT (hidden 32, 2 heads) with a word-piece vocabulary of 74 entries, written by the tests that need
# a Hugging Face folder (the cross-encoder and its training path); nothing is downloaded.
TINY_BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_BERT_WORDS = [
    "who",
    "wrote",
    "ham",
    "##let",
    "paris",
    "capital",
    "of",
    "france",
    "the",
    "is",
    "play",
    "what",
    "where",
]


def _write_tiny_bert(folder, max_position_embeddings: int = 64) -> None:
    """config.json, model.safetensors and tokenizer.json of a random 2-layer BERT (hidden 32, 2 heads)."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = [*TINY_BERT_SPECIALS, *TINY_BERT_WORDS, *letters, *(f"##{c}" for c in letters), *".,?!"]
    tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.add_special_tokens(TINY_BERT_SPECIALS)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=max_position_embeddings,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(str(folder))
    tokenizer.save(str(folder / "tokenizer.json"))


@pytest.fixture()
def write_tiny_bert():
    """The writer of the tiny BERT folder, for a test that needs other settings (`max_position_embeddings`)."""
    return _write_tiny_bert


@pytest.fixture()
def tiny_bert_folder(tmp_path):
    """A tiny BERT folder (see `_write_tiny_bert`)."""
    path = tmp_path / "tiny-bert"
    path.mkdir()
    _write_tiny_bert(path)
    return path


@pytest.fixture()
def cli(capsys):
    """`cli(*args)` runs `neurank ARGS` through `neurank.cli.main` in this process and returns (exit status, stdout,
    stderr with its line breaks folded)."""
    from neurank.cli import main

    def run(*args):
        try:
            main([str(a) for a in args])
            status = 0
        except SystemExit as exit_:
            status = exit_.code or 0
        captured = capsys.readouterr()
        return status, captured.out, " ".join(captured.err.split())  # rich wraps long error lines

    return run
