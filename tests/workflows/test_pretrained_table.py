"""The results table with pretrained-transformer rankers (issue 20): seeds per model, the encoder and parameter
columns, the p-value against the best word model, and the shipped benchmark_pretrained.yaml."""

import json
import shutil
import statistics
from types import SimpleNamespace

import pytest
import yaml
from tests.conftest import QUESTIONS, _write_tiny_bert, tiny_config_for, write_wikiqa

from neurank.config import ConfigError
from neurank.evaluation import compare_values
from neurank.inference.checkpoint import load_ranker
from neurank.workflows import results_table
from neurank.workflows.results_table import (
    TINY_ENCODER,
    headline_markdown,
    load_plan,
    results_markdown,
    run_benchmark,
    write_results,
)


def write_bench(folder, base_config, models, **extra):
    (folder / "base.yaml").write_text(yaml.safe_dump(base_config.to_dict()))
    plan = {
        "collections": {"wikiqa": {"config": "base.yaml", "measures": ["AP", "RR"], "overrides": ["train.epochs=1"]}},
        "models": models,
        "seeds": [1, 2],
        **extra,
    }
    (folder / "bench.yaml").write_text(yaml.safe_dump(plan))
    return folder / "bench.yaml"


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """One tiny table, trained once for this module: knrm (word model, seeds 1 and 2), a cross-encoder over a tiny
    BERT folder and a frozen CEDR-KNRM over the tiny random BERT (seed 1 each, by model_seeds)."""
    tmp = tmp_path_factory.mktemp("pretrained")
    data = tmp / "data" / "wikiqa"
    data.mkdir(parents=True)
    (data / "WikiQA-train.tsv").write_text(write_wikiqa(data, QUESTIONS), encoding="utf-8")
    (data / "WikiQA-dev.tsv").write_text(write_wikiqa(data, QUESTIONS[:3], 100), encoding="utf-8")
    (data / "WikiQA-test.tsv").write_text(write_wikiqa(data, QUESTIONS[3:], 200), encoding="utf-8")
    bert = tmp / "tiny-bert"
    bert.mkdir()
    _write_tiny_bert(bert)
    models = {"knrm": {}, "cross_encoder": {"hf_model": str(bert)}, "cedr_knrm": {}}
    path = write_bench(tmp, tiny_config_for(tmp / "data"), models, model_seeds={"cross_encoder": [1], "cedr_knrm": [1]})
    plan = load_plan(path)
    results = run_benchmark(plan, tmp / "runs", log=lambda line: None)
    write_results(results, plan, tmp / "results.md", "neurank benchmark bench.yaml", 1.0)
    rows = {}
    for line in (tmp / "results.md").read_text().splitlines():
        if line.startswith("| "):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            rows[cells[0]] = cells
    return SimpleNamespace(tmp=tmp, plan=plan, results=results, text=(tmp / "results.md").read_text(), rows=rows)


def models_of(results):
    return {m.model: m for m in results[0].models}


@pytest.mark.slow  # the module's table: three tiny models, four seeds (about 5 s)
def test_each_model_trains_its_own_seeds_and_the_table_says_so(table):
    models = models_of(table.results)
    assert models["knrm"].seeds == [1, 2] and models["cross_encoder"].seeds == [1] == models["cedr_knrm"].seeds
    assert len(models["knrm"].per_seed) == 2 and len(models["cross_encoder"].per_seed) == 1
    runs = table.tmp / "runs" / "wikiqa"
    assert (runs / "knrm" / "seed-2" / "seed.json").is_file() and not (runs / "cross_encoder" / "seed-2").exists()
    assert "Seeds [1, 2];" in table.text
    said = next(line for line in table.text.splitlines() if line.startswith("Seeds set per model"))
    assert said.startswith("Seeds set per model by the benchmark config (model_seeds), in place of [1, 2]: ")
    assert "cross_encoder: seeds [1] (" in said and "cedr_knrm: seeds [1] (" in said
    assert " s of training per seed here)" in said  # the tiny models train in seconds
    assert " knrm: seeds" not in said  # knrm trained the seeds of the plan


