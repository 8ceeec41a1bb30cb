# Mishards: `make run` starts the embedded cluster, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTO_OUT := libs/common/src
PROTOS := $(wildcard protos/mishards/v1/*.proto)
PYPROJECTS := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)

.PHONY: install run test unit integration coverage style proto proto-check clean bench

install: $(STAMP)

$(STAMP): requirements/constraints.txt requirements/dev.txt $(PYPROJECTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt -r requirements/dev.txt
	touch $(STAMP)

run: install
	$(VENV)/bin/mishards up --writable 2

unit: install
	$(PY) -m pytest -q libs/common/tests libs/cli/tests services/meta/tests services/discovery/tests services/router/tests

integration: install
	$(PY) -m pytest -q tests/integration

test: unit deploy-tests integration

# .coveragerc: the router, meta and discovery processes the tests start are measured too.
coverage: install
	rm -f .coverage .coverage.*
	$(PY) -m coverage run -m pytest -q libs/common/tests libs/cli/tests services/meta/tests services/discovery/tests services/router/tests tests/integration
	$(PY) -m coverage combine -q
	$(PY) -m coverage report

style: install
	$(PY) -m ruff check libs services tests
	$(PY) -m ruff format --check libs services tests
	$(PY) -m mypy

proto: install
	$(PY) -m grpc_tools.protoc -Iprotos --python_out=$(PROTO_OUT) --pyi_out=$(PROTO_OUT) --grpc_python_out=$(PROTO_OUT) $(PROTOS)

# Fails when the committed stubs differ from what `make proto` would generate (a unit test, so tox's unit env checks it too).
proto-check: install
	$(PY) -m pytest -q libs/common/tests/test_generated_stubs.py

bench: install
	$(PY) -m benchmarks.run --preset $(or $(BENCH_PRESET),standard) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .tox .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# --- Deployment: container image, all-in-one compose, Helm chart (docs/deploy.md) ---
IMAGE ?= mishards:0.1.0
COMPOSE ?= docker compose -f deploy/all_in_one/docker-compose.yml
ROUTER_ADDRESS ?= 127.0.0.1:19530
START := PYTHON=$(abspath $(PY)) deploy/kubernetes/start.sh

.PHONY: deploy-tests build deploy probe_deploy clean_deploy cluster probe_cluster cluster_status clean_cluster

deploy-tests: install
	$(PY) -m pytest -q tests/deploy

build:
	docker build -t $(IMAGE) .

deploy:
	MISHARDS_IMAGE=$(IMAGE) $(COMPOSE) up -d

probe_deploy: install
	$(PY) deploy/probe.py $(ROUTER_ADDRESS)

clean_deploy:
	$(COMPOSE) down -v

cluster: install
	$(START) install

probe_cluster: install
	$(START) probe

cluster_status:
	$(START) status

clean_cluster:
	$(START) uninstall
