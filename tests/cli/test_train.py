"""`neurank train`, then `rerank` of what it trained, and `neurank experiment` on the tiny collection; their
one-line errors."""

import json

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
