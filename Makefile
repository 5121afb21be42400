# One entry point for set-up and checks. Every target creates .venv and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-unit test-ecosystem otel-build gitops-tools lint kafka-up kafka-down recordings suite week bench clean

$(STAMP): pyproject.toml setup.py $(wildcard operators/otlp/_wire*.c operators/otlp/_wire*.h operators/otlp/_json*.c operators/otlp/_json*.h operators/scout/detect/_tails.c operators/signals/_groups.c operators/_buckets.c)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## demo: run the demo on embedded defaults (no external service)
demo: $(STAMP)
	scripts/gitops/tools build kustomize
	$(BIN)/sre-space demo

## test: build the Collector and Jaeger if missing, start the local Kafka broker if none is
## configured, run every test, stop what it started
test: $(STAMP) gitops-tools
	$(BIN)/python scripts/run_tests.py

## test-ecosystem: the same, but only the tests that run the real Collector and Jaeger
test-ecosystem: $(STAMP)
	$(BIN)/python scripts/run_tests.py -m "collector or jaeger" -q

test-unit: $(STAMP) gitops-tools
	$(BIN)/pytest -m "not kafka and not e2e and not dashboard and not collector and not jaeger" -q

## otel-build: build the OpenTelemetry Collector and Jaeger v2 into ~/.cache/sre-space/otel
otel-build:
	scripts/otel/otel build all

## gitops-tools: build kustomize and helm (the shop's and the Fixer's renderers) into ~/.cache/sre-space/gitops
gitops-tools:
	scripts/gitops/tools build all

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

kafka-up:
	scripts/kafka/kafka up

kafka-down:
	scripts/kafka/kafka down

recordings: $(STAMP) gitops-tools
	$(BIN)/python -m chaos suite --out recordings

suite: $(STAMP) gitops-tools
	$(BIN)/python -m sre_space.harness.suite --out state/backtests/suite

week: $(STAMP) gitops-tools
	$(BIN)/python -m sre_space.harness.suite --out state/backtests/week --days 7 --scenarios --healthy-hours 0

bench: $(STAMP)
	$(BIN)/python -m bench.throughput

clean:
	rm -rf $(VENV) state .pytest_cache .mypy_cache .ruff_cache
