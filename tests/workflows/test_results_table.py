"""`neurank benchmark` end to end on the tiny collection: every number in the table comes out of the run."""

import dataclasses
import json
import os

import pytest
import yaml

from neurank.config import ConfigError
from neurank.workflows.results_table import load_plan, run_benchmark, write_results


def write_plan(tmp_path, tiny_config, models):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny_config.to_dict()))
    plan = {
        "collections": {"wikiqa": {"config": "base.yaml", "measures": ["AP", "RR"]}},
        "models": models,
        "seeds": [1, 2, 3],
        "quick": {"seeds": [1, 2], "overrides": ["train.epochs=1"]},
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(plan))
    return tmp_path / "bench.yaml"


def test_quick_benchmark_writes_the_table(tmp_path, tiny_config):
    path = write_plan(
        tmp_path, tiny_config, {"match_pyramid": {"conv_channels": [4], "kernel_sizes": [[3, 3]]}, "knrm": {}}
    )
    plan = load_plan(path, quick=True)
    assert plan.seeds == [1, 2] and plan.collections["wikiqa"].train.epochs == 1
    results = run_benchmark(plan, tmp_path / "runs", log=lambda line: None)
    write_results(results, plan, tmp_path / "results.md", "neurank benchmark bench.yaml --quick", 1.0)
    text = (tmp_path / "results.md").read_text()
    assert "| BM25 |" in text and "| knrm |" in text and "| match_pyramid |" in text
    data = json.loads((tmp_path / "results.json").read_text())
    model = data["results"][0]["models"][0]
    assert len(model["per_seed"]) == 2 and model["pairs_per_second"] > 0
    # The mean in the table is the mean of the per-seed values that were measured.
    assert model["mean"]["AP"] == pytest.approx(sum(r["AP"] for r in model["per_seed"]) / 2)
    assert (tmp_path / "runs" / "wikiqa" / "knrm" / "seed-2" / "best.pt").is_file()
    # When the seeds ran, from their own results: the first start comes before the last finish.
    assert model["started_at"] < model["finished_at"]
    assert "UTC: " in text and "min of wall-clock time from the first seed's start" in text


def test_a_seed_result_without_its_finish_time_takes_the_files(tmp_path, tiny_config):
    path = write_plan(tmp_path, tiny_config, {"knrm": {}})
    plan = load_plan(path, quick=True)
    run_benchmark(plan, tmp_path / "runs", log=lambda line: None)
    seed_file = tmp_path / "runs" / "wikiqa" / "knrm" / "seed-1" / "seed.json"
    saved = json.loads(seed_file.read_text())
    assert saved["result"]["finished_at"] > 0
    del saved["result"]["finished_at"]  # as written by neurank before the field existed
    seed_file.write_text(json.dumps(saved))
    os.utime(seed_file, (1_700_000_000, 1_700_000_000))
    again = run_benchmark(plan, tmp_path / "runs", log=lambda line: None)
    seed_1 = again[0].models[0]
    assert seed_1.started_at < 1_700_000_000 <= seed_1.finished_at


def test_unknown_models_are_named(tmp_path, tiny_config):
    path = write_plan(tmp_path, tiny_config, {"bert": {}})
    with pytest.raises(ConfigError, match="unknown model 'bert'"):
        load_plan(path)


def test_finished_seeds_are_read_back_and_a_changed_config_retrains(tmp_path, tiny_config):
    path = write_plan(tmp_path, tiny_config, {"knrm": {}})
    plan = load_plan(path, quick=True)
    first = run_benchmark(plan, tmp_path / "runs", log=lambda line: None)
    lines = []
    import neurank.workflows.results_table as benchmark_module

    def no_preparing(config):
        raise AssertionError("nothing to train: the data must not be prepared")

    original, benchmark_module.prepare_data = benchmark_module.prepare_data, no_preparing
    try:
        again = run_benchmark(plan, tmp_path / "runs", log=lines.append)
    finally:
        benchmark_module.prepare_data = original
    assert all("earlier run" in line for line in lines) and len(lines) == 2
    assert again[0].models[0].per_seed == first[0].models[0].per_seed
    # Another learning rate is another experiment: nothing is read back.
    other = load_plan(path, quick=True)
    base = other.collections["wikiqa"]
    other.collections["wikiqa"] = dataclasses.replace(base, train=dataclasses.replace(base.train, lr=0.5))
    lines = []
    run_benchmark(other, tmp_path / "runs", log=lines.append)
    assert not any("earlier run" in line for line in lines)
    lines = []
    run_benchmark(plan, tmp_path / "runs", log=lines.append, reuse=False)
    assert not any("earlier run" in line for line in lines)


