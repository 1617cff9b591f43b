# carepath: two commands for a fresh machine.
#   make run   installs everything and runs the app on SQLite with demo data
#   make test  installs everything and runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DB ?= sqlite:///var/demo.db

.PHONY: setup lock audit chromium pango modeller-bundle run test bench bench-check clean

CHROMIUM ?= /usr/bin/chromium

# setup: the Python venv, bpmn-js from the locked npm dependencies, and Debian's
# Chromium (the headless browser tests/test_modeller_import.py opens the diagrams in).
setup: $(VENV)/.installed node_modules/.package-lock.json modeller-bundle chromium pango

# Python packages only from the lock file, every file checked against its SHA-256 (issue 15 item 8,
# docs/security.md "Dependencies"): a package changed on the index after it was locked fails the install.
# The locked pip and setuptools go in first (requirements-build.txt): a new venv's own setuptools (65 on
# Python 3.11) cannot build an sdist such as docopt's without the wheel package, and with no pip cache
# the install would fail. carepath itself goes in last, without dependencies and built by the locked setuptools.
$(VENV)/.installed: requirements-build.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements-build.txt
	$(PY) -m pip install --quiet --require-hashes --no-build-isolation -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# The lock files, from pyproject.toml (runtime + the dev extra) and requirements-build.in, for every platform
# (markers kept) from Python 3.11: requirements-dev.txt is what `make setup` installs (after
# requirements-build.txt, the same pip and setuptools), requirements.txt a production install
# (docs/operations.md). Versions already locked are kept; LOCK_ARGS='--upgrade' takes the
# newest allowed, LOCK_ARGS='--upgrade-package NAME' one package. Then `make audit`.
UV ?= $(VENV)/bin/uv
LOCK := $(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes --no-config \
        --custom-compile-command 'make lock' $(LOCK_ARGS)
lock: $(VENV)/.installed
	$(LOCK) pyproject.toml requirements-build.in --extra dev -o requirements-dev.txt
	$(LOCK) pyproject.toml requirements-build.in -c requirements-dev.txt -o requirements.txt
	$(LOCK) requirements-build.in -c requirements-dev.txt -o requirements-build.txt

# Known vulnerabilities in the locked Python and npm packages (.ci/audit.py; .ci/run runs it):
# exit 1 when one is found, 2 when a package could not be audited (the service unreachable); AUDIT_ARGS
# e.g. '--ignore GHSA-…' for one judged not to apply (say why in docs/security.md "Dependencies").
audit: $(VENV)/.installed
	$(PY) .ci/audit.py $(AUDIT_ARGS)

# Re-run only when the lock file changes (npm ci rewrites node_modules/.package-lock.json).
node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# The browser modeller and the review page's diagram diff, bundled by esbuild (modeller/build.mjs)
# into api/static/dist/ (not committed); rebuilt when the sources or the locked packages change.
MODELLER_SRC := modeller/build.mjs $(wildcard modeller/src/*.js modeller/src/*.css modeller/src/lint-rules/*.js)
modeller-bundle: api/static/dist/modeller.js

api/static/dist/modeller.js: node_modules/.package-lock.json $(MODELLER_SRC)
	node modeller/build.mjs

# Pango, which WeasyPrint (the evidence pack's PDF) draws text with, only when it is missing; apt needs root.
pango: $(VENV)/.installed
	@if ! $(PY) -c 'import weasyprint' >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && apt-get install -y libpango-1.0-0 libpangoft2-1.0-0 fonts-liberation; \
	  else \
	    echo "Pango is missing and this is not root: run 'sudo apt-get install -y libpango-1.0-0 libpangoft2-1.0-0'" \
	         "(evidence packs cannot be exported without it)"; \
	  fi; \
	fi

# Debian's chromium, only when it is missing; apt needs root.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update && apt-get install -y chromium; \
	  else \
	    echo "$(CHROMIUM) is missing and this is not root: run 'sudo apt-get update && sudo apt-get install -y chromium'" \
	         "(the bpmn-js modeller tests skip without it, and fail under CAREPATH_REQUIRE_BROWSER=1)"; \
	  fi; \
	fi

# the demo signs the history's heads into var/heads/signed (key in var/heads/keys), as a council would
# outside the database; the server signs again every hour and the integrity panel compares with it
HEADS ?= var/heads
run: setup
	$(PY) -m api.demo --db $(DB) --heads $(HEADS)
	CAREPATH_MFA_REQUIRED_ROLES= CAREPATH_API_DOCS=1 CAREPATH_HEADS_KEY=$(HEADS)/keys/heads.key CAREPATH_HEADS_DIR=$(HEADS)/signed $(VENV)/bin/carepath serve --db $(DB)

# the suite runs on TEST_WORKERS processes (pytest-xdist; every test has its own database or schema); worksteal:
# a worker that runs out of tests takes half of the other's queue, so one slow browser test at the end does not
# leave a core idle
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench.run $(BENCH_ARGS)

# The engine-throughput yardstick (bench/yardstick.py) run now, its ratios compared with the last committed
# bench/results/yardstick-*.json; exit 1 when a carepath/SpiffWorkflow ratio fell more than 15%.
# PostgreSQL (variant d, which the baseline has) from CAREPATH_TEST_POSTGRES_URL, else the local server .ci/run
# uses, started here if it is down (as .ci/run starts it); e.g. BENCH_CHECK_ARGS='--rounds 6 --n 150'.
PG_URL ?= $(or $(CAREPATH_TEST_POSTGRES_URL),postgresql://postgres@127.0.0.1:5432/test)
bench-check: $(VENV)/.installed
	@if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then \
	  pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql | head -n1)" main start || true; \
	  for _ in $$(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done; \
	fi
	CAREPATH_TEST_POSTGRES_URL=$(PG_URL) $(PY) -m bench.check --run $(BENCH_CHECK_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache
