"""`neurank train`, then `rerank` of what it trained, and `neurank experiment` on the tiny collection; their
one-line errors."""

import json

import pytest
import yaml

from neurank.collections.trec import read_run


def write_config(tmp_path, tiny_config):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config.to_dict()))
    return path


def test_train_then_rerank(cli, tmp_path, tiny_config, tiny_data_dir):
    config = write_config(tmp_path, tiny_config)
    status, out, err = cli("train", config, "train.epochs=2", "--output-dir", tmp_path / "run", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["epochs"] == 2 and (tmp_path / "run" / "best.pt").is_file()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2

    status, out, err = cli(
        "rerank",
        tmp_path / "run" / "best.pt",
        "wikiqa",
        "--split",
        "test",
        "--output",
        tmp_path / "test.run",
        "--data-dir",
        tiny_data_dir,
        "--device",
        "cpu",
        "--json",
    )
    assert status == 0, err
    assert json.loads(out)["results"] == 9  # 3 test questions x 3 candidates
    assert {r.query_id for r in read_run(tmp_path / "test.run")} == {"1", "2", "3"}


def test_experiment_reports_bm25_and_the_model(cli, tmp_path, tiny_config):
    config = write_config(tmp_path, tiny_config)
    status, out, err = cli(
        "experiment", config, "train.epochs=1", "--seed-list", "1,2", "--output-dir", tmp_path / "exp", "--json"
    )
    assert status == 0, err
    result = json.loads(out)
    assert result["seeds"] == [1, 2] and len(result["per_seed"]) == 2
    assert set(result["bm25"]) == {"AP", "RR", "nDCG@10"}
    assert (tmp_path / "exp" / "results.md").read_text().startswith("| run |")


def test_config_and_checkpoint_errors_are_one_line(cli, tmp_path, tiny_config, tiny_data_dir):
    config = write_config(tmp_path, tiny_config)
    status, _, err = cli("train", config, "train.learning_rate=1", "--output-dir", tmp_path / "x")
    assert status == 2 and "unknown key 'learning_rate'" in err and "Traceback" not in err
    status, _, err = cli("train", config, "model=transformer9000", "--output-dir", tmp_path / "x")
    assert status == 2 and "transformer9000" in err
    (tmp_path / "bad.pt").write_text("nope")
    status, _, err = cli(
        "rerank", tmp_path / "bad.pt", "wikiqa", "--output", tmp_path / "r", "--data-dir", tiny_data_dir
    )
    assert status == 2 and "bad.pt" in err


def test_the_training_summary_gives_the_dev_value_of_what_the_checkpoint_ranks_with(cli, tmp_path, tiny_config):
    config = write_config(tmp_path, tiny_config)
    status, out, err = cli("train", config, "train.epochs=1", "train.fusion=true", "--output-dir", tmp_path / "f")
    assert status == 0, err
    best, ranks = out.strip().splitlines()[-2:]
    assert best.startswith("best dev AP ") and "at epoch 1 (1 epochs," in best
    assert ranks.startswith(f"{tmp_path / 'f' / 'best.pt'} ranks with the model fused with BM25 (alpha ")
    assert ": dev AP " in ranks and " fused, " in ranks and ranks.endswith(" unfused")
    status, out, err = cli("train", config, "train.epochs=1", "--output-dir", tmp_path / "m")
    assert status == 0, err
    assert (
        out.strip().splitlines()[-1].endswith("ranks with the model's scores alone (no fusion): dev AP " + best[12:18])
    )
    status, out, err = cli("train", config, "train.epochs=0", "--output-dir", tmp_path / "none", "--json")
    assert status == 2 and "train.epochs: expected an integer 1 or more, found 0" in err
    assert out == "" and not (tmp_path / "none").exists()


def write_task(tmp_path, tiny_config):
    """The tiny config as a task config whose `models:` section holds MatchPyramid's tiny options and KNRM's."""
    values = tiny_config.to_dict()
    values["models"] = {"match_pyramid": values.pop("model_config"), "knrm": {"n_kernels": 5}}
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.slow  # two models, one seed, one epoch each, then the chosen model on test (about 3 s)
def test_experiment_chooses_among_models_on_dev_then_tests_the_choice(cli, tmp_path, tiny_config):
    task = write_task(tmp_path, tiny_config)
    exp = tmp_path / "exp"
    status, out, err = cli(
        "experiment", task, "train.epochs=1", "--models", "knrm,match_pyramid", "--seed-list", "1", "--output-dir", exp
    )
    assert status == 0, err
    saved = json.loads((exp / "results.json").read_text())
    chosen = saved["chosen"]
    assert [c["model"] for c in saved["candidates"]] == ["knrm", "match_pyramid"]
    assert f"chosen on dev: {chosen}" in out and f"test run of its best-dev seed (test): {exp / 'best.test.run'}" in out
    assert (exp / "best.test.run").read_text() == (exp / chosen / "seed-1" / "test.run").read_text()

    status, out, err = cli(
        "experiment", task, "train.epochs=1", "--models", "knrm", "--seed-list", "1", "--output-dir", tmp_path / "dev",
        "--dev-only", "--json",
    )  # fmt: skip
    assert status == 0, err
    result = json.loads(out)
    assert result["chosen"] == "knrm" and result["test"] is None and result["best_run"] is None
    assert (
        not list((tmp_path / "dev").glob("*.run")) and not (tmp_path / "dev" / "knrm" / "seed-1" / "test.run").exists()
    )


def test_experiment_candidates_are_checked_before_anything_trains(cli, tmp_path, tiny_config):
    task = write_task(tmp_path, tiny_config)
    for args, message in (
        (["--models", "knrm,tk"], "models: no entry for model 'tk'"),
        (["--models", "knrm,knrm"], "'knrm' is named twice"),
        (["model=knrm", "--models", "knrm"], "choose the models with the list of candidates"),
        (["--models", "knrm", "models.knrm.n_kernel=3"], "model_config of 'knrm': unknown option 'n_kernel'"),
    ):
        status, _, err = cli("experiment", task, *args, "--seed-list", "1", "--output-dir", tmp_path / "x")
        assert status == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "x").exists()


