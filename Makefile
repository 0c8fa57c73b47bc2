# webims: `make run` starts the system, `make test` runs the whole suite.
# Both create .venv and install everything on a fresh clone.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck unit wic fuzz fuzz-smoke bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The browser WIC: npm packages pinned by package-lock.json, JsSIP bundled by
# esbuild into static/build/ (git-ignored; nothing third-party is committed).
WIC       := src/webims/wic
WIC_BUILD := $(WIC)/static/build/jssip.js

wic: $(WIC_BUILD)

$(WIC_BUILD): $(WIC)/package.json $(WIC)/package-lock.json $(WIC)/build.mjs $(WIC)/jssip-entry.js
	cd $(WIC) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && node build.mjs

run: $(STAMP) wic
	$(BIN)/webims up

lint: $(STAMP)
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/ruff format --check src tests bench fuzz

typecheck: $(STAMP)
	$(BIN)/mypy src/webims

unit: $(STAMP) wic
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
	rm -rf $(WIC)/node_modules $(WIC)/static/build
