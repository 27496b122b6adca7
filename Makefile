# logbench: every target creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCENARIO ?= scenarios/baseline.py
export RAY_USAGE_STATS_ENABLED = 0

.PHONY: venv run test test-slow lint typecheck unit demo bench peers validate gate baseline clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,peers]"
	touch $(STAMP)

venv: $(STAMP)

## The main job: run a benchmark scenario, write its result file and print a summary.
run: $(STAMP)
	$(BIN)/logbench run $(SCENARIO)

lint: $(STAMP)
	$(BIN)/ruff check logpipe harness scenarios bench tests
	$(BIN)/ruff format --check logpipe harness scenarios bench tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q -m "not slow" tests

## Multi-node clusters and whole-CLI interruption runs, in subprocesses (~4 min).
test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow tests

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/logbench demo

bench: $(STAMP)
	$(BIN)/pytest bench --benchmark-only

peers: $(STAMP)
	$(BIN)/logbench peers

validate: $(STAMP)
	$(BIN)/logbench validate

## The CI performance gate: machine-independent thresholds from the scenario, plus
## throughput against the committed baseline, normalised by each run's all-core
## machine calibration, with a wide tolerance (CI machines are shared 2-core boxes).
## See docs/ci.md.
GATE_FLAGS ?= --metric throughput.lines_per_s --normalize --tolerance 0.40 --out results/runs
gate: $(STAMP)
	$(BIN)/logbench gate scenarios/smoke.py --baseline results/baselines/smoke.json $(GATE_FLAGS)

## Refresh the committed baseline (run on an otherwise idle machine).
baseline: $(STAMP)
	$(BIN)/logbench gate scenarios/smoke.py --baseline results/baselines/smoke.json --update-baseline $(GATE_FLAGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .benchmarks
