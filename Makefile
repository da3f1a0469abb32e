# Set-up is part of every target: a fresh machine needs only Python 3.11+, Java 17 and Maven.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: setup demo test test-unit test-integration lint chaos bench-train bench-stream bench-catalog bench-catalog-stream clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

setup: $(INSTALLED)
	$(PY) -m streamer.cli kafka fetch

demo: setup  ## start Kafka, train a model if needed, replay events, print recommendations
	$(PY) -m streamer.cli demo

test: setup  ## every test: unit, integration (real broker) and end-to-end
	$(PY) -m pytest -q

test-unit: $(INSTALLED)
	$(PY) -m pytest -q -m "not integration and not e2e"

test-integration: setup
	$(PY) -m pytest -q -m "integration or e2e"

lint: $(INSTALLED)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

chaos: setup  ## SIGKILLs, a broker crash and a rebalance under mixed producers, then an audit of every event (~10 min)
	$(PY) -m tests.chaos.drill

bench-train: $(INSTALLED)  ## model accuracy and training speed on rsc15-100k
	$(PY) bench/train_benchmark.py

bench-stream: setup  ## streaming throughput and latency vs the bare model and a bare Kafka pipe (~10 min)
	$(PY) -m bench.stream_benchmark

bench-catalog: $(INSTALLED)  ## exact vs approximate scoring at 50k, 200k and 1M items (~6 min)
	$(PY) -m bench.catalog_benchmark

bench-catalog-stream: setup  ## the streamer at 50k, 200k and 1M items: sustained rate, p99, RSS, swap (~40 min)
	$(PY) -m bench.stream_benchmark --large-catalogs

clean:
	rm -rf var .pytest_cache
