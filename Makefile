# Every target creates or refreshes .venv first, so a fresh clone needs only python3 and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit chaos chaos-test bench bench-quick clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/ctsync demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy sync_tasks workers sandbox celeryconfig.py

# Everything, the chaos suite included (tests/chaos: its own Redis and fleet, 4-10 minutes).
test: $(STAMP) lint typecheck
	$(PY) -m pytest -q $(PYTEST_ARGS)

chaos-test: $(STAMP)
	$(PY) -m pytest -q tests/chaos

# The chaos run on its own: faults, killed workers, a Redis restart; prints the JSON report (also in
# test-artifacts/chaos-report.json) and fails when a check fails. It starts its own Redis.
chaos: $(STAMP)
	$(PY) -m tests.chaos.run --out test-artifacts/chaos-report.json

# Benchmarks (docs/benchmarks.md): sandboxes with HubSpot's real limit, real Redis (database 12, flushed),
# real workers. Write bench/results/latest.{json,md,png}. bench-quick finishes in under 5 minutes.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP)
	$(PY) -m bench --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
