# STA data platform. Two commands do everything on a fresh machine:
#   make demo   - install, generate sample partners, run their DAGs through Airflow, print results
#   make test   - install, run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SYS_STAMP := $(VENV)/.system-packages
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export STA_DATA_ROOT ?= $(CURDIR)/data
export OMP_THREAD_LIMIT := 1
PATIENTS ?= 20
SEED ?= 7

.PHONY: demo test bench up down install system-packages lock clean-data clean help ner

help:
	@echo "make demo | make test | make bench | make up | make down | make lock | make clean-data"

$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --config-settings editable_mode=compat -e .
	@touch $@

$(SYS_STAMP): packages.txt
	bash scripts/install_system_packages.sh packages.txt
	@touch $@

install: $(STAMP) $(SYS_STAMP)

demo: install
	$(BIN)/python scripts/demo.py --patients $(PATIENTS) --seed $(SEED)

test: install
	bash scripts/run_tests.sh

bench: install
	bash scripts/run_bench.sh

# Ports: AIRFLOW__API__PORT=8081 STA_SEARCH_PORT=8001 make up. Ctrl-C or `make down` stops everything.
up: install
	bash scripts/airflow_up.sh

down:
	bash scripts/airflow_up.sh down

# Re-resolve requirements.txt into the lock file (run after editing requirements.txt).
lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet -r requirements.txt
	build/lock-venv/bin/pip freeze --all --exclude-editable | grep -v -E '^(pip|sta-platform)==' > requirements.lock
	rm -rf build/lock-venv

clean-data:
	rm -rf data .airflow

# Rebuild the Spanish clinical NER shipped in anonymization/ner/model (the
# report scrubber's default; CC BY 4.0 MEDDOCAN, see SOURCES.md there) from
# ../shared/data/meddocan: train split to learn, dev to pick the checkpoint.
# 30-60 minutes on 2 shared cores; nothing else needs it to run.
ner: install
	nice -n 10 $(BIN)/python -m anonymization.ner.train
