# Alliance Dynamique: `make run` starts everything locally, `make test` runs every test against it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: help install browser infra-up infra-down services-up services-down run stop status test test-unit \
        bench lint reset

help:
	@echo "make run | stop | test | bench | lint | status | reset"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"' \
	  || { echo "error: $(PYTHON) is older than 3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

# The portal's front-end files (DSFR), axe-core for its accessibility tests and the AsyncAPI 3 JSON Schema the
# event catalog is checked against, from package-lock.json.
NODE_STAMP := node_modules/.package-lock.json
$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { echo "error: npm is missing (Node.js 18+): apt-get install npm"; exit 1; }
	npm ci --no-audit --no-fund
	@touch $@

install: $(STAMP) $(NODE_STAMP)

infra-up: install
	deploy/local/stack.sh up

infra-down:
	deploy/local/stack.sh down

services-up: infra-up
	deploy/local/services.sh up

services-down:
	deploy/local/services.sh down

# The demo data is far smaller than the country: `make run` compares it with goals at its own scale, and the
# dashboard says so ("objectifs de démonstration"). The services started any other way load the real goals.
run: export METRICS_GOALS_FILE ?= $(CURDIR)/services/metrics/goals.demo.json
run: services-up
	deploy/local/services.sh demo
	@echo
	@echo "Dashboard:  http://127.0.0.1:$${METRICS_PORT:-8004}/"
	@echo "Portal:     http://127.0.0.1:$${PORTAL_PORT:-8005}/  (demo accounts in .run/demo-credentials-portal.json)"
	@echo "Progress:   http://127.0.0.1:$${METRICS_PORT:-8004}/v1/progress"
	@echo "APIs:       partners :$${PARTNERS_PORT:-8001}  workshops :$${WORKSHOPS_PORT:-8002}  detection :$${DETECTION_PORT:-8003}  metrics :$${METRICS_PORT:-8004}  (each has /docs)"
	@echo "Terminals:  tokens in .run/demo-credentials.json (see README)"
	@echo "Logs:       .run/logs/   Stop with: make stop"

stop:
	-deploy/local/services.sh down
	deploy/local/stack.sh down

status:
	-deploy/local/stack.sh status
	deploy/local/services.sh status

test-unit: install
	$(PY) -m pytest -m unit -q

# The dashboard test drives Debian's Chromium headless (no browser download: the network is closed).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "error: chromium is missing: sudo apt-get install chromium"; exit 1; fi; }

# Integration and end-to-end tests start their own copies of the services on test ports.
test: infra-up browser
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff check shared services tests bench scripts
	$(VENV)/bin/ruff format --check shared services tests bench scripts
	$(VENV)/bin/mypy shared services

bench: infra-up
	$(PY) -m bench.run

reset: stop
	deploy/local/stack.sh reset