def snapshot(folder):
    """Every file under `folder` with its bytes and mtime ({} when there is no folder): "no file changed"."""
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# Settings that cannot train: each is refused before anything is read or written, naming the key and the range
# (issue 22: epochs 0 or -1 and patience 0 "finished" and named a best.pt that did not exist; the others failed
# with messages that named no key, or not at all).
BAD_SETTINGS = [
    ("train.epochs=0", "train.epochs: expected an integer 1 or more, found 0"),
    ("train.epochs=-1", "train.epochs: expected an integer 1 or more, found -1"),
    ("train.patience=0", "train.patience: expected an integer 1 or more, found 0"),
    ("train.lr=-1", "train.lr: expected a finite number above 0, found -1.0"),
    ("train.lr=0", "train.lr: expected a finite number above 0, found 0.0"),
    ("train.lr=.nan", "train.lr: expected a finite number above 0, found nan"),
    ("train.negatives=0", "train.negatives: expected an integer 1 or more, found 0"),
    ("train.batch_size=0", "train.batch_size: expected an integer 1 or more, found 0"),
    ("train.eval_batch_size=0", "train.eval_batch_size: expected an integer 1 or more, found 0"),
    ("train.warmup_steps=-1", "train.warmup_steps: expected an integer 0 or more, found -1"),
    ("train.grad_clip=-1", "train.grad_clip: expected a finite number 0 or more, found -1.0"),
    ("data.candidates=0", "data.candidates: expected an integer 1 or more, found 0"),
    ("data.max_doc_len=0", "data.max_doc_len: expected an integer 1 or more, found 0"),
    ("data.max_query_len=-3", "data.max_query_len: expected an integer 1 or more, found -3"),
    ("data.folds=0", "data.folds: expected an integer 2 or more, found 0"),
    ("data.fold=5", "data.fold: expected a fold from 0 to 4 (folds is 5), found 5"),
    ("data.max_train_queries=0", "data.max_train_queries: expected an integer 1 or more or null, found 0"),
    ("embeddings.dim=0", "embeddings.dim: expected an integer 1 or more, found 0"),
]


@pytest.mark.parametrize(("override", "message"), BAD_SETTINGS, ids=[o for o, _ in BAD_SETTINGS])
def test_a_setting_that_cannot_train_names_the_key_and_the_range(cli, tmp_path, tiny_config, override, message):
    config = write_config(tmp_path, tiny_config)
    status, out, err = cli("train", config, override, "--output-dir", tmp_path / "out")
    assert status == 2 and out == ""
    assert err == f"error: {config}: {message}"
    assert not (tmp_path / "out").exists()


def test_resume_without_last_pt_is_an_error_and_writes_nothing(cli, tmp_path, tiny_config):
    config = write_config(tmp_path, tiny_config)
    (tmp_path / "empty").mkdir()
    status, out, err = cli("train", config, "--output-dir", tmp_path / "empty", "--resume")
    assert status == 2 and out == ""
    assert err == (
        f"error: {tmp_path / 'empty' / 'last.pt'}: not found, so --resume has nothing to continue; start the run "
        "without --resume"
    )
    assert snapshot(tmp_path / "empty") == {}


def test_resume_of_a_finished_run_with_a_changed_config_names_the_keys(cli, tmp_path, tiny_config, trained):
    # A finished run (every epoch trained): the resume must not report the old result for another config.
    config = write_config(tmp_path, tiny_config)
    before = snapshot(trained)
    status, out, err = cli("train", config, "train.epochs=2", "train.seed=5", "--output-dir", trained, "--resume")
    assert status == 2 and out == ""
    assert err.startswith(f"error: {trained / 'last.pt'}: cannot resume with a changed config (")
    assert "train.seed: 7 in last.pt, 5 now" in err
    assert snapshot(trained) == before


def test_an_empty_config_starts_nothing(cli, tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    status, out, err = cli("train", empty, "--output-dir", tmp_path / "out")
    assert status == 2 and out == "" and err.startswith(f"error: {empty}: the config is empty")
    assert not (tmp_path / "out").exists()


def test_a_non_utf8_metrics_log_is_named_on_resume(cli, tmp_path, tiny_config, trained):
    config = write_config(tmp_path, tiny_config)
    metrics = trained / "metrics.jsonl"
    metrics.write_bytes(metrics.read_bytes() + b"\xff\xfe\n")
    before = snapshot(trained)
    status, out, err = cli("train", config, "train.epochs=2", "--output-dir", trained, "--resume")
    assert status == 2
    assert err == f"error: {metrics}:3: expected UTF-8 text (one JSON record per line), found byte 0xff"
    assert snapshot(trained) == before
