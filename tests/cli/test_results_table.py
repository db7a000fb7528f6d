"""`neurank benchmark`: the command line it records in the table, and the pages it writes the tables into (the
training itself is tested in tests/workflows/test_results_table.py)."""

import yaml

from neurank.cli.results_table import _without_note
from neurank.workflows import results_table
from neurank.workflows.results_table import HEADLINE_END, HEADLINE_START, RESULTS_END, RESULTS_START


def test_the_benchmark_table_shows_its_command_without_the_notes_text():
    args = ["configs/benchmark.yaml", "--note", "two processes, 1 thread each", "--page", "README.md"]
    assert _without_note(args) == ["configs/benchmark.yaml", "--note", "'...'", "--page", "README.md"]
    assert _without_note(["--note=shared machine", "--quick"]) == ["--note '...'", "--quick"]


def test_benchmark_writes_the_table_into_every_page(cli, monkeypatch, tmp_path, tiny_config):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_config.to_dict()))
    plan = {
        "collections": {"wikiqa": {"config": "base.yaml", "measures": ["AP"]}},
        "models": {"knrm": {}},
        "seeds": [1],
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(plan))
    trained = []
    monkeypatch.setattr(
        results_table, "run_benchmark", lambda plan, runs_dir, log, reuse: trained.append(runs_dir) or []
    )
    models, readme = tmp_path / "models.md", tmp_path / "README.md"
    models.write_text(f"# Models\n{RESULTS_START}\nold tables\n{RESULTS_END}\n")
    readme.write_text(f"# neurank\n{HEADLINE_START}\nold headline\n{HEADLINE_END}\n")
    output = tmp_path / "results.md"

    status, out, err = cli(
        "benchmark",
        tmp_path / "bench.yaml",
        "--output",
        output,
        "--runs-dir",
        tmp_path / "runs",
        "--page",
        models,
        "--page",
        readme,
        "--note",
        "a shared machine",
    )
    assert status == 0, err
    assert trained == [tmp_path / "runs"]
    # The command as given to `main`, not this process's sys.argv, with the note's text elided.
    made_by = (
        f"Made by `neurank benchmark {tmp_path / 'bench.yaml'} --output {output} --runs-dir {tmp_path / 'runs'} "
        f"--page {models} --page {readme} --note '...'`"
    )
    assert made_by in output.read_text() and made_by in out
    assert made_by in models.read_text() and "old tables" not in models.read_text()
    assert "old headline" not in readme.read_text() and readme.read_text().startswith("# neurank\n")


def test_benchmark_reads_the_shipped_config_by_default(cli, monkeypatch, tmp_path):
    plans = []
    monkeypatch.setattr(results_table, "run_benchmark", lambda plan, runs_dir, log, reuse: plans.append(plan) or [])
    status, _, err = cli("benchmark", "--quick", "--output", tmp_path / "results.md", "--runs-dir", tmp_path / "runs")
    assert status == 0, err
    assert set(plans[0].collections) >= {"wikiqa", "nfcorpus"} and len(plans[0].seeds) == 1


def test_benchmark_pretrained_quick_needs_no_model_folder_and_seeds_replace_model_seeds(cli, monkeypatch, tmp_path):
    plans = []
    monkeypatch.setattr(results_table, "run_benchmark", lambda plan, runs_dir, log, reuse: plans.append(plan) or [])
    common = ["--output", tmp_path / "results.md", "--runs-dir", tmp_path / "runs"]
    status, _, err = cli("benchmark", "benchmark_pretrained", "--quick", *common)
    assert status == 0, err
    quick = plans[-1]
    assert quick.seeds == [1] and "cross_encoder" in quick.models
    assert all("hf_model" not in quick.experiment_config("wikiqa", m).model_config for m in quick.models)
    status, _, err = cli("benchmark", "benchmark_pretrained", "--seeds", "4,5", *common)
    assert status == 0, err
    assert plans[-1].seeds_for("cross_encoder") == [4, 5] == plans[-1].seeds_for("compare_aggregate")
    assert plans[-1].experiment_config("wikiqa", "cross_encoder").model_config["hf_model"] == "models/all-minilm-l6-v2"
