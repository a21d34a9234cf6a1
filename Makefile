# Every target creates .venv on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed
MUTATE_STAMP := $(VENV)/.mutate-installed

.PHONY: install demo test lint typecheck pytest serve bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict llmkit tests examples

pytest: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term-missing

test: lint typecheck pytest

demo: $(STAMP)
	$(BIN)/python -m llmkit demo

serve: $(STAMP)
	$(BIN)/python -m llmkit serve

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	touch $(BENCH_STAMP)

# llmkit vs openai vs a no-SDK floor (not part of `make test`; see bench/README.md).
# BENCH_ARGS=--quick for a smoke run, BENCH_REPEAT=N for the repetitions.
bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

$(MUTATE_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[mutate]"
	touch $(MUTATE_STAMP)

# Mutation testing of the pure decision modules with mutmut (not part of `make test`;
# CONTRIBUTING.md, "Mutation testing"). Modules and tests: [tool.mutmut] in pyproject.toml.
# Results are cached in mutants/; `make mutate MUTATE_CLEAN=1` starts afresh.
# MUTATE_JOBS=N sets the workers (default 2).
MUTATE_JOBS ?= 2
.PHONY: mutate
mutate: $(MUTATE_STAMP)
	$(if $(MUTATE_CLEAN),rm -rf mutants)
	$(BIN)/mutmut run --max-children $(MUTATE_JOBS) > mutants.log 2>&1 || (tail -n 40 mutants.log; exit 1)
	$(BIN)/python tools/mutate_report.py

# 10,000 WebSocket turns with a fault every ~100 (not part of `make test`, which runs
# 500); prints the figures. LLMKIT_SOAK_TURNS / LLMKIT_SOAK_SECONDS override.
.PHONY: soak
soak: $(STAMP)
	LLMKIT_SOAK_TURNS=$${LLMKIT_SOAK_TURNS:-10000} $(BIN)/pytest tests/test_soak.py -s -q

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .coverage htmlcov mutants mutants.log
