# Eldercall: `make run` to try it, `make test` to check it.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config/eldercall.toml

.PHONY: run test lint unit integration system-deps venv bytecode clean bench lock screenshots

UV_VERSION := 0.13.9
TOOLS      := .tools
UV         := $(TOOLS)/bin/uv

# uv itself lives in a venv of its own: `uv sync` makes .venv exactly what uv.lock says
# (hashes checked), and would take out anything else, uv included.
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet 'uv==$(UV_VERSION)'

# Installs exactly what uv.lock pins, so a new release upstream cannot break a fresh clone.
# After changing the dependencies in pyproject.toml: `make lock`, and commit uv.lock.
# --compile-bytecode: the installed packages' .pyc files are written once, here. Where
# PYTHONDONTWRITEBYTECODE is set (it is on these machines), Python never writes them
# itself and every process compiled FastAPI, SQLAlchemy, pydantic, ... from source
# again: the daemon took 4.0 s to import, 1.3 s with them.
$(BIN)/eldercall: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --quiet --compile-bytecode --python $(PYTHON) --extra dev --extra postgres --extra demo
	touch $@

# Our own sources' .pyc, for the same reason; only what changed since is compiled again.
bytecode: venv
	$(BIN)/python -m compileall -q -j 0 dispatcher devices simulator tests

lock: | $(UV)
	$(UV) lock

venv: $(BIN)/eldercall

# Debian packages the tests need. Installed only when missing and when we are root
# (CI is); otherwise it says what to install.
system-deps:
	@if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null; \
	  else echo "please install mosquitto and mosquitto-clients (apt-get install mosquitto mosquitto-clients)"; exit 1; fi; \
	fi
	@# PostgreSQL server binaries: the database tests run on it too (tests/support/postgres.py).
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "please install postgresql (apt-get install postgresql)"; exit 1; fi; \
	fi
	@# Chromium for the browser tests (tests/support/browser.py); never `playwright install`.
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "please install chromium (apt-get install chromium)"; exit 1; fi; \
	fi

run: venv bytecode
	$(BIN)/eldercall demo --config $(CONFIG)

lint: venv
	$(BIN)/ruff check dispatcher devices simulator tests
	$(BIN)/ruff format --check dispatcher devices simulator tests
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Two processes (pytest-xdist): the suite is mostly waiting on brokers, databases and
# subprocesses, and takes about half the time of one process on the 2-core machine.
test: venv bytecode system-deps lint
	$(BIN)/pytest -q -n 2

# Issue 8's numbers, measured against baselines on the same broker in the same run; writes
# docs/benchmarks.md. Takes about ten minutes; `make bench BENCH_ARGS=--quick` in seconds,
# `BENCH_ARGS="burst --db postgres"` for one scenario.
BENCH_ARGS ?=
bench: venv bytecode system-deps
	$(BIN)/python -m simulator.bench $(BENCH_ARGS)

# The README's pictures of the console, taken by its browser test on this machine. A
# Chinese font (fonts-wqy-microhei) is needed to draw the pages' Chinese; the tests
# themselves do not need it.
screenshots: venv system-deps
	@if ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei >/dev/null; \
	  else echo "please install a Chinese font (apt-get install fonts-wqy-microhei)"; exit 1; fi; \
	fi
	ELDERCALL_SCREENSHOTS=docs/screenshots $(BIN)/pytest -q tests/e2e/test_console_browser*.py

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache var
