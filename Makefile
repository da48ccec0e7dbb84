# Wink & TripPay webhooks. `make run` starts everything; `make test` runs the whole suite.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, else a private copy installed from PyPI into .tools/ (a fresh machine needs only make + python3).
UV := $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PY := $(UV) run --frozen python

.PHONY: help uv sync browser infra-up infra-down infra-status lint typecheck test test-unit test-integration test-e2e \
        run registry router deliverer receiver topics bench chaos clean

help:
	@echo "make run          start the whole system (installs what is missing); Ctrl-C stops it"
	@echo "make test         lint, type checks and every test tier against real servers"
	@echo "make infra-up     start local Kafka + FerretDB (idempotent); make infra-down stops them"
	@echo "make registry | router | deliverer   one more instance of a service in the foreground"
	@echo "make receiver     sample receiver that prints and verifies webhooks (RECEIVER_SECRET=whsec_...)"
	@echo "make topics       create every topic (idempotent)"
	@echo "make bench        benchmarks (writes bench/RESULTS.md, under 10 minutes)"
	@echo "make chaos        fault-tolerance run (writes bench/CHAOS.md); make soak: bad-input soak only"

$(CURDIR)/.tools/bin/uv:
	@echo "[make] installing uv from PyPI into .tools/"
	python3 -m venv .tools && .tools/bin/pip install -q --disable-pip-version-check uv

uv: $(UV)

.venv/.synced: uv.lock pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml) | $(UV)
	$(UV) sync --frozen --all-packages
	@touch $@

sync: .venv/.synced

infra-up: sync
	$(PY) tools/infra.py up

infra-down: sync
	$(PY) tools/infra.py down

infra-status: sync
	$(PY) tools/infra.py status

lint: sync
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: sync
	$(UV) run --frozen mypy libs services tools tests

test-unit: sync
	$(UV) run --frozen pytest tests/unit -q

test-integration: infra-up
	$(UV) run --frozen pytest tests/integration -q

test-e2e: infra-up
	$(UV) run --frozen pytest tests/e2e -q

# The browser tests drive Debian's chromium (Playwright from PyPI, through its executable path; never
# `playwright install`). Installed when missing (CI and fresh machines run as root).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "[make] installing chromium for the browser tests (apt-get)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

test-e2e: browser

# pytest exits 5 when no test was collected; make turns that into a failure like any other non-zero.
test: lint typecheck infra-up browser
	$(UV) run --frozen pytest tests -q -ra -p no:cacheprovider --durations=15

# The development profile (see tools/run.py and README.md); a variable set in the environment wins.
run: sync
	$(PY) tools/run.py

# One more instance of one service in the foreground (a second `make deliverer` joins the same group).
registry router deliverer: sync
	$(PY) tools/run.py $@

# Sample receiver on :9000 (RECEIVER_PORT); RECEIVER_SECRET=whsec_... verifies signatures.
receiver: sync
	$(UV) run --frozen whctl receiver

topics: sync
	$(UV) run --frozen whctl topics create

# End-to-end benchmarks (bench/e2e_bench.py, about 7 minutes): raw figures in bench/results/<date>.json and
# the figures block at the top of bench/RESULTS.md. Then the component benches at reduced sizes so the whole
# target stays under 10 minutes (figures printed only; BENCH_COMPONENTS=0 skips them; their authors' own
# runs fill their RESULTS.md sections). BENCH_ARGS=--quick for a smoke run of the end-to-end part.
bench: infra-up
	$(PY) tools/infra.py prune  # topics killed test runs left behind cost the broker CPU even when idle
	$(PY) bench/e2e_bench.py $(BENCH_ARGS)
	@if [ "$(BENCH_COMPONENTS)" != "0" ]; then \
	  $(PY) bench/router_bench.py --events 10000 --fanout-events 40 && \
	  $(PY) bench/deliverer_bench.py --tasks 8000; \
	fi

# Fault tolerance (tools/chaos, about 9 minutes, bounded): on a private Kafka + FerretDB pair (the shared
# servers are never touched), 200 webhooks and 20,000 events while deliverers, routers, the broker, the
# database and 10% of receivers fail in turn; then the bad-input soak (130,000 malformed records on the
# input and internal topics). Report: bench/CHAOS.md, raw figures: bench/results/chaos.json and soak.json.
# Fails when anything is lost or does not recover.
# CHAOS_ARGS passes options (e.g. CHAOS_ARGS="--events 2000 --rate 20" for a quick look).
.PHONY: soak
chaos: sync
	$(PY) -m tools.chaos all $(CHAOS_ARGS)

# The bad-input soak alone (about 3 minutes).
soak: sync
	$(PY) -m tools.chaos soak $(CHAOS_ARGS)

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
