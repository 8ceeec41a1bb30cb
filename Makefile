# Mishards: `make run` starts the embedded cluster, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTO_OUT := libs/common/src
PROTOS := $(wildcard protos/mishards/v1/*.proto)
PYPROJECTS := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)

.PHONY: install run test unit integration coverage style proto proto-check clean bench bench-ha bench-inflight bench-workers fuzz

install: $(STAMP)

$(STAMP): requirements/constraints.txt requirements/dev.txt $(PYPROJECTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt -r requirements/dev.txt
	touch $(STAMP)

run: install
	$(VENV)/bin/mishards up --writable 2

unit: install
	$(PY) -m pytest -q libs/common/tests libs/cli/tests services/meta/tests services/discovery/tests services/router/tests tests/benchmarks

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

# Replica fill, shard move, the switch's pause and the failover window on real Milvus (docs/replication.md).
bench-ha: install
	$(PY) -m benchmarks.ha $(BENCH_HA_ARGS)

# The router's RSS growth under 8 concurrent 64 MB inserts against MAX_INFLIGHT_BYTES (docs/security.md#limits).
bench-inflight: install
	$(PY) -m benchmarks.inflight $(BENCH_INFLIGHT_ARGS)

# Search QPS at 32 threads of a router with 1 worker beside one with ROUTER_WORKERS=2, alternately (docs/performance.md).
bench-workers: install
	$(PY) -m benchmarks.workers $(BENCH_WORKERS_ARGS)

# The fuzz test with many more examples than `make test` runs (FUZZ_EXAMPLES per test; docs/security.md#fuzzing).
fuzz: install
	MISHARDS_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),5000) $(PY) -m pytest -q tests/integration/test_fuzz.py

clean:
	rm -rf $(VENV) .tox .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.*
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# --- Deployment: container image, all-in-one compose, Helm chart (docs/deploy.md) ---
# Docker when its engine answers, else podman (deploy/podman: Debian's podman, images built from
# Debian packages and host-built wheels, as no registry answers on the project's machines).
ENGINE ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
IMAGE ?= mishards:0.1.0
COMPOSE_FILE := deploy/all_in_one/docker-compose.yml
COMPOSE_PROJECT ?= mishards
ROUTER_ADDRESS ?= 127.0.0.1:19530
START := PYTHON=$(abspath $(PY)) deploy/kubernetes/start.sh
BUILD_docker = docker build -t $(IMAGE) .
BUILD_podman = IMAGE=$(IMAGE) PYTHON=$(abspath $(PY)) deploy/podman/build-images.sh mishards
COMPOSE_UP_docker = MISHARDS_IMAGE=$(IMAGE) docker compose -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE) up -d
# podman: Milvus from the milvus wheel, MariaDB from Debian, no Jaeger (its image cannot be had here).
COMPOSE_UP_podman = PYTHON=$(abspath $(PY)) deploy/podman/build-images.sh milvus mariadb \
	&& MISHARDS_IMAGE=$(IMAGE) MILVUS_IMAGE=localhost/mishards-milvus:2.3.5 \
	MARIADB_IMAGE=localhost/mishards-mariadb:10.11 TRACER_CLASS_NAME= \
	$(PY) deploy/all_in_one/up.py -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE) --without jaeger \
	--wait-writable http://127.0.0.1:$(or $(MISHARDS_METRICS_PORT),9191)/topology.json
COMPOSE_DOWN_docker = docker compose -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE) down -v
# podman-compose 1.0.3 leaves the project's network behind.
COMPOSE_DOWN_podman = podman-compose -p $(COMPOSE_PROJECT) -f $(COMPOSE_FILE) down -v \
	&& podman network prune --force --filter label=com.docker.compose.project=$(COMPOSE_PROJECT)

.PHONY: deploy-tests build deploy probe_deploy clean_deploy cluster probe_cluster cluster_status clean_cluster

deploy-tests: install
	$(PY) -m pytest -q tests/deploy

build: install
	$(BUILD_$(ENGINE))

deploy: install
	$(COMPOSE_UP_$(ENGINE))

probe_deploy: install
	$(PY) deploy/probe.py $(ROUTER_ADDRESS)

clean_deploy:
	$(COMPOSE_DOWN_$(ENGINE))

cluster: install
	$(START) install

probe_cluster: install
	$(START) probe

cluster_status:
	$(START) status

clean_cluster:
	$(START) uninstall
