"""Experiment configs: YAML, dotted overrides, and clear errors for keys that do not exist."""

from pathlib import Path

import pytest

from neurank.config import ConfigError, load_config


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: cnn\ndata:\n  collection: nfcorpus\ntrain:\n  lr: 0.01\n")
    config = load_config(path, ["train.lr=3e-4", "model_config.conv_channels=[8, 16]", "data.max_vocab=null"])
    assert config.model == "cnn" and config.data.collection == "nfcorpus"
    assert config.train.lr == pytest.approx(3e-4)
    assert config.model_config == {"conv_channels": [8, 16]}
    assert config.data.max_vocab is None


def test_unknown_keys_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match="unknown key 'learning_rate'.*valid keys: .*lr"):
        load_config(path)
    with pytest.raises(ConfigError, match="unknown key 'colection'"):
        load_config(None, ["data.colection=wikiqa"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(None, ["train.lr"])
    with pytest.raises(ConfigError, match=r"train.epochs: expected int, found 'many'"):
        load_config(None, ["train.epochs=many"])


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:\d+: not valid YAML"):
        load_config(path)


def test_shipped_configs_load():
    from neurank.config import SHIPPED_CONFIGS, shipped_configs
    from neurank.workflows.results_table import load_plan

    assert shipped_configs() == [
        "adhoc",
        "answer_selection",
        "benchmark",
        "benchmark_glove",
        "benchmark_pretrained",
        "nfcorpus",
        "wikiqa",
    ]
    for name in shipped_configs():
        if not name.startswith("benchmark"):  # the benchmark configs are not experiment configs
            assert load_config(name) == load_config(SHIPPED_CONFIGS / f"{name}.yaml")
    plan = load_plan("benchmark")
    assert set(plan.collections) == {"wikiqa", "nfcorpus"} and len(plan.seeds) == 5
    # The task configs beside benchmark.yaml prepare the data as the single-model configs do.
    for collection, task, single in (("wikiqa", "answer_selection", "wikiqa"), ("nfcorpus", "adhoc", "nfcorpus")):
        base, own = plan.collections[collection], load_config(single)
        assert load_config(task).data == own.data and base.embeddings == own.embeddings
        assert load_config(task).train == own.train
    assert load_plan("benchmark", quick=True).seeds == [1]


def test_a_bare_name_finds_the_shipped_config_from_any_directory(tmp_path, monkeypatch):
    from neurank.config import SHIPPED_CONFIGS, resolve_config

    monkeypatch.chdir(tmp_path)
    assert resolve_config("wikiqa") == SHIPPED_CONFIGS / "wikiqa.yaml"
    assert load_config(Path("wikiqa"), ["train.lr=3e-4"]).train.lr == pytest.approx(3e-4)  # the CLI passes a Path
    # A file of that name in the working directory wins; a path (suffix or directory) is never looked up by name.
    Path("wikiqa").write_text("data:\n  collection: nfcorpus\n")
    assert load_config("wikiqa").data.collection == "nfcorpus"
    for missing in ("wikiqa.yaml", "configs/wikiqa.yaml", "msmarco"):
        with pytest.raises(
            FileNotFoundError,
            match=r"config file not found \(shipped configs, by name: adhoc, answer_selection, benchmark, "
            r"benchmark_glove, benchmark_pretrained, nfcorpus",
        ):
            load_config(missing)


def test_a_benchmark_file_anywhere_names_shipped_task_configs(tmp_path, monkeypatch):
    from neurank.workflows.results_table import load_plan

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(
        "collections:\n  wikiqa: {config: wikiqa, measures: [AP]}\n  nfcorpus: {config: nfcorpus.yaml}\n"
        "models:\n  knrm: {}\nseeds: [3]\n"
    )
    plan = load_plan(tmp_path / "mine.yaml")
    assert plan.collections == {"wikiqa": load_config("wikiqa"), "nfcorpus": load_config("nfcorpus")}
    (tmp_path / "odd.yaml").write_text("collections:\n  wikiqa: {config: elsewhere.yaml}\nmodels: {}\n")
    with pytest.raises(FileNotFoundError, match=r"odd.yaml: collection 'wikiqa': config 'elsewhere.yaml' not found"):
        load_plan("odd.yaml")
    with pytest.raises(FileNotFoundError, match=r"^nothing: benchmark config not found"):
        load_plan("nothing")


# A task config with a `models:` section: `model=NAME` picks one entry, and only that entry is read.
TASK = """\
model: knrm
model_config: {use_first_stage_score: true}
models:
  knrm: {n_kernels: 5, dropout: 0.2}
  match_pyramid: {interactions: [cosine, exact], conv_channels: [4]}
  drmm:
  compare_aggregate: {exact_match: true, train: {epochs: 20, patience: 20}}
train: {epochs: 3, patience: 2, lr: 0.01}
"""


def test_a_models_section_gives_the_chosen_model_its_own_options(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(TASK)
    knrm = load_config(path)
    assert knrm.model == "knrm" and knrm.model_config == {"n_kernels": 5, "dropout": 0.2, "use_first_stage_score": True}
    assert load_config(path, ["model=match_pyramid"]).model_config == {
        "interactions": ["cosine", "exact"],
        "conv_channels": [4],
        "use_first_stage_score": True,
    }
    assert load_config(path, ["model=drmm"]).model_config == {"use_first_stage_score": True}  # null: its defaults
    # The config holds only the chosen model's options: what a single-model config would hold.
    assert "models" not in load_config(path).to_dict()


def test_the_precedence_of_model_options_and_training_options(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(TASK)
    # The entry goes on top of the file's model_config (it is more specific), the command line on top of both.
    path.write_text(TASK.replace("model_config: {use_first_stage_score: true}", "model_config: {dropout: 0.0}"))
    assert load_config(path).model_config["dropout"] == 0.2  # knrm's entry
    assert load_config(path, ["model=match_pyramid"]).model_config["dropout"] == 0.0  # no dropout in its entry
    assert load_config(path, ["model_config.dropout=0.4"]).model_config["dropout"] == 0.4
    assert load_config(path, ["models.knrm.n_kernels=7"]).model_config["n_kernels"] == 7
    # An entry's train section replaces the file's for that model only; train.KEY= on the command line wins.
    aggregate = load_config(path, ["model=compare_aggregate"])
    assert (aggregate.train.epochs, aggregate.train.patience, aggregate.train.lr) == (20, 20, 0.01)
    assert load_config(path, ["model=knrm"]).train.epochs == 3
    quick = load_config(path, ["model=compare_aggregate", "train.epochs=1"]).train
    assert (quick.epochs, quick.patience) == (1, 20)


def test_a_models_section_names_what_is_wrong(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(TASK)
    with pytest.raises(ConfigError, match=r"task.yaml: models: no entry for model 'tk'; the config has options for "):
        load_config(path, ["model=tk"])
    with pytest.raises(ConfigError, match=r"add `models: \{cnn: \{\}\}`"):  # an alias is not its model's entry
        load_config(path, ["model=cnn"])
    bad = {
        "models: [knrm]": r"models: expected a mapping of model name to its options",
        "models: {knrm: 3}": r"models\.knrm: expected a mapping of the model's options, found 3",
        "models: {knrm: {train: 3}}": r"models\.knrm\.train: expected a mapping of train keys",
        # Every entry's training keys are checked, whichever model is chosen.
        "models: {knrm: {}, tk: {train: {epoch: 3}}}": r"task.yaml: models\.tk\.train: unknown key 'epoch'",
        "modles: {knrm: {}}": r"unknown key 'modles'; valid keys: data, embeddings, model, model_config, models, train",
        "model_config: 3": r"model_config: expected a mapping",
    }
    for text, message in bad.items():
        path.write_text("model: knrm\n" + text + "\n")
        with pytest.raises(ConfigError, match=message):
            load_config(path)


def test_a_config_without_a_models_section_is_read_as_before(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: knrm\nmodel_config: {n_kernels: 5}\n")
    config = load_config(path, ["model_config.dropout=0.1"])
    assert config.model_config == {"n_kernels": 5, "dropout": 0.1}
    # Switching model keeps model_config as given: with no models section there is nothing else to take.
    assert load_config(path, ["model=drmm"]).model_config == {"n_kernels": 5}


def test_the_shipped_task_configs_have_an_entry_for_every_registered_model():
    from neurank.config import SHIPPED_CONFIGS, model_entries, read_config
    from neurank.models import model_names

    for name in ("answer_selection", "adhoc"):
        values, _ = read_config(SHIPPED_CONFIGS / f"{name}.yaml")
        assert sorted(model_entries(values)) == model_names()


def test_the_answer_selection_config_trains_match_pyramid_as_wikiqa_yaml_does():
    from neurank.models import config_from_dict, model_classes

    def effective(config):
        return config_from_dict(model_classes(config.model)[1], config.model_config)

    for task, single in (("answer_selection", "wikiqa"), ("adhoc", "nfcorpus")):
        mine, theirs = load_config(task, ["model=match_pyramid"]), load_config(single)
        assert effective(mine) == effective(theirs)
        assert (mine.data, mine.embeddings, mine.train) == (theirs.data, theirs.embeddings, theirs.train)


def test_load_configs_makes_one_config_per_candidate(tmp_path):
    from neurank.config import load_configs

    path = tmp_path / "task.yaml"
    path.write_text(TASK)
    configs = load_configs(path, ["train.lr=0.5"], ["knrm", "compare_aggregate"])
    assert list(configs) == ["knrm", "compare_aggregate"]
    assert configs["knrm"] == load_config(path, ["train.lr=0.5", "model=knrm"])
    assert configs["compare_aggregate"].train.epochs == 20 and configs["compare_aggregate"].train.lr == 0.5
    with pytest.raises(ConfigError, match="'knrm' is named twice"):
        load_configs(path, [], ["knrm", "knrm"])
    with pytest.raises(ConfigError, match="model=...: choose the models with the list of candidates"):
        load_configs(path, ["model=drmm"], ["knrm"])
    with pytest.raises(ConfigError, match="at least one model"):
        load_configs(path, [], [])


def test_data_settings_that_cannot_work_are_refused():
    assert load_config(None, ["data.dev_fraction=0.2"]).data.dev_fraction == 0.2
    assert load_config(None, ["data.dev_fraction=0"]).data.dev_fraction == 0.0  # carve none
    for bad in ("1", "-0.1", "1.5"):
        with pytest.raises(ConfigError, match=r"data\.dev_fraction: expected a fraction from 0"):
            load_config(None, [f"data.dev_fraction={bad}"])
    with pytest.raises(ConfigError, match=r"expected three different splits.*'test', 'test'"):
        load_config(None, ["data.dev_split=test"])


def test_the_brown_corpus_is_on_off_or_a_path():
    assert load_config(None, ["embeddings.brown=true"]).embeddings.brown is True
    assert load_config(None, ["embeddings.brown=false"]).embeddings.brown is False
    assert load_config(None, ["embeddings.brown=/corpora/brown.zip"]).embeddings.brown == "/corpora/brown.zip"
    assert load_config(None, ["embeddings.extra_text=more.txt"]).embeddings.extra_text == "more.txt"
    with pytest.raises(ConfigError, match=r"embeddings\.brown: expected bool or str, found 3"):
        load_config(None, ["embeddings.brown=3"])


# --- files and overrides that cannot be a config: one line naming the file or the override (issue 22) -------------

BAD_CONFIG_FILES = [
    ("list.yaml", b"- model\n- knrm\n", "list.yaml: expected a mapping of sections .* found a list"),
    ("scalar.yaml", b"knrm\n", "scalar.yaml: expected a mapping of sections .* found a str"),
    ("empty.yaml", b"", "empty.yaml: the config is empty"),
    ("blank.yaml", b"  \n\n", "blank.yaml: the config is empty"),
    ("comments.yaml", b"# model: knrm\n", "comments.yaml: the config is empty"),
    ("latin1.yaml", b"model: caf\xe9\n", r"latin1.yaml: expected UTF-8 text, found byte 0xe9 at offset 10"),
    ("control.yaml", b"model: \x01\n", r"control.yaml: not valid YAML \(character #x0001 at offset 7"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_CONFIG_FILES, ids=[row[0] for row in BAD_CONFIG_FILES])
def test_a_file_that_is_not_a_config_is_named(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_an_explicit_empty_mapping_still_means_the_defaults(tmp_path):
    path = tmp_path / "defaults.yaml"
    path.write_text("{}\n")
    assert load_config(path) == load_config(None)


BAD_OVERRIDES = [
    ("train.lr=[1,", r"override 'train.lr=\[1,': expected a YAML value .* found invalid YAML .*line 1, column 4"),
    ("model_config.x={a", r"override 'model_config.x=\{a': expected a YAML value"),
    ("train.lr=\x01", r"override 'train.lr=\\x01': expected a YAML value .*character #x0001"),
    (".lr=1", r"override '.lr=1': expected a dotted key such as train.lr"),
    ("train..lr=1", r"override 'train..lr=1': expected a dotted key"),
    ("train=[1]", r"defaults: train: expected a mapping of train keys, found \[1\]"),
    ("train.lr.x=1", r"train.lr: expected float, found \{'x': 1\}"),
]


@pytest.mark.parametrize(("override", "message"), BAD_OVERRIDES, ids=[row[0] for row in BAD_OVERRIDES])
def test_an_override_that_cannot_be_read_is_named(override, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(None, [override])
    assert "\n" not in str(info.value)


def test_an_override_fills_a_section_left_empty_in_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: knrm\ntrain:\n")
    assert load_config(path, ["train.lr=0.5"]).train.lr == 0.5


@pytest.mark.parametrize(
    ("content", "overrides", "message"),
    [
        (b"- a\n", [], "c.yaml: expected a mapping of sections"),
        (b"", [], "c.yaml: the config is empty"),
        (b"model: \xff\n", [], "c.yaml: expected UTF-8 text"),
        (b"model: knrm\n", ["train.lr=[1,"], r"override 'train.lr=\[1,': expected a YAML value"),
    ],
    ids=["list", "empty", "not-utf8", "override"],
)
def test_the_cli_prints_one_line_and_exits_2(tmp_path, capsys, content, overrides, message):
    import re

    from neurank.cli import main

    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(SystemExit) as info:
        main(["train", str(path), *overrides, "--output-dir", str(tmp_path / "out")])
    assert info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert err.startswith("error: ") and re.search(message, err)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"train": {"patience": 0}}, "mine: train.patience: expected an integer 1 or more, found 0"),
        ({"train": {"weight_decay": -0.1}}, "mine: train.weight_decay: expected a finite number 0 or more, found -0.1"),
        ({"data": {"max_vocab": 2}}, "mine: data.max_vocab: expected an integer 3 or more or null, found 2"),
        ({"data": {"min_freq": 0}}, "mine: data.min_freq: expected an integer 1 or more, found 0"),
        ({"data": {"fold": -1}}, r"mine: data.fold: expected a fold from 0 to 4 \(folds is 5\), found -1"),
        ({"embeddings": {"window": 0}}, "mine: embeddings.window: expected an integer 1 or more, found 0"),
    ],
)
def test_counts_and_rates_out_of_range_name_the_key_and_the_range(values, message):
    from neurank.config import config_from_dict

    with pytest.raises(ConfigError, match=f"^{message}$"):
        config_from_dict(values, "mine")


def test_the_smallest_settings_that_can_train_are_accepted():
    from neurank.config import config_from_dict

    config = config_from_dict(
        {
            "train": {"epochs": 1, "patience": 1, "negatives": 1, "batch_size": 1, "lr": 1e-9, "grad_clip": 0},
            "data": {"candidates": 1, "max_doc_len": 1, "folds": 2, "fold": 1, "max_vocab": None},
        }
    )
    assert (config.train.epochs, config.train.patience, config.data.fold) == (1, 1, 1)
