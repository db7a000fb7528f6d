"""`neurank train`, `rerank`, `experiment` and `embeddings train` on the tiny collection, and their error messages."""

import json

import yaml

from neurank.cli import main
from neurank.collections.trec import read_run


def run_cli(capsys, *args):
    try:
        main([str(a) for a in args])
        status = 0
    except SystemExit as exit_:
        status = exit_.code or 0
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def write_config(tmp_path, tiny_config):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config.to_dict()))
    return path


def test_train_then_rerank_then_evaluate(capsys, tmp_path, tiny_config, tiny_data_dir):
    config = write_config(tmp_path, tiny_config)
    status, out, err = run_cli(capsys, "train", config, "train.epochs=2", "--output-dir", tmp_path / "run", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["epochs"] == 2 and (tmp_path / "run" / "best.pt").is_file()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2

    status, out, err = run_cli(
        capsys, "rerank", tmp_path / "run" / "best.pt", "wikiqa", "--split", "test", "--output", tmp_path / "test.run",
        "--data-dir", tiny_data_dir, "--device", "cpu", "--json",
    )
    assert status == 0, err
    assert json.loads(out)["results"] == 9  # 3 test questions x 3 candidates
    assert {r.query_id for r in read_run(tmp_path / "test.run")} == {"1", "2", "3"}


def test_experiment_reports_bm25_and_the_model(capsys, tmp_path, tiny_config):
    config = write_config(tmp_path, tiny_config)
    status, out, err = run_cli(capsys, "experiment", config, "train.epochs=1", "--seed-list", "1,2", "--output-dir", tmp_path / "exp", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert result["seeds"] == [1, 2] and len(result["per_seed"]) == 2
    assert set(result["bm25"]) == {"AP", "RR", "nDCG@10"}
    assert (tmp_path / "exp" / "results.md").read_text().startswith("| run |")


def test_config_and_checkpoint_errors_are_one_line(capsys, tmp_path, tiny_config, tiny_data_dir):
    config = write_config(tmp_path, tiny_config)
    status, _, err = run_cli(capsys, "train", config, "train.learning_rate=1", "--output-dir", tmp_path / "x")
    assert status == 2 and "unknown key 'learning_rate'" in err and "Traceback" not in err
    status, _, err = run_cli(capsys, "train", config, "model=transformer9000", "--output-dir", tmp_path / "x")
    assert status == 2 and "transformer9000" in err
    (tmp_path / "bad.pt").write_text("nope")
    status, _, err = run_cli(capsys, "rerank", tmp_path / "bad.pt", "wikiqa", "--output", tmp_path / "r", "--data-dir", tiny_data_dir)
    assert status == 2 and "bad.pt" in err


def test_embeddings_train_writes_word2vec_text(capsys, tmp_path, tiny_data_dir):
    output = tmp_path / "vectors.txt"
    status, out, err = run_cli(capsys, "embeddings", "train", "wikiqa", "--output", output, "--dim", 8, "--epochs", 1, "--data-dir", tiny_data_dir, "--json")
    assert status == 0, err
    header = output.read_text().splitlines()[0].split()
    assert int(header[0]) == json.loads(out)["words"] and header[1] == "8"
