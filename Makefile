# One task runner for developers and CI (.ci/run calls `make test`).
# `make serve`  installs nuseal and runs the feed on embedded defaults (SQLite, ./.nuseal/feed).
# `make test`   installs system packages the tests need, nuseal and its pinned dependencies, then lint + types + tests.
# `make fuzz`   the long fuzzing run: every target in fuzz/ for FUZZ_SECONDS each, FUZZ_JOBS at a time (the CI smoke
#               run is tests/test_fuzz.py::test_fuzz_smoke_run, about a minute in all).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PYTEST_ARGS ?=
FUZZ_SECONDS ?= 300
FUZZ_JOBS ?= 2
FUZZ_ARGS ?=

.PHONY: install system-deps lint typecheck test test-fast serve bench fuzz clean

$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/.installed

system-deps:
	bash scripts/install-system-deps.sh

lint: install
	$(BIN)/ruff check src tests bench fuzz
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

test: system-deps install lint typecheck
	$(BIN)/pytest -n 2 --timeout 900 $(PYTEST_ARGS)

test-fast: install
	$(BIN)/pytest -n 2 -m "not oracle and not slow and not nugetexe and not postgres and not browser and not dotnet" $(PYTEST_ARGS)

serve: install
	$(BIN)/nuseal serve

bench: install
	$(BIN)/python bench/verify.py

fuzz: install
	$(BIN)/python -m fuzz.run --seconds $(FUZZ_SECONDS) --jobs $(FUZZ_JOBS) --keep-going $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