def test_a_collection_can_carry_its_own_overrides(tmp_path, tiny_config):
    path = write_plan(tmp_path, tiny_config, {"knrm": {}})
    raw = yaml.safe_load(path.read_text())
    raw["collections"]["wikiqa"]["overrides"] = ["train.epochs=7", "train.lr=0.01"]
    path.write_text(yaml.safe_dump(raw))
    assert load_plan(path).collections["wikiqa"].train.epochs == 7
    quick = load_plan(path, quick=True).collections["wikiqa"].train
    assert quick.epochs == 1 and quick.lr == 0.01  # quick's overrides come last


RESULTS_MD = """# Results

Made by x.

## wikiqa (test, 3 queries)

| model | AP | RR | train s/seed | pairs/s |
|---|---:|---:|---:|---:|
| BM25 | 0.5000 | 0.5500 | | |
| knrm | 0.6000 ± 0.0100†‡ | 0.6500 ± 0.0200 | 3 | 1,000 |
| drmm | 0.4000 ± 0.0300 | 0.4500 ± 0.0400 | 1 | 2,000 |

Set for wikiqa in the benchmark config, in place of the defaults: knrm with options dropout 0.1.

## nfcorpus (test, 2 queries)

| model | nDCG@10 | AP | train s/seed | pairs/s |
|---|---:|---:|---:|---:|
| BM25 | 0.3000 | 0.1000 | | |
| drmm | 0.3200 ± 0.0010† | 0.1100 ± 0.0020 | 2 | 3,000 |
"""


def test_the_full_tables_are_replaced_between_the_results_markers(tmp_path):
    from neurank.workflows.results_table import RESULTS_END, RESULTS_START, update_results_page

    page = tmp_path / "models.md"
    page.write_text(f"# Models\n\nbefore\n{RESULTS_START}\nold table\n{RESULTS_END}\nafter\n")
    update_results_page(page, RESULTS_MD)
    text = page.read_text()
    assert "old table" not in text and "### wikiqa (test, 3 queries)" in text and "### nfcorpus" in text
    assert "| knrm | 0.6000 ± 0.0100†‡ | 0.6500 ± 0.0200 | 3 | 1,000 |" in text and "dropout 0.1" in text
    assert text.startswith("# Models\n\nbefore\n") and text.endswith(f"{RESULTS_END}\nafter\n")
    assert "# Results" not in text  # the page title stays in docs/results.md
    update_results_page(page, RESULTS_MD)  # rerunning the command writes the same page
    assert page.read_text() == text


def test_the_headline_table_copies_each_collections_first_measure(tmp_path):
    from neurank.workflows.results_table import HEADLINE_END, HEADLINE_START, update_results_page

    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n{HEADLINE_START}\nold\n{HEADLINE_END}\nafter\n")
    update_results_page(readme, RESULTS_MD)
    assert readme.read_text().splitlines()[2:8] == [
        "| model | wikiqa AP | nfcorpus nDCG@10 |",
        "|---|---:|---:|",
        "| BM25 | 0.5000 | 0.3000 |",
        "| knrm | 0.6000 ± 0.0100†‡ |  |",
        "| drmm | 0.4000 ± 0.0300 | 0.3200 ± 0.0010† |",
        "",
    ]
    assert "wikiqa: test, 3 queries; nfcorpus: test, 2 queries" in readme.read_text()
    assert readme.read_text().endswith(f"{HEADLINE_END}\nafter\n") and "old" not in readme.read_text()


