"""Experiments: every configuration checked before the expensive part, models switched from one task config, and
a model chosen on dev before test is read (the tiny collection and its config live in tests/conftest.py)."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

import neurank.data.prepare as prepare_module
import neurank.workflows.experiment as experiment_module
from neurank.config import ConfigError, load_config, load_configs
from neurank.models import UnknownModelError, model_names
from neurank.workflows.experiment import check_model, select_and_test, validate


@pytest.mark.parametrize("task", ["answer_selection", "adhoc"])
@pytest.mark.parametrize("model", model_names())
def test_every_registered_model_loads_and_builds_from_each_task_config(task, model):
    config = load_config(task, [f"model={model}"])
    # Every model reads BM25's score, but the two whose dev runs chose otherwise in their entries.
    reads_bm25 = not (task == "answer_selection" and model in ("cross_encoder", "pooled_cosine"))
    assert config.model == model and config.model_config["use_first_stage_score"] is reads_bm25
    check_model(config)  # builds it (on a two-word vocabulary): every option is one the model has


def test_a_switched_model_trains_one_epoch_on_the_tiny_collection(tmp_path, tiny_data_dir):
    from neurank.training import train

    config = load_config(
        "answer_selection",
        [
            "model=compare_aggregate",
            f"data.data_dir={tiny_data_dir}",
            "embeddings.source=random",
            "embeddings.dim=8",
            "models.compare_aggregate.hidden_size=8",
            "models.compare_aggregate.windows=[1, 2]",
            "train.epochs=1",  # the command line wins over the entry's 20 epochs
            "train.batch_size=2",
            "train.device=cpu",
        ],
    )
    assert config.model_config["exact_match"] is True and config.train.patience == 20
    result = train(config, tmp_path / "run", progress=False, data=prepare_module.prepare_data(config))
    assert result["epochs"] == 1 and (tmp_path / "run" / "best.pt").is_file()


def write_task(tmp_path, tiny_config, models=None) -> Path:
    """The tiny config as a task config with a `models:` section: MatchPyramid's tiny options and KNRM's."""
    values = tiny_config.to_dict()
    values["models"] = models or {"match_pyramid": values.pop("model_config"), "knrm": {"n_kernels": 5}}
    values["model_config"] = {}
    values["train"]["epochs"] = 1
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


class Spy:
    """Records, in order, every training and every use of a split: scoring, BM25, evaluation against its qrels."""

    def __init__(self, monkeypatch, collection_splits=None):
        self.events = []
        original_train = experiment_module.train
        original_rerank = experiment_module.Reranker.rerank_collection
        original_bm25 = experiment_module.bm25_run
        original_prepare_bm25 = prepare_module.bm25_run

        def train(config, output_dir, **kwargs):
            self.events.append(("train", config.model, config.train.seed))
            return original_train(config, output_dir, **kwargs)

        def rerank(reranker, collection, split, *args, **kwargs):
            self.events.append(("rerank", split))
            return original_rerank(reranker, collection, split, *args, **kwargs)

        def bm25(collection, split, **kwargs):
            self.events.append(("bm25", split))
            return original_bm25(collection, split, **kwargs)

        def prepare_bm25(collection, split, **kwargs):
            self.events.append(("bm25", split))
            return original_prepare_bm25(collection, split, **kwargs)

        monkeypatch.setattr(experiment_module, "train", train)
        monkeypatch.setattr(experiment_module.Reranker, "rerank_collection", rerank)
        monkeypatch.setattr(experiment_module, "bm25_run", bm25)
        monkeypatch.setattr(prepare_module, "bm25_run", prepare_bm25)

    def uses_of(self, split):
        return [i for i, event in enumerate(self.events) if event[0] != "train" and event[1] == split]

    def trainings(self):
        return [i for i, event in enumerate(self.events) if event[0] == "train"]


@pytest.mark.slow  # four one-epoch trainings and the test re-ranking of two seeds (about 4 s)
def test_select_on_dev_then_test_the_chosen_model(tmp_path, tiny_config, monkeypatch):
    spy = Spy(monkeypatch)
    configs = load_configs(write_task(tmp_path, tiny_config), [], ["knrm", "match_pyramid"])
    lines = []
    selection = select_and_test(configs, tmp_path / "exp", [1, 2], progress=False, log=lines.append)

    # Every candidate trained with every seed, and only then was the test split touched at all.
    assert [e[1:] for e in spy.events if e[0] == "train"] == [
        ("knrm", 1),
        ("knrm", 2),
        ("match_pyramid", 1),
        ("match_pyramid", 2),
    ]
    assert spy.uses_of("test") and min(spy.uses_of("test")) > max(spy.trainings())
    assert len(lines) == 4 and lines[0].startswith("knrm seed 1: dev AP ")

    # The chosen model has the best mean dev value (the first listed of equals).
    means = {c.model: c.mean for c in selection.candidates}
    assert selection.chosen == max(means, key=lambda m: (means[m], -list(means).index(m)))
    chosen = next(c for c in selection.candidates if c.model == selection.chosen)
    assert chosen.mean == pytest.approx(sum(s.value for s in chosen.seeds) / 2)
    assert chosen.best_seed == max(chosen.seeds, key=lambda s: s.value).seed

    # Its seeds on test, against BM25; one run file from its best-dev seed, named in the result.
    exp = tmp_path / "exp"
    assert selection.test is not None and selection.test.model == selection.chosen
    assert len(selection.test.per_seed) == 2 and set(selection.test.p_ttest) == set(selection.test.measures)
    assert selection.best_run == str(exp / "best.test.run")
    seed_run = exp / selection.chosen / f"seed-{chosen.best_seed}" / "test.run"
    assert (exp / "best.test.run").read_text() == seed_run.read_text()
    other = next(c.model for c in selection.candidates if c.model != selection.chosen)
    assert not (exp / other / "seed-1" / "test.run").exists()  # the other candidate never saw test
    saved = json.loads((exp / "results.json").read_text())
    assert [c["model"] for c in saved["candidates"]] == ["knrm", "match_pyramid"]
    assert saved["chosen"] == selection.chosen and saved["test"]["per_seed"] == selection.test.per_seed
    assert saved["configs"]["knrm"]["model_config"] == {"n_kernels": 5}
    text = (exp / "results.md").read_text()
    assert f"**{selection.chosen}** (chosen)" in text and "| BM25 |" in text and "best.test.run" in text


@pytest.mark.slow  # two one-epoch trainings (about 2 s with the collection)
def test_dev_only_never_reads_the_test_split(tmp_path, tiny_config, monkeypatch):
    spy = Spy(monkeypatch)
    configs = load_configs(write_task(tmp_path, tiny_config), [], ["knrm", "match_pyramid"])
    selection = select_and_test(configs, tmp_path / "exp", [1], progress=False, dev_only=True)
    assert spy.uses_of("test") == [] and len(spy.trainings()) == 2
    assert selection.test is None and selection.best_run is None
    assert not list((tmp_path / "exp").glob("*.run"))
    assert "Not scored" in (tmp_path / "exp" / "results.md").read_text()


def test_the_choice_is_the_best_mean_over_seeds(tmp_path, tiny_config, monkeypatch):
    # Dev values chosen by hand: knrm is best on one seed, match_pyramid on average.
    dev = {("knrm", 1): 0.9, ("knrm", 2): 0.1, ("match_pyramid", 1): 0.6, ("match_pyramid", 2): 0.5}

    def train(config, output_dir, **kwargs):
        value = dev[(config.model, config.train.seed)]
        return {"metric": "AP", "best_metric": value - 0.1, "fusion": {"value": value}, "best_epoch": 1}

    monkeypatch.setattr(experiment_module, "train", train)
    monkeypatch.setattr(experiment_module, "prepare_data", lambda config, collection=None: None)
    configs = load_configs(write_task(tmp_path, tiny_config), [], ["knrm", "match_pyramid"])
    selection = select_and_test(configs, tmp_path / "exp", [1, 2], progress=False, dev_only=True)
    knrm, pyramid = selection.candidates
    assert (knrm.mean, pyramid.mean) == (pytest.approx(0.5), pytest.approx(0.55))
    assert knrm.best_seed == 1 and pyramid.best_seed == 1 and selection.chosen == "match_pyramid"
    assert [s.unfused for s in pyramid.seeds] == [pytest.approx(0.5), pytest.approx(0.4)]
    assert [s.ranks_with for s in pyramid.seeds] == ["fused", "fused"]


def test_candidates_must_be_compared_on_the_same_data(tmp_path, tiny_config):
    configs = load_configs(write_task(tmp_path, tiny_config), [], ["knrm", "match_pyramid"])
    configs["knrm"] = dataclasses.replace(
        configs["knrm"], data=dataclasses.replace(configs["knrm"].data, max_doc_len=5)
    )
    with pytest.raises(ConfigError, match="candidate 'match_pyramid': its data settings differ from 'knrm'"):
        select_and_test(configs, tmp_path / "exp", [1], progress=False)


class Expensive:
    """Fails the test when anything expensive (loading the collection, tokenising, preparing data) starts."""

    def __init__(self, monkeypatch, allow_loading=False):
        def refuse(*args, **kwargs):
            raise AssertionError("the configuration error must come before this")

        if not allow_loading:
            monkeypatch.setattr(prepare_module, "load_collection", refuse)
        monkeypatch.setattr(prepare_module.Tokenizer, "tokenize_batch", refuse)
        monkeypatch.setattr(experiment_module, "prepare_data", refuse)


def test_another_models_options_fail_before_the_data_is_touched(tmp_path, tiny_config, monkeypatch):
    # A single-model config (MatchPyramid's options) switched to Compare-Aggregate: the 66 s of word2vec.
    Expensive(monkeypatch)
    config = dataclasses.replace(tiny_config, model="compare_aggregate")
    with pytest.raises(ConfigError, match=r"model_config of 'compare_aggregate': unknown option 'conv_channels'"):
        experiment_module.run_experiment(config, tmp_path / "exp", [1], progress=False)
    with pytest.raises(UnknownModelError, match="transformer9000"):
        validate(dataclasses.replace(tiny_config, model="transformer9000"))
    with pytest.raises(ConfigError, match=r"model_config of 'match_pyramid': .*pool_size"):
        validate(dataclasses.replace(tiny_config, model_config={**tiny_config.model_config, "pool_size": "big"}))


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.loss=listwise", r"train\.loss: expected one of bce, hinge, ranknet, softmax, found 'listwise'"),
        ("train.schedule=exp", r"train\.schedule: expected one of constant, linear, cosine, found 'exp'"),
        ("train.metric=MAPP", r"train\.metric: unknown measure 'MAPP'"),
        ("embeddings.source=vectors/missing.vec", r"embeddings\.source: vectors/missing\.vec not found"),
    ],
)
def test_settings_and_files_fail_before_the_collection_is_loaded(tmp_path, tiny_config, monkeypatch, override, message):
    Expensive(monkeypatch)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config.to_dict()))
    with pytest.raises((ConfigError, FileNotFoundError), match=message):
        validate(load_config(path, [override]))


def test_the_training_schedules_are_the_loops_own():
    from neurank.training.checks import SCHEDULES
    from neurank.training.loop import _lr_lambda

    for schedule in SCHEDULES:
        assert _lr_lambda(schedule, 0, 10)(5) >= 0.0


def test_a_missing_brown_corpus_says_where_it_looked_and_how_to_switch_it_off(tmp_path, tiny_config, monkeypatch):
    Expensive(monkeypatch)
    word2vec = dataclasses.replace(tiny_config.embeddings, source="word2vec", brown=True)
    config = dataclasses.replace(tiny_config, embeddings=word2vec)
    looked = Path(tiny_config.data.data_dir) / "brown_corpus" / "brown.zip"
    with pytest.raises(FileNotFoundError) as error:
        validate(config)
    assert str(looked) in str(error.value) and "embeddings.brown=false" in str(error.value)
    assert "embeddings.brown=PATH/brown.zip" in str(error.value)
    elsewhere = dataclasses.replace(config, embeddings=dataclasses.replace(word2vec, brown=str(tmp_path / "b.zip")))
    with pytest.raises(FileNotFoundError, match=r"b\.zip; give its place with"):
        validate(elsewhere)
    # Brown is only looked for when word2vec is trained.
    monkeypatch.undo()
    random = dataclasses.replace(config, embeddings=dataclasses.replace(word2vec, source="random"))
    assert "train" in validate(random).splits


def write_beir(folder: Path, splits: dict[str, list[str]]) -> Path:
    """A tiny BEIR folder: eight documents, a query per document, qrels for the given splits (query numbers)."""
    texts = [
        "neural ranking models for search",
        "bm25 is a strong ranking baseline",
        "cooking pasta with tomato sauce",
        "hamlet was written by shakespeare",
        "paris is the capital of france",
        "the thames flows through london",
        "penicillin was discovered by fleming",
        "the pacific is the largest ocean",
    ]
    queries = ["neural search", "ranking baseline", "tomato pasta", "who wrote hamlet", "capital of france",
               "thames river", "who discovered penicillin", "largest ocean"]  # fmt: skip
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "title": "", "text": t}) + "\n" for i, t in enumerate(texts))
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in enumerate(queries))
    )
    for split, numbers in splits.items():
        rows = "".join(f"q{n}\td{n}\t1\n" for n in numbers)
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)
    return folder


def folder_config(tiny_config, folder: Path, *overrides: str):
    path = folder.parent / "c.yaml"
    path.write_text(yaml.safe_dump({**tiny_config.to_dict(), "data": {"collection": str(folder), "max_doc_len": 20}}))
    return load_config(path, list(overrides))


def test_a_test_only_collection_says_why_it_cannot_train(tmp_path, tiny_config, monkeypatch):
    Expensive(monkeypatch, allow_loading=True)
    config = folder_config(tiny_config, write_beir(tmp_path / "mine", {"test": [6, 7]}))
    with pytest.raises(ConfigError, match=r"has no 'train' split \(it has: test\), so there is nothing to train on"):
        validate(config)


def test_train_and_test_without_dev_carve_dev_from_train(tmp_path, tiny_config, monkeypatch):
    Expensive(monkeypatch, allow_loading=True)
    folder = write_beir(tmp_path / "mine", {"train": [0, 1, 2, 3, 4, 5], "test": [6, 7]})
    carved = validate(folder_config(tiny_config, folder))  # the loader's default fraction
    assert set(carved.splits) >= {"train", "dev", "test"} and len(carved.split("dev").queries) == 1
    wider = validate(folder_config(tiny_config, folder, "data.dev_fraction=0.5"))
    assert len(wider.split("dev").queries) == 3 and len(wider.split("train").queries) == 3
    again = validate(folder_config(tiny_config, folder, "data.dev_fraction=0.5"))
    assert again.split("dev").queries == wider.split("dev").queries  # deterministic
    with pytest.raises(ConfigError, match=r"no 'dev' split .* set data\.dev_fraction=0\.1 to carve a dev split"):
        validate(folder_config(tiny_config, folder, "data.dev_fraction=0"))


def test_an_experiment_needs_a_test_split_unless_it_stops_on_dev(tmp_path, tiny_config, monkeypatch):
    Expensive(monkeypatch, allow_loading=True)
    folder = write_beir(tmp_path / "mine", {"train": [0, 1, 2, 3], "dev": [4, 5]})
    config = folder_config(tiny_config, folder)
    with pytest.raises(
        ConfigError, match=r"data\.test_split: collection .* has no 'test' split \(it has: train, dev\)"
    ):
        experiment_module.run_experiment(config, tmp_path / "exp", [1], progress=False)
    with pytest.raises(ConfigError, match="no 'test' split"):
        select_and_test({"match_pyramid": config}, tmp_path / "exp", [1], progress=False)
    with pytest.raises(AssertionError, match="must come before this"):  # dev only: it gets as far as preparing
        select_and_test({"match_pyramid": config}, tmp_path / "exp", [1], progress=False, dev_only=True)


def test_a_train_split_without_a_positive_is_refused(tmp_path, tiny_config, monkeypatch):
    Expensive(monkeypatch, allow_loading=True)
    folder = write_beir(tmp_path / "mine", {"train": [0, 1], "dev": [2], "test": [3]})
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\n")
    with pytest.raises(ConfigError, match=r"no judgement with relevance 2 or more \(data\.min_relevance\)"):
        validate(folder_config(tiny_config, folder, "data.min_relevance=2"))
