# Two entry points on a fresh machine: `make demo` and `make test`.
# Both bootstrap .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# kserve 0.21 would downgrade protobuf and add ~40 packages to .venv: it gets its own venv,
# used by tests/serve/test_oip_clients.py (InferenceRESTClient) and bench/serve.py (baseline).
KSERVE_VENV := .venv-kserve
KSERVE_STAMP := $(KSERVE_VENV)/.installed

.PHONY: demo test test-postgres lint bench bench-fleet clean kserve-venv api-fuzz api-fuzz-postgres

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(KSERVE_STAMP):
	test -x $(KSERVE_VENV)/bin/python || $(PYTHON) -m venv $(KSERVE_VENV)
	$(KSERVE_VENV)/bin/python -m pip install -q 'kserve==0.21.0' 'onnxruntime>=1.18,<2' numpy
	touch $(KSERVE_STAMP)

kserve-venv: $(KSERVE_STAMP)

demo: $(STAMP)
	$(BIN)/python -m trustload.demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

# The whole suite again, every Registry it starts backed by a throwaway PostgreSQL cluster.
test-postgres: $(STAMP)
	bash scripts/with-postgres.sh $(BIN)/python -m pytest -n 2 -q $(PYTEST_ARGS)

# schemathesis (third-party API fuzzer) against a dev-env Registry it starts and stops:
# every check, all phases including stateful, once per role; about two minutes.
$(VENV)/.apifuzz: $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev,apifuzz]'
	touch $@

api-fuzz: $(VENV)/.apifuzz
	$(BIN)/python scripts/api_fuzz.py $(API_FUZZ_ARGS)

# The admin role again with the Registry on a throwaway PostgreSQL cluster (it found an
# INTEGER-typed bind that only PostgreSQL refuses); about 50 s.
api-fuzz-postgres: $(VENV)/.apifuzz
	bash scripts/with-postgres.sh $(BIN)/python scripts/api_fuzz.py --only admin --budget 20

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/hash_verify.py
	$(BIN)/python bench/pull.py
	$(BIN)/python bench/oci_pull.py
	$(BIN)/python bench/fleet.py
	$(BIN)/python bench/serve.py

# 200 gate processes released together against 2 Registry replicas (one PostgreSQL,
# behind nginx in TLS passthrough) with model blobs in docker-registry; a few minutes.
# Needs nginx + libnginx-mod-stream, docker-registry, PostgreSQL, curl. Smaller run:
# make bench-fleet FLEET_ARGS="--gates 20 --size-mib 8"
bench-fleet: $(STAMP)
	$(BIN)/python bench/fleet.py $(FLEET_ARGS)

clean:
	rm -rf $(VENV) $(KSERVE_VENV) .pytest_cache .mypy_cache .ruff_cache