def test_a_page_can_carry_both_tables(tmp_path):
    from neurank.workflows.results_table import (
        HEADLINE_END,
        HEADLINE_START,
        RESULTS_END,
        RESULTS_START,
        update_results_page,
    )

    page = tmp_path / "page.md"
    page.write_text(f"{HEADLINE_START}\n{HEADLINE_END}\nmiddle\n{RESULTS_START}\n{RESULTS_END}\n")
    update_results_page(page, RESULTS_MD)
    text = page.read_text()
    assert text.index("| model | wikiqa AP | nfcorpus nDCG@10 |") < text.index("middle") < text.index("### wikiqa")


@pytest.mark.parametrize("case", ["no markers", "a start without its end", "the end before the start"])
def test_a_page_without_its_markers_is_refused_and_left_alone(tmp_path, case):
    from neurank.workflows.results_table import HEADLINE_END, HEADLINE_START, RESULTS_START, update_results_page

    content = {
        "no markers": "# Title without markers\n",
        "a start without its end": f"{RESULTS_START}\nno end\n",
        "the end before the start": f"{HEADLINE_END}\n{HEADLINE_START}\n",
    }[case]
    page = tmp_path / "page.md"
    page.write_text(content)
    with pytest.raises(ConfigError, match="marker"):
        update_results_page(page, RESULTS_MD)
    assert page.read_text() == content


def test_a_subset_of_collections_can_be_run(tmp_path, tiny_config):
    path = write_plan(tmp_path, tiny_config, {"knrm": {}})
    assert list(load_plan(path, collections=["wikiqa"]).collections) == ["wikiqa"]
    with pytest.raises(ConfigError, match="collection 'msmarco' is not in the benchmark config"):
        load_plan(path, collections=["msmarco"])


def test_seeds_can_be_chosen_on_the_command_line(tmp_path, tiny_config):
    path = write_plan(tmp_path, tiny_config, {"knrm": {}})
    assert load_plan(path).seeds == [1, 2, 3]
    assert load_plan(path, seeds=[3]).seeds == [3] and load_plan(path, quick=True, seeds=[5]).seeds == [5]


def test_a_collection_can_set_its_own_model_options(tmp_path, tiny_config):
    path = write_plan(tmp_path, tiny_config, {"knrm": {"n_kernels": 11}, "drmm": {}})
    plan = yaml.safe_load(path.read_text())
    plan["collections"]["wikiqa"]["models"] = {"knrm": {"n_kernels": 5}}
    path.write_text(yaml.safe_dump(plan))
    loaded = load_plan(path, quick=True)
    assert loaded.model_options("wikiqa", "knrm") == {"n_kernels": 5}
    assert loaded.model_options("wikiqa", "drmm") == {} and loaded.models["knrm"] == {"n_kernels": 11}
    results = run_benchmark(loaded, tmp_path / "runs", log=lambda line: None)
    saved = json.loads((tmp_path / "runs" / "wikiqa" / "knrm" / "seed-1" / "seed.json").read_text())
    assert saved["config"]["model_config"]["n_kernels"] == 5 and len(results[0].models) == 2
    plan["collections"]["wikiqa"]["models"] = {"tk": {}}
    path.write_text(yaml.safe_dump(plan))
    with pytest.raises(ConfigError, match="'tk', which is not in the benchmark's models"):
        load_plan(path)
    plan["collections"]["wikiqa"] = {"config": "base.yaml", "model": {}}
    path.write_text(yaml.safe_dump(plan))
    with pytest.raises(ConfigError, match="unknown key 'model'"):
        load_plan(path)