@pytest.mark.slow
def test_the_encoder_and_the_parameters_of_every_model_are_shown(table):
    rows = table.rows
    assert rows["model"][:6] == ["model", "AP", "RR", "encoder", "params", "p vs knrm"]
    assert rows["model"][6:] == ["train s/seed", "pairs/s"] and rows["BM25"][3:] == [""] * 5
    assert (rows["knrm"][3], rows["cross_encoder"][3], rows["cedr_knrm"][3]) == ("random", "tiny-bert", TINY_ENCODER)
    models = models_of(table.results)
    for name in ("knrm", "cross_encoder", "cedr_knrm"):
        model, _, _ = load_ranker(table.tmp / "runs" / "wikiqa" / name / "seed-1" / "best.pt")
        total = sum(p.numel() for p in model.parameters())
        trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert (models[name].params, models[name].trainable_params) == (total, trained), name
        saved = json.loads((table.tmp / "runs" / "wikiqa" / name / "seed-1" / "seed.json").read_text())
        assert (saved["result"]["params"], saved["result"]["trainable_params"]) == (total, trained)
    # CEDR-KNRM's transformer is frozen: the cell says how many parameters are trained.
    cedr = models["cedr_knrm"]
    assert cedr.trainable_params < cedr.params and rows["cedr_knrm"][4].endswith(" trained)")
    assert rows["cross_encoder"][4] == f"{models['cross_encoder'].params / 1000:.1f}k"
    data = json.loads((table.tmp / "results.json").read_text())
    assert {m["model"]: m["encoder"] for m in data["results"][0]["models"]}["cross_encoder"] == "tiny-bert"
    # The README's headline still copies the first measure's cells.
    headline = headline_markdown(table.text)
    assert f"| knrm | {rows['knrm'][1]} |" in headline and f"| cedr_knrm | {rows['cedr_knrm'][1]} |" in headline


def averaged_ap(run_dirs):
    """Per-query AP averaged over the seeds' runs, read from their seed.json files."""
    per_seed = [json.loads((d / "seed.json").read_text())["result"]["per_query"]["AP"] for d in run_dirs]
    queries = set().union(*per_seed)
    return {q: statistics.mean(s.get(q, 0.0) for s in per_seed) for q in queries}


@pytest.mark.slow
def test_every_row_is_compared_with_the_best_word_model(table):
    assert table.results[0].best_classic == "knrm"
    runs = table.tmp / "runs" / "wikiqa"
    knrm = averaged_ap([runs / "knrm" / "seed-1", runs / "knrm" / "seed-2"])
    models = models_of(table.results)
    assert models["knrm"].p_best_classic is None and table.rows["knrm"][5] == ""
    for name in ("cross_encoder", "cedr_knrm"):
        expected = compare_values("AP", knrm, averaged_ap([runs / name / "seed-1"])).p_randomisation
        assert models[name].p_best_classic == pytest.approx(expected)
        shown = table.rows[name][5]
        assert shown == ("< 0.001" if expected < 0.001 else f"{expected:.3f}")
    assert "p vs knrm: the p-value of the paired randomisation test on AP against knrm" in table.text
    # Without a transformer model (or without a word model) there is nothing to compare.
    only_words = [r for r in table.results[0].models if r.model == "knrm"]
    alone = SimpleNamespace(**{**vars(table.results[0]), "models": only_words, "best_classic": None})
    assert "p vs" not in results_markdown([alone], table.plan, "neurank benchmark bench.yaml", 1.0)


