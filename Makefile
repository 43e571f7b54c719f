# slb-ryu. The two commands the README promises: `make demo` and `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup install demo test test-unit test-integration lint format bench clean-net clean

setup:
	bash scripts/setup.sh

# Production install (root): venv in /opt/slb-ryu with runtime deps only, the systemd unit,
# /etc/slb-ryu. INSTALL_ARGS='--prefix DIR ...' (scripts/install.sh --help).
INSTALL_ARGS ?=
install:
	bash scripts/install.sh $(INSTALL_ARGS)

demo: setup
	$(PY) -m lab.demo

# pytest exit code 5 = "no tests collected": that is a failure too.
test: setup
	@rc=0; $(PY) -m pytest -v $(PYTEST_ARGS) tests || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

test-unit: setup
	$(PY) -m pytest -v -m "not integration" $(PYTEST_ARGS) tests

test-integration: setup
	$(PY) -m pytest -v -m integration $(PYTEST_ARGS) tests

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Benchmarks (bench/README.md): matplotlib for the plots (pinned, requirements-bench.txt),
# then the algorithm comparison (~75 s, no root) and the live Mininet comparison against
# OVS balance-slb (~5 min, root). They rewrite bench/*.png and bench/live-results.json.
bench: setup
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements-bench.txt
	$(PY) bench/algorithm.py
	$(PY) bench/live.py

# Crash recovery: remove the chassis topology's bridges/interfaces/host shells
# by name (PREFIX= the name prefix used, default none). Never `mn -c`.
PREFIX ?=
clean-net:
	cd / && $(CURDIR)/$(PY) -c 'import runpy; c = runpy.run_path("$(CURDIR)/mininet/chassis.py"); print(c["cleanup_chassis"]("$(PREFIX)"))'

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis *.egg-info build dist
