# webims: `make run` starts the system, `make test` runs the whole suite.
# Both create .venv and install everything on a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit fuzz fuzz-smoke bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/webims up

lint: $(STAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/ruff format --check src tests bench fuzz

typecheck: $(STAMP)
	$(BIN)/mypy src/webims

unit: $(STAMP)
	$(BIN)/python -m pytest -q

# A bounded fuzzing run is part of the suite; `make fuzz` runs longer.
fuzz-smoke: $(STAMP)
	WEBIMS_FUZZ_SECONDS=15 $(BIN)/python fuzz/run.py

test: lint typecheck fuzz-smoke unit

# Longer fuzzing than the bounded run inside `make test`.
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	WEBIMS_FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python fuzz/run.py

bench: $(STAMP)
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
