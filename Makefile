# Two commands set up everything on a fresh machine:
#   make serve   creates .venv, installs, trains and publishes the demo models if the store is
#                empty, then serves them on 127.0.0.1:8000
#   make test    creates .venv if missing, installs, runs lint, type checks and the whole suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STORE  ?= ./store
HOST   ?= 127.0.0.1
PORT   ?= 8000
EXTRAS := train,s3,dev
# Re-install whenever pyproject.toml changes; the stamp names the extras installed.
STAMP  := $(VENV)/.installed-$(EXTRAS)

.PHONY: serve test lint typecheck pytest demo bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	# torch is pinned to 2.13.0 in the train extra: on CPU machines that is the local CPU wheel.
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

demo: $(STAMP)
	$(BIN)/python -m training demo --store $(STORE)

serve: demo
	INDUCTIVE_STORE=$(STORE) $(BIN)/python -m service --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean-venv:
	rm -rf $(VENV)