def test_a_collection_can_set_one_models_training_options(tmp_path, tiny_config):
    path = write_plan(tmp_path, tiny_config, {"knrm": {}, "drmm": {}})
    plan = yaml.safe_load(path.read_text())
    plan["collections"]["wikiqa"]["train"] = {"knrm": {"epochs": 2, "lr": "3e-3"}}
    path.write_text(yaml.safe_dump(plan))
    # --quick's training options win over a model's own: the smoke test stays one epoch; the lr still applies.
    quick = load_plan(path, quick=True).experiment_config("wikiqa", "knrm")
    assert (quick.train.epochs, quick.train.lr) == (1, 3e-3)
    loaded = load_plan(path, seeds=[1])
    knrm, drmm = loaded.experiment_config("wikiqa", "knrm"), loaded.experiment_config("wikiqa", "drmm")
    # Only knrm's training changes (tiny_config trains 3 epochs with patience 5).
    assert (knrm.train.epochs, knrm.train.lr, drmm.train.epochs, drmm.train.lr) == (2, 3e-3, 3, tiny_config.train.lr)
    assert knrm.model == "knrm" and knrm.data == drmm.data
    results = run_benchmark(loaded, tmp_path / "runs", log=lambda line: None)
    seed_dir = tmp_path / "runs" / "wikiqa"
    saved = json.loads((seed_dir / "knrm" / "seed-1" / "seed.json").read_text())
    assert saved["config"]["train"]["epochs"] == 2 and saved["config"]["train"]["lr"] == 3e-3
    assert len((seed_dir / "knrm" / "seed-1" / "metrics.jsonl").read_text().splitlines()) == 2
    assert len((seed_dir / "drmm" / "seed-1" / "metrics.jsonl").read_text().splitlines()) == 3
    assert sorted(m.model for m in results[0].models) == ["drmm", "knrm"]
    write_results(results, loaded, tmp_path / "results.md", "neurank benchmark bench.yaml --quick", 1.0)
    assert (
        "Set for wikiqa in the benchmark config, in place of the defaults: knrm with training epochs 2, lr 0.003."
        in (tmp_path / "results.md").read_text()
    )
    for bad, message in (
        ({"knrm": {"epoch": 2}}, "wikiqa: train: knrm: unknown key 'epoch'"),
        ({"knrm": {"patience": "many"}}, r"wikiqa: train: knrm\.patience: expected int, found 'many'"),
        ({"knrm": 2}, "the training options of 'knrm' must be a mapping"),
        ({"tk": {"epochs": 2}}, "sets training options of 'tk', which is not in the benchmark's models"),
    ):
        plan["collections"]["wikiqa"]["train"] = bad
        path.write_text(yaml.safe_dump(plan))
        with pytest.raises(ConfigError, match=message):
            load_plan(path)


@pytest.mark.slow  # runs experiments/model_options.py in a process: five trainings (about 13 s)
def test_the_options_experiment_tries_training_options_on_dev(tmp_path, tiny_config):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "experiments" / "model_options.py"
    path = write_plan(tmp_path, tiny_config, {"knrm": {}})
    output = tmp_path / "options.json"
    completed = subprocess.run(
        [
            sys.executable,
            str(script),
            "--config",
            str(path),
            "--model",
            "knrm",
            "--collection",
            "wikiqa",
            "--seeds",
            "1",
            "--variant",
            '{"train": {"epochs": 1}}',
            "--variant",
            '{"n_kernels": 5, "train": {"epochs": 2}}',
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    rows = json.loads(output.read_text())
    assert [row["options"] for row in rows] == [{"train": {"epochs": 1}}, {"n_kernels": 5, "train": {"epochs": 2}}]
    # The variant's training options are the ones trained with (tiny_config trains 3 epochs, patience 5).
    assert [row["seeds"][0]["epochs"] for row in rows] == [1, 2]
    assert 0 <= rows[1]["mean_dev"] <= 1
    refused = subprocess.run(
        [
            sys.executable,
            str(script),
            "--config",
            str(path),
            "--model",
            "knrm",
            "--collection",
            "wikiqa",
            "--variant",
            '{"train": 3}',
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert refused.returncode == 2 and 'its "train" an object' in refused.stderr