@pytest.mark.slow
def test_a_seed_saved_before_parameters_were_counted_is_reused(table, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    shutil.copytree(table.tmp / "runs", runs)
    for seed in (1, 2):
        seed_file = runs / "wikiqa" / "knrm" / f"seed-{seed}" / "seed.json"
        saved = json.loads(seed_file.read_text())
        del saved["result"]["params"], saved["result"]["trainable_params"]  # as written before this change
        seed_file.write_text(json.dumps(saved))

    def no_preparing(config):
        raise AssertionError("nothing to train: the data must not be prepared")

    monkeypatch.setattr(results_table, "prepare_data", no_preparing)
    lines = []
    again = run_benchmark(table.plan, runs, log=lines.append)
    assert len(lines) == 4 and all("earlier run" in line for line in lines)
    models = models_of(again)
    assert (
        models["knrm"].params is None
        and models["cross_encoder"].params == models_of(table.results)["cross_encoder"].params
    )
    assert models["knrm"].per_seed == models_of(table.results)["knrm"].per_seed
    row = next(line for line in results_markdown(again, table.plan, "x", 1.0).splitlines() if line.startswith("| knrm"))
    assert row.split("|")[4:6] == [" random ", "  "]  # the encoder, and an empty parameter cell


def test_model_seeds_replace_the_seeds_of_their_models(tmp_path, tiny_config):
    path = write_bench(tmp_path, tiny_config, ["knrm", "drmm"], model_seeds={"drmm": [3]})
    plan = load_plan(path)
    assert (plan.seeds_for("knrm"), plan.seeds_for("drmm")) == ([1, 2], [3])
    assert load_plan(path, models=["knrm"]).model_seeds == {}
    # --seeds on the command line, and --quick's seeds, are every model's.
    assert load_plan(path, seeds=[5]).seeds_for("drmm") == [5]
    raw = yaml.safe_load(path.read_text())
    raw["quick"] = {"seeds": [1]}
    path.write_text(yaml.safe_dump(raw))
    assert load_plan(path, quick=True).seeds_for("drmm") == [1] and load_plan(path).seeds_for("drmm") == [3]


@pytest.mark.parametrize(
    "given, message",
    [
        ([3], r"model_seeds: expected a mapping of model name to a list of seeds, found \[3\]"),
        ({"tk": [1]}, r"model_seeds: 'tk' is not in the benchmark's models \(knrm, drmm\)"),
        ({"drmm": 3}, "model_seeds: drmm: expected a list of integer seeds, found 3"),
        ({"drmm": []}, r"model_seeds: drmm: expected a list of integer seeds, found \[\]"),
        ({"drmm": [1, "2"]}, r"model_seeds: drmm: expected a list of integer seeds, found \[1, '2'\]"),
        ({"drmm": [True]}, r"model_seeds: drmm: expected a list of integer seeds, found \[True\]"),
    ],
)
def test_model_seeds_are_checked(tmp_path, tiny_config, given, message):
    path = write_bench(tmp_path, tiny_config, ["knrm", "drmm"], model_seeds=given)
    with pytest.raises(ConfigError, match=message) as error:
        load_plan(path)
    assert str(path) in str(error.value)


def test_the_pretrained_benchmark_config_loads_and_quick_needs_no_model_folder():
    transformers = [
        "zero_shot",
        "pooled_cosine",
        "cross_encoder",
        "cedr_cnn_joint",
        "cedr_cnn",
        "cedr_knrm",
        "cedr_pacrr",
    ]
    full = load_plan("benchmark_pretrained")
    assert list(full.models) == [transformers[0], "zero_shot_fused", *transformers[1:], "compare_aggregate", "tk"]
    assert list(full.collections) == ["wikiqa", "nfcorpus"]
    assert full.rows("wikiqa") == [*transformers, "compare_aggregate"]
    assert full.rows("nfcorpus") == ["zero_shot", "zero_shot_fused", "pooled_cosine", "cedr_cnn", "tk"]
    fused, alone = (full.experiment_config("nfcorpus", row) for row in ("zero_shot_fused", "zero_shot"))
    assert fused.model_config == alone.model_config and (fused.train.fusion, alone.train.fusion) == (True, False)
    assert full.seeds == [1, 2, 3] and full.measures["wikiqa"] == ["AP", "RR"]
    assert full.measures["nfcorpus"] == ["nDCG@10", "AP"]
    # tk, the best word model of benchmark.yaml's NFCorpus table, trains here as there (its seeds are the same runs).
    assert full.experiment_config("nfcorpus", "tk") == load_plan("benchmark").experiment_config("nfcorpus", "tk")
    for model in ("zero_shot", "zero_shot_fused", "pooled_cosine", "cedr_cnn"):
        config = full.experiment_config("nfcorpus", model)
        assert config.model_config["hf_model"] == "models/all-minilm-l6-v2"
        assert (config.data.max_query_len, config.data.max_doc_len) == (32, 128)
    assert {m: full.seeds_for(m) for m in ("zero_shot", "cross_encoder", "cedr_cnn_joint", "cedr_knrm")} == {
        "zero_shot": [1, 2, 3, 4, 5],
        "cross_encoder": [1],
        "cedr_cnn_joint": [1, 2],
        "cedr_knrm": [1, 2, 3],
    }
    for model in transformers:
        config = full.experiment_config("wikiqa", model)
        assert config.model_config["hf_model"] == "models/all-minilm-l6-v2"
        assert results_table.encoder_name(config) == "all-minilm-l6-v2"
        assert (config.data.max_query_len, config.data.max_doc_len) == (32, 96)
    fine_tuned = full.experiment_config("wikiqa", "cross_encoder").train
    assert (fine_tuned.lr, fine_tuned.epochs, fine_tuned.batch_size, fine_tuned.warmup_steps) == (3e-5, 2, 16, 20)
    compare_aggregate = full.experiment_config("wikiqa", "compare_aggregate")
    assert compare_aggregate.model_config["exact_match"] and compare_aggregate.train.epochs == 20
    assert results_table.encoder_name(compare_aggregate) == "word2vec"

    quick = load_plan("benchmark_pretrained", quick=True)
    assert quick.seeds == [1] and quick.model_seeds == {}
    assert "hf_model" not in json.dumps(
        [quick.models, quick.collection_models, quick.shared_options]
        + [c.to_dict() for c in quick.collections.values()]
    )
    for collection in quick.collections:
        for model in quick.rows(collection):
            config = quick.experiment_config(collection, model)
            assert "hf_model" not in config.model_config and config.train.epochs == 1
            expected = "random" if model in ("compare_aggregate", "tk") else TINY_ENCODER
            assert results_table.encoder_name(config) == expected


def test_a_transformer_without_a_folder_reads_no_word_vectors(tiny_config):
    import dataclasses

    import torch

    from neurank.workflows.results_table import _data_for

    words = SimpleNamespace(embeddings=torch.zeros(3, 2), embedding_report={"coverage": 1.0})
    words = dataclasses.make_dataclass("Data", ["embeddings", "embedding_report"])(**vars(words))
    prepared = {(None, tiny_config.data): words}  # by folder and data section
    knrm = dataclasses.replace(tiny_config, model="knrm", model_config={})
    cedr = dataclasses.replace(tiny_config, model="cedr_knrm", model_config={})
    assert _data_for(knrm, tiny_config, prepared) is words
    assert _data_for(cedr, tiny_config, prepared).embeddings is None and words.embeddings is not None


# Rows of the table under a name of their own: one registered model twice, with different options.

ZERO_SHOT = {"model": "pooled_cosine", "freeze": True, "use_first_stage_score": False}


def write_rows(folder, tiny_config, models=("zero_shot", "pooled_cosine", "knrm"), collections=None, **extra):
    """A task config with a `models:` section (every model reads BM25's score, by its `model_config`) and a
    benchmark over it whose collection defines the row zero_shot: pooled_cosine frozen, without BM25's score,
    trained one epoch and not fused with BM25. `collections`: each collection's own `models:` in place of that."""
    task = tiny_config.to_dict()
    task.pop("model_config")
    task["model"] = "knrm"
    task["model_config"] = {"use_first_stage_score": True}
    task["models"] = {"knrm": {"n_kernels": 5}, "pooled_cosine": {"scale": 2.0}}
    (folder / "task.yaml").write_text(yaml.safe_dump(task))
    defined = {"wikiqa": {"zero_shot": ZERO_SHOT}} if collections is None else collections
    plan = {
        "collections": {
            name: {
                "config": "task.yaml",
                "measures": ["AP", "RR"],
                "models": own,
                "train": {"zero_shot": {"epochs": 1, "fusion": False}} if "zero_shot" in own else {},
            }
            for name, own in defined.items()
        },
        "models": models,
        "seeds": [1],
        **extra,
    }
    (folder / "bench.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    return folder / "bench.yaml"


def test_a_row_trains_its_registered_model_with_options_of_its_own(tmp_path, tiny_config):
    plan = load_plan(write_rows(tmp_path, tiny_config))
    assert list(plan.models) == ["zero_shot", "pooled_cosine", "knrm"]
    zero_shot, pooled = (plan.experiment_config("wikiqa", m) for m in ("zero_shot", "pooled_cosine"))
    assert (zero_shot.model, pooled.model) == ("pooled_cosine", "pooled_cosine")
    assert (plan.registered_model("wikiqa", "zero_shot"), plan.registered_model("wikiqa", "knrm")) == (
        "pooled_cosine",
        "knrm",
    )
    # The row's own use_first_stage_score wins over the one task.yaml gives every model; `model` is no option.
    assert zero_shot.model_config == {"freeze": True, "use_first_stage_score": False}
    assert pooled.model_config == {"scale": 2.0, "use_first_stage_score": True}
    assert (zero_shot.train.epochs, zero_shot.train.fusion) == (1, False)
    assert (pooled.train.epochs, pooled.train.fusion) == (tiny_config.train.epochs, tiny_config.train.fusion)
    # What asks "is this a transformer" asks the registered model: the row is built and described as pooled_cosine.
    results_table.check_model(zero_shot)
    assert results_table.encoder_name(zero_shot) == TINY_ENCODER
    # --models and model_seeds go by the row's name.
    only = load_plan(tmp_path / "bench.yaml", models=["zero_shot"])
    assert list(only.models) == ["zero_shot"] and only.experiment_config("wikiqa", "zero_shot") == zero_shot
    seeded = load_plan(write_rows(tmp_path, tiny_config, model_seeds={"zero_shot": [3]}))
    assert (seeded.seeds_for("zero_shot"), seeded.seeds_for("pooled_cosine")) == ([3], [1])


def test_quick_drops_a_rows_model_folder_and_keeps_its_model(tmp_path, tiny_config):
    row = {**ZERO_SHOT, "hf_model": "models/all-minilm-l6-v2"}
    path = write_rows(tmp_path, tiny_config, collections={"wikiqa": {"zero_shot": row}}, quick={"seeds": [1]})
    assert load_plan(path).experiment_config("wikiqa", "zero_shot").model_config["hf_model"] == row["hf_model"]
    quick = load_plan(path, quick=True).experiment_config("wikiqa", "zero_shot")
    assert quick.model == "pooled_cosine" and quick.model_config == {"freeze": True, "use_first_stage_score": False}


def test_the_shipped_pretrained_table_has_a_zero_shot_row_and_a_fine_tuned_bi_encoder():
    for quick in (False, True):
        plan = load_plan("benchmark_pretrained", quick=quick)
        assert plan.rows("wikiqa")[:2] == ["zero_shot", "pooled_cosine"]
        zero_shot, bi_encoder = (plan.experiment_config("wikiqa", m) for m in ("zero_shot", "pooled_cosine"))
        folder = {} if quick else {"hf_model": "models/all-minilm-l6-v2"}
        assert zero_shot.model == bi_encoder.model == "pooled_cosine"
        assert zero_shot.model_config == {**folder, "freeze": True, "use_first_stage_score": False}
        assert (zero_shot.train.epochs, zero_shot.train.fusion) == (1, False)
        assert bi_encoder.model_config == {**folder, "scale": 20.0, "use_first_stage_score": False}
        train = bi_encoder.train
        assert (train.lr, train.batch_size, train.warmup_steps, train.grad_clip, train.patience) == (2e-5, 16, 20, 1, 2)
        assert train.epochs == (1 if quick else 2)
        # The cross-encoder reads no BM25 score either; every other model keeps the input answer_selection.yaml
        # gives it.
        assert plan.experiment_config("wikiqa", "cross_encoder").model_config["use_first_stage_score"] is False
        others = [m for m in plan.rows("wikiqa") if m not in ("zero_shot", "pooled_cosine", "cross_encoder")]
        assert all(plan.experiment_config("wikiqa", m).model_config["use_first_stage_score"] for m in others)


def test_own_options_winning_leaves_the_shipped_table_as_it_was():
    """Before, the options every model gets on a collection won over a model's own; now a model's own win. No
    model of benchmark.yaml sets one of those shared options, so every config it trains is the one it was (the
    snapshot test of test_benchmark_plan.py compares them all with the configs of commit f02b5ab as well)."""
    for quick in (False, True):
        plan = load_plan("benchmark", quick=quick)
        for collection in plan.collections:
            shared = plan.shared_options[collection]
            assert shared == {"use_first_stage_score": True}
            for model in plan.models:
                own = plan.model_options(collection, model)
                config = plan.experiment_config(collection, model)
                assert "model" not in own and not set(own) & set(shared) and config.model == model
                assert config.model_config == {**own, **shared}  # the merge of before, the other way round
                assert config.model_config["use_first_stage_score"] is True


@pytest.mark.parametrize(
    "models, collections, message",
    [
        (
            ["zero_shot", "knrm"],
            {"wikiqa": {}},
            r": unknown model 'zero_shot'; registered: .* \(a row of another name needs "
            r"`zero_shot: \{model: REGISTERED, \.\.\.\}` under every collection's `models:`\)",
        ),
        (
            ["zero_shot", "knrm"],
            {"wikiqa": {"zero_shot": ZERO_SHOT}, "nfcorpus": {"knrm": {}}},
            r": collection 'nfcorpus': models: no entry 'zero_shot' with `model: REGISTERED`; the row 'zero_shot' "
            r"\(defined so under 'wikiqa'\) runs on every collection whose rows: name it",
        ),
        (
            ["zero_shot"],
            {"wikiqa": {"zero_shot": {"model": "bert"}}},
            r": collection 'wikiqa': models: zero_shot: model: expected a registered model, found 'bert'; registered: ",
        ),
        (
            ["zero_shot"],
            {"wikiqa": {"zero_shot": {"model": ["pooled_cosine"]}}},
            r"collection 'wikiqa': models: zero_shot: model: expected a registered model, found \['pooled_cosine'\]",
        ),
        (
            ["knrm"],
            {"wikiqa": {"knrm": {"model": "pooled_cosine"}}},
            r": collection 'wikiqa': models: knrm: model: 'knrm' is itself a registered model; `model:` gives a row "
            r"of another name its model",
        ),
        (
            ["zero_shot"],
            {"wikiqa": {"zero_shot": ZERO_SHOT}, "nfcorpus": {"zero_shot": {"model": "cross_encoder"}}},
            r": models: zero_shot: the row is 'cross_encoder' under collection 'nfcorpus' but 'pooled_cosine' under "
            r"'wikiqa'; a row is one model on every collection",
        ),
        (
            {"zero_shot": {"model": "pooled_cosine"}},
            {"wikiqa": {"zero_shot": ZERO_SHOT}},
            r": models: zero_shot: `model:` goes under a collection's `models:`, in the entry of the row",
        ),
    ],
    ids=["undefined", "not-in-every-collection", "unknown", "not-a-name", "registered-key", "two-models", "top"],
)
def test_rows_are_checked(tmp_path, tiny_config, models, collections, message):
    path = write_rows(tmp_path, tiny_config, models=models, collections=collections)
    with pytest.raises(ConfigError, match=message) as error:
        load_plan(path)
    assert str(error.value).startswith(f"{path}: ")


def test_a_rows_options_are_checked_for_its_model_before_training(tmp_path, tiny_config):
    path = write_rows(tmp_path, tiny_config, collections={"wikiqa": {"zero_shot": {**ZERO_SHOT, "n_kernels": 3}}})
    with pytest.raises(ConfigError, match=r"^collection 'wikiqa': row 'zero_shot' \(pooled_cosine\): model_config"):
        run_benchmark(load_plan(path), tmp_path / "runs", log=lambda line: None)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow  # three tiny models, one seed each (a few seconds)
def test_a_row_of_its_own_trains_runs_and_is_reused_under_its_name(tmp_path, tiny_config, monkeypatch):
    path = write_rows(tmp_path, tiny_config, model_seeds={"zero_shot": [2]})
    plan = load_plan(path)
    results = run_benchmark(plan, tmp_path / "runs", log=lambda line: None)
    runs = tmp_path / "runs" / "wikiqa"
    saved = json.loads((runs / "zero_shot" / "seed-2" / "seed.json").read_text())
    assert saved["config"]["model"] == "pooled_cosine" and not (runs / "zero_shot" / "seed-1").exists()
    assert saved["config"]["model_config"] == {"freeze": True, "use_first_stage_score": False}
    assert saved["config"]["train"]["fusion"] is False
    assert json.loads((runs / "pooled_cosine" / "seed-1" / "seed.json").read_text())["config"]["model_config"] == {
        "scale": 2.0,
        "use_first_stage_score": True,
    }
    models = models_of(results)
    assert list(models) == ["zero_shot", "pooled_cosine", "knrm"] and models["zero_shot"].seeds == [2]
    # zero_shot is a transformer (its registered model), so knrm is the only, and the best, word model.
    assert results[0].best_classic == "knrm" and models["zero_shot"].p_best_classic is not None
    assert (models["zero_shot"].encoder, models["knrm"].encoder) == (TINY_ENCODER, "random")
    # Frozen, without BM25's score: only scale and bias are trained.
    assert models["zero_shot"].trainable_params == 2 < models["zero_shot"].params
    assert models["pooled_cosine"].trainable_params == models["pooled_cosine"].params
    text = results_markdown(results, plan, "neurank benchmark bench.yaml", 1.0)
    assert "| zero_shot | " in text and "| pooled_cosine | " in text and "| p vs knrm |" in text
    assert (
        'zero_shot with options model "pooled_cosine", freeze true, use_first_stage_score false; '
        "training epochs 1, fusion false" in text
    )

    def no_preparing(config):
        raise AssertionError("nothing to train: the data must not be prepared")

    monkeypatch.setattr(results_table, "prepare_data", no_preparing)
    lines = []
    again = run_benchmark(load_plan(path, models=["zero_shot"]), tmp_path / "runs", log=lines.append)
    assert lines == [lines[0]] and lines[0].startswith("wikiqa zero_shot seed 2: ") and "earlier run" in lines[0]
    assert models_of(again)["zero_shot"].per_seed == models["zero_shot"].per_seed


def test_a_row_counts_as_a_transformer_by_its_registered_model():
    """zero_shot (pooled_cosine) scores better than knrm here: were it taken for a word model by its name, it
    would be the best word model."""
    from neurank.workflows.experiment import SeedRun
    from neurank.workflows.results_table import CollectionResult, ModelResult, _compare_with_best_classic

    per_query = {"zero_shot": [1.0, 1.0, 0.5, 1.0], "knrm": [0.5, 0.0, 0.5, 0.5], "cross_encoder": [1.0, 0.5, 1, 1]}
    runs_of, models = {}, []
    for name, values in per_query.items():
        run = SeedRun(1, {"AP": statistics.mean(values)}, {"AP": dict(enumerate(values))}, 1.0, 1, 1.0)
        runs_of[name] = [run]
        models.append(ModelResult(name, [run.metrics], run.metrics, {"AP": 0.0}, {}, {}, 1.0, 1.0, [1]))
    result = CollectionResult("wikiqa", "test", 4, ["AP"], {"AP": 0.5}, models)
    registered = {"zero_shot": "pooled_cosine", "knrm": "knrm", "cross_encoder": "cross_encoder"}
    _compare_with_best_classic(result, runs_of, registered)
    assert result.best_classic == "knrm"
    assert models[0].p_best_classic is not None and models[1].p_best_classic is None


def test_a_task_config_entry_wins_over_its_model_config_as_in_neurank_train(tmp_path, tiny_config):
    from neurank.config import load_config

    bench = write_rows(tmp_path, tiny_config, models=("zero_shot", "knrm"))
    task_path = tmp_path / "task.yaml"
    task = yaml.safe_load(task_path.read_text())
    task["models"]["knrm"] = {"n_kernels": 5, "use_first_stage_score": False}  # the file's model_config says True
    task_path.write_text(yaml.safe_dump(task))
    trained = load_config(task_path, ["model=knrm"]).model_config
    assert trained["use_first_stage_score"] is False  # the entry is more specific than the file's model_config
    plan = load_plan(bench)
    assert plan.experiment_config("wikiqa", "knrm").model_config == trained
    # A row the benchmark config defines itself keeps its own value too.
    assert plan.experiment_config("wikiqa", "zero_shot").model_config["use_first_stage_score"] is False


@pytest.mark.integration
@pytest.mark.slow
def test_the_shipped_pretrained_table_runs_quick_without_the_model_folder(cli, shared_data, tmp_path):
    # --quick: every transformer a tiny random BERT over the word ids, so neither models/ nor a download is needed.
    status, out, err = cli(
        "benchmark", "benchmark_pretrained", "--quick", "--data-dir", shared_data,
        "--runs-dir", tmp_path / "runs", "--output", tmp_path / "results.md",
    )  # fmt: skip
    assert status == 0, err
    table = (tmp_path / "results.md").read_text()
    rows = {line.split(" | ")[0].strip("| ") for line in table.splitlines() if line.startswith("| ")}
    assert {"BM25", "zero_shot", "pooled_cosine", "cross_encoder", "cedr_cnn_joint", "cedr_cnn"} <= rows
    assert "| compare_aggregate |" in table and "p vs compare_aggregate" in table
    assert "tiny random BERT" in table and "all-minilm" not in table
    for run in (tmp_path / "runs").glob("*/*/seed-1/seed.json"):
        assert "hf_model" not in json.dumps(json.loads(run.read_text())["config"]["model_config"])
    # NFCorpus trains its rows: only, each with its own data limits under quick's.
    nfcorpus = table[table.index("## nfcorpus (") :]
    assert "| tk |" in nfcorpus and "| zero_shot_fused |" in nfcorpus and "p vs tk" in nfcorpus
    assert "| cross_encoder |" not in nfcorpus
    assert sorted(p.name for p in (tmp_path / "runs" / "nfcorpus").iterdir()) == sorted(
        ["zero_shot", "zero_shot_fused", "pooled_cosine", "cedr_cnn", "tk"]
    )


@pytest.mark.slow
def test_compare_with_tests_every_row_against_the_rows_it_names(table, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(table.tmp / "runs", runs)
    values = yaml.safe_load((table.tmp / "bench.yaml").read_text())
    values["compare_with"] = ["cross_encoder"]
    (table.tmp / "compared.yaml").write_text(yaml.safe_dump(values))
    plan = load_plan(table.tmp / "compared.yaml")
    results = run_benchmark(plan, runs, log=lambda line: None)  # every seed read back
    text = results_markdown(results, plan, "neurank benchmark compared.yaml", 1.0)
    header = next(line for line in text.splitlines() if line.startswith("| model"))
    assert "| p vs knrm | p vs cross_encoder |" in header
    cross_encoder = averaged_ap([runs / "wikiqa" / "cross_encoder" / "seed-1"])
    models = models_of(results)
    assert "cross_encoder" not in models["cross_encoder"].p_vs
    for name, seeds in (("knrm", [1, 2]), ("cedr_knrm", [1])):
        own = averaged_ap([runs / "wikiqa" / name / f"seed-{seed}" for seed in seeds])
        expected = compare_values("AP", cross_encoder, own).p_randomisation
        assert models[name].p_vs["cross_encoder"] == pytest.approx(expected)
    assert "p vs cross_encoder: the same test on AP against cross_encoder" in text
    values["compare_with"] = ["bert"]
    (table.tmp / "compared.yaml").write_text(yaml.safe_dump(values))
    with pytest.raises(ConfigError, match="compare_with: expected a list of the benchmark's models"):
        load_plan(table.tmp / "compared.yaml")


def test_the_shipped_glove_table_trains_the_classic_models_on_glove():
    plan = load_plan("benchmark_glove")
    assert list(plan.models) == [
        "drmm", "knrm", "arci", "pacrr", "match_pyramid", "mvlstm", "duet", "conv_knrm", "tk", "compare_aggregate"
    ]  # fmt: skip
    for model in plan.models:
        config = plan.experiment_config("wikiqa", model)
        assert (config.embeddings.source, config.embeddings.dim) == ("glove-6b-50d", 50)
        assert results_table.encoder_name(config) == "glove-6b-50d"
    assert plan.experiment_config("wikiqa", "match_pyramid").model_config["interactions"] == ["cosine", "exact"]


def with_collection_keys(path, **keys):
    """The benchmark at `path` with more keys under collections: {name: {key: value}}."""
    plan = yaml.safe_load(path.read_text())
    for name, extra in keys.items():
        plan["collections"][name].update(extra)
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def test_a_collections_rows_and_data_say_what_it_trains_and_on_what(tmp_path, tiny_config):
    # zero_shot is defined for wikiqa only: nfcorpus does not train it, so it needs no entry there.
    path = write_rows(tmp_path, tiny_config, collections={"wikiqa": {"zero_shot": ZERO_SHOT}, "nfcorpus": {}})
    with_collection_keys(path, nfcorpus={"rows": ["knrm", "pooled_cosine"], "data": {"knrm": {"max_doc_len": 7}}})
    plan = load_plan(path)
    assert plan.rows("wikiqa") == ["zero_shot", "pooled_cosine", "knrm"]
    assert plan.rows("nfcorpus") == ["pooled_cosine", "knrm"]  # the benchmark's order
    assert plan.experiment_config("nfcorpus", "knrm").data.max_doc_len == 7
    assert plan.experiment_config("nfcorpus", "pooled_cosine").data == plan.collections["nfcorpus"].data
    assert plan.experiment_config("wikiqa", "knrm").data.max_doc_len == tiny_config.data.max_doc_len
    assert load_plan(path, models=["zero_shot"]).rows("nfcorpus") == []


@pytest.mark.parametrize(
    "keys, message",
    [
        ({"rows": ["knrm", "bm42"]}, r"collection 'nfcorpus': rows: expected a list of the benchmark's models"),
        ({"rows": []}, r"collection 'nfcorpus': rows: expected a list of the benchmark's models"),
        (
            {"rows": ["knrm"], "data": {"bm42": {"max_doc_len": 7}}},
            r"collection 'nfcorpus' sets data options of 'bm42'",
        ),
        ({"rows": ["knrm"], "data": {"knrm": {"max_doc_lenght": 7}}}, r"max_doc_lenght"),
        ({"rows": ["knrm"], "data": {"knrm": {"max_doc_len": 0}}}, r"max_doc_len: expected an integer 1 or more"),
        ({"rows": ["knrm", "zero_shot"]}, r"collection 'nfcorpus': models: no entry 'zero_shot' with `model:"),
        (
            {"rows": ["knrm"], "data": {"pooled_cosine": {"max_doc_len": 7}}},
            r"collection 'nfcorpus' sets data options of 'pooled_cosine', which its rows: \(knrm\) does not train",
        ),
        (
            {"rows": ["knrm"], "train": {"pooled_cosine": {"lr": 0.1}}},
            r"sets training options of 'pooled_cosine', which its rows: \(knrm\) does not train",
        ),
        (
            {"rows": ["knrm"], "data": {"knrm": {"candidates": 5}}},
            r"collection 'nfcorpus': data: knrm: 'candidates' cannot differ between the rows of one table",
        ),
        (
            {"rows": ["knrm"], "data": {"knrm": {"test_split": "dev"}}},
            r"data: knrm: 'test_split' cannot differ between the rows of one table",
        ),
    ],
)
def test_a_collections_rows_and_data_are_checked(tmp_path, tiny_config, keys, message):
    path = write_rows(tmp_path, tiny_config, collections={"wikiqa": {"zero_shot": ZERO_SHOT}, "nfcorpus": {}})
    with pytest.raises(ConfigError, match=message) as error:
        load_plan(with_collection_keys(path, nfcorpus=keys))
    assert str(error.value).startswith(f"{path}: ")


@pytest.mark.slow  # two tiny models, one seed each (a few seconds)
def test_only_a_collections_rows_train_each_on_its_own_data(tmp_path, tiny_config):
    path = write_rows(tmp_path, tiny_config, models=("pooled_cosine", "knrm", "drmm"), collections={"wikiqa": {}})
    with_collection_keys(path, wikiqa={"rows": ["pooled_cosine", "knrm"], "data": {"knrm": {"max_doc_len": 7}}})
    plan = load_plan(path)
    results = run_benchmark(plan, tmp_path / "runs", log=lambda line: None)
    runs = tmp_path / "runs" / "wikiqa"
    assert sorted(p.name for p in runs.iterdir()) == ["knrm", "pooled_cosine"]
    assert list(models_of(results)) == ["pooled_cosine", "knrm"]
    saved = {
        m: json.loads((runs / m / "seed-1" / "seed.json").read_text())["config"]["data"] for m in models_of(results)
    }
    assert saved["knrm"]["max_doc_len"] == 7 and saved["pooled_cosine"]["max_doc_len"] == tiny_config.data.max_doc_len
    text = results_markdown(results, plan, "neurank benchmark bench.yaml", 1.0)
    assert "knrm with options n_kernels 5; data max_doc_len 7" in text


def test_quick_limits_win_over_a_rows_own_data():
    plan = load_plan("benchmark_pretrained", quick=True, data_dir="/nowhere")
    for row in ("zero_shot", "zero_shot_fused", "pooled_cosine", "cedr_cnn"):
        data = plan.experiment_config("nfcorpus", row).data
        assert (data.max_doc_len, data.max_train_queries, data.data_dir) == (40, 300, "/nowhere")
        assert data.max_query_len == 32  # the row's own, which quick does not set
    full = load_plan("benchmark_pretrained").experiment_config("nfcorpus", "pooled_cosine").data
    assert (full.max_doc_len, full.max_train_queries) == (128, 250)


def test_a_collections_model_seeds_win_there_only(tmp_path, tiny_config):
    path = write_rows(
        tmp_path, tiny_config, collections={"wikiqa": {"zero_shot": ZERO_SHOT}, "nfcorpus": {}},
        model_seeds={"knrm": [1, 2]},
    )  # fmt: skip
    with_collection_keys(path, nfcorpus={"rows": ["knrm", "pooled_cosine"], "model_seeds": {"pooled_cosine": [4]}})
    plan = load_plan(path)
    assert plan.seeds_for("pooled_cosine", "nfcorpus") == [4] and plan.seeds_for("pooled_cosine", "wikiqa") == [1]
    assert plan.seeds_for("knrm", "nfcorpus") == plan.seeds_for("knrm", "wikiqa") == [1, 2]
    assert load_plan(path, seeds=[7]).seeds_for("pooled_cosine", "nfcorpus") == [7]  # --seeds: every model's
    with_collection_keys(path, nfcorpus={"model_seeds": {"pooled_cosine": ["4"]}})
    with pytest.raises(ConfigError, match=r"bench.yaml: collection 'nfcorpus': model_seeds: pooled_cosine: expected"):
        load_plan(path)
