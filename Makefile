# Everything a fresh clone needs: python3.11 (or python3 at 3.11), pip and git.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPOTLAKE_HOME ?= $(CURDIR)/.spotlake
export SPOTLAKE_HOME
export DAGSTER_HOME ?= $(SPOTLAKE_HOME)/dagster_home
# `make demo` records its scale (and a partitions start it needed) here; `make ui` runs like the last demo
# on this home unless SCALE or SPOTLAKE_PARTITIONS_START is given.
-include $(SPOTLAKE_HOME)/demo.mk
ifeq ($(origin SCALE),undefined)
UI_SCALE := $(or $(DEMO_SCALE),1.0)
else
UI_SCALE := $(SCALE)
endif
UI_PARTITIONS_START := $(or $(SPOTLAKE_PARTITIONS_START),$(DEMO_PARTITIONS_START))
SCALE ?= 1.0
# `make demo MODE=single`: the single-account mode (aws_single/) instead of the full pipeline.
MODE ?= full
PYTEST_ARGS ?=

.PHONY: demo test ui lint bench install clean chromium

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The local instance config (run queue, concurrency pools, run retries, run monitoring).
$(DAGSTER_HOME)/dagster.yaml: infra/local/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp infra/local/dagster.yaml $@

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	SPOTLAKE_ENV=local SPOTLAKE_SCALE=$(SCALE) $(BIN)/python -m spotlake_assets.demo --mode $(MODE)

# checkov pins versions that conflict with the project's (tabulate, boto3): it gets a venv of its own.
CHECKOV := $(VENV)/tools/checkov/bin/checkov
$(CHECKOV):
	$(PYTHON) -m venv $(VENV)/tools/checkov
	$(VENV)/tools/checkov/bin/pip install --quiet checkov==3.3.30

test: $(STAMP) $(CHECKOV) lint chromium
	$(BIN)/pytest -n auto $(PYTEST_ARGS)

# The browser test drives Debian's chromium (Playwright's own browser download cannot work offline). As root
# (or with passwordless sudo) a failed install fails `make test`; only without either does the test skip.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	    SUDO="sudo -n"; else \
	    echo "chromium is missing and cannot be installed without root: the browser test will skip"; exit 0; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null \
	    || { echo "chromium could not be installed (apt-get failed): the browser test cannot run" >&2; exit 1; }; \
	  command -v chromium >/dev/null 2>&1 \
	    || { echo "apt-get installed chromium but no chromium command is on PATH" >&2; exit 1; }; }

lint: $(STAMP)
	$(BIN)/ruff check spotlake_assets spotlake_assets_tests benchmarks scripts
	$(BIN)/ruff format --check spotlake_assets spotlake_assets_tests benchmarks scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

# The instance's storage is created first under the lock the demo takes: `dagster dev` creates it unlocked,
# and a demo started at the same moment on a fresh home would collide with it on alembic_version.
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m spotlake_assets.demo --init-only
	SPOTLAKE_ENV=local SPOTLAKE_SCALE=$(UI_SCALE) $(if $(UI_PARTITIONS_START),SPOTLAKE_PARTITIONS_START=$(UI_PARTITIONS_START)) \
	  $(BIN)/dagster dev -w workspace.yaml

# Fault injection, not part of `make test` (minutes): kill -9 the demo at seeded random moments, rerun it,
# compare with an uninterrupted run. `make chaos CHAOS_TRIALS=5 CHAOS_ARGS="--scale 0.02 --windows 1"`.
CHAOS_TRIALS ?= 20
CHAOS_ARGS ?=
.PHONY: chaos
chaos: $(STAMP)
	$(BIN)/python scripts/chaos.py --trials $(CHAOS_TRIALS) $(CHAOS_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/merge_delta.py
	$(BIN)/python benchmarks/full_window.py
	$(BIN)/python benchmarks/azure_merge_delta.py
	$(BIN)/python benchmarks/azure_planner.py
	$(BIN)/python benchmarks/sinks.py
	$(BIN)/python benchmarks/tick.py
	$(BIN)/python benchmarks/single_account.py
	$(BIN)/python benchmarks/legacy_import.py

clean:
	rm -rf $(VENV) .spotlake .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
