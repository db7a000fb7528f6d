"""Checkpoint fingerprints (issue 22): `save_checkpoint` records digests of the text encoder and the weights, and
every load verifies them, so a shuffled vocabulary or edited weights are refused by name; NaN or infinite weights
are refused naming the parameter; checkpoints written before fingerprints load as before, without a warning."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
import torch

from neurank.inference import load_reranker
from neurank.inference.checkpoint import (
    CheckpointError,
    CheckpointWarning,
    fingerprints,
    load_checkpoint,
    load_ranker,
    save_checkpoint,
    upgrade_checkpoint,
)

FORMAT_1 = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint-format-1.pt"


def rewrite(path: Path, change) -> Path:
    """Change a checkpoint the way a hand edit does: torch.save of the changed dict, its fingerprints kept."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    change(payload)
    torch.save(payload, path)
    return path


def shuffle_vocab(payload: dict) -> None:
    tokens = list(payload["vocab"]["tokens"])
    words = tokens[2:]  # PAD and UNK stay where they are: only the words move
    random.Random(0).shuffle(words)
    payload["vocab"]["tokens"] = tokens[:2] + words


def first_float(payload: dict) -> str:
    return next(name for name, tensor in payload["state_dict"].items() if tensor.is_floating_point())


def test_a_saved_checkpoint_carries_fingerprints_that_its_load_verifies(trained):
    raw = torch.load(trained / "best.pt", weights_only=True)
    assert raw["fingerprints"] == fingerprints(raw)
    assert set(raw["fingerprints"]["parameters"]) == set(raw["state_dict"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checkpoint as training wrote it loads without a word
        model, _, _ = load_ranker(trained / "best.pt")
    assert set(model.state_dict()) == set(raw["state_dict"])


def test_a_shuffled_vocabulary_is_refused_naming_the_file(trained):
    path = rewrite(trained / "best.pt", shuffle_vocab)
    with pytest.raises(CheckpointError) as info:
        load_ranker(path)
    assert str(info.value).startswith(f"{path}: the vocabulary or text encoder (entries vocab, tokenizer, text)")
    assert "does not match the fingerprint written with the checkpoint" in str(info.value)


def test_edited_weights_are_refused_naming_the_parameter(trained):
    name = first_float(torch.load(trained / "best.pt", weights_only=True))

    def nudge(payload):
        payload["state_dict"][name] = payload["state_dict"][name] + 1e-3

    path = rewrite(trained / "best.pt", nudge)
    with pytest.raises(CheckpointError, match=r"the weights do not match the fingerprint") as info:
        load_checkpoint(path)
    assert str(info.value).startswith(f"{path}: ") and f"(changed: {name})" in str(info.value)


@pytest.mark.parametrize(("value", "kind"), [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_non_finite_weights_are_refused_naming_the_parameter(trained, value, kind):
    name = first_float(torch.load(trained / "best.pt", weights_only=True))

    def spoil(payload):
        payload["state_dict"][name] = payload["state_dict"][name].clone().reshape(-1)
        payload["state_dict"][name][0] = value
        payload["state_dict"][name] = payload["state_dict"][name].reshape(payload["state_dict"][name].shape)
        payload.pop("fingerprints")  # as an older checkpoint: finiteness is checked with or without them

    path = rewrite(trained / "best.pt", spoil)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    numel = torch.load(path, weights_only=True)["state_dict"][name].numel()
    assert str(info.value).startswith(f"{path}: parameter {name!r} (state_dict) holds {kind} values (1 of {numel})")


@pytest.mark.parametrize("command", ["rerank", "export", "explain"])
def test_every_command_that_loads_a_checkpoint_refuses_an_edited_one(cli, trained, tiny_data_dir, command):
    path = rewrite(trained / "best.pt", shuffle_vocab)
    out = trained.parent / "out"
    args = {
        "rerank": ["rerank", path, "wikiqa", "--data-dir", tiny_data_dir, "--device", "cpu", "--output", out],
        "export": ["export", path, "--output", out],
        "explain": ["explain", path, "--query", "who wrote hamlet", "--doc", "hamlet is a play"],
    }[command]
    before = sorted(p.name for p in trained.parent.iterdir())
    status, _, err = cli(*args)
    assert status == 2
    assert err.startswith(f"error: {path}: the vocabulary or text encoder") and "Traceback" not in err
    assert sorted(p.name for p in trained.parent.iterdir()) == before


def test_checkpoints_without_fingerprints_load_without_a_warning(trained):
    path = rewrite(trained / "best.pt", lambda payload: payload.pop("fingerprints"))  # format 2 before issue 22
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_reranker(path, device="cpu")
    # Format 1 (neurank 0.1): only the warning about its format, none about fingerprints.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_ranker(FORMAT_1)
    assert [type(w.message) for w in caught] == [CheckpointWarning]
    assert "fingerprint" not in str(caught[0].message)


def test_upgrading_a_format_1_checkpoint_adds_fingerprints(tmp_path):
    assert "fingerprints" not in torch.load(FORMAT_1, weights_only=True)
    upgraded = upgrade_checkpoint(FORMAT_1, tmp_path / "upgraded.pt")
    assert upgraded["fingerprints"] == fingerprints(upgraded)
    rewrite(tmp_path / "upgraded.pt", shuffle_vocab)
    with pytest.raises(CheckpointError, match="the vocabulary or text encoder"):
        load_checkpoint(tmp_path / "upgraded.pt")


def test_fingerprints_cover_every_dtype_and_name(tmp_path):
    weights = {
        "a": torch.arange(6, dtype=torch.bfloat16).reshape(2, 3),
        "b": torch.tensor(3.0),  # a 0-d tensor
        "c": torch.zeros(0),
        "d": torch.tensor([True, False]),
    }
    base = fingerprints({"state_dict": weights, "vocab": {"tokens": ["<pad>", "<unk>", "x"]}})
    renamed = fingerprints({"state_dict": {"e" if k == "a" else k: v for k, v in weights.items()}})
    assert renamed["state_dict"] != base["state_dict"]
    reshaped = fingerprints({"state_dict": {**weights, "a": weights["a"].reshape(3, 2)}})
    assert reshaped["parameters"]["a"] != base["parameters"]["a"]  # same bytes, another shape
    save_checkpoint(tmp_path / "x.pt", {"state_dict": weights, "vocab": {"tokens": ["<pad>", "<unk>", "x"]}})
    assert load_checkpoint(tmp_path / "x.pt")["fingerprints"]["state_dict"] == base["state_dict"]
