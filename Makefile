# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install neurank, run the main job end to end on real data
#   make test   create .venv, install neurank with its test extras, run the test suite
PYTHON ?= python3
VENV ?= .venv
DATA_DIR ?= ../shared/data
BIN := $(VENV)/bin
# torch first and pinned, so that the package's `torch>=2.3` finds it satisfied and never pulls a CUDA build.
TORCH ?= torch==2.13.0

.PHONY: demo test venv clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(BIN)/.installed

# The main job: BM25 on every collection, then the CNN ranker trained on WikiQA and compared with BM25 on test.
demo: $(BIN)/.installed
	$(BIN)/neurank baseline --data-dir $(DATA_DIR)
	$(BIN)/neurank experiment configs/wikiqa.yaml --seeds 1 --output-dir runs/demo --data-dir $(DATA_DIR)

test: $(BIN)/.installed
	NEURANK_DATA=$(DATA_DIR) $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) indexes .pytest_cache
