# gridpilot — two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.setup-stamp
TORCH := torch==2.13.0
PACKAGES := libs/gridpilot libs/gridpilot-sim $(wildcard services/*)
PYPROJECTS := pyproject.toml $(wildcard libs/*/pyproject.toml services/*/pyproject.toml)
PYTEST_ARGS ?=

.PHONY: setup demo up test test-fast bench lint docs train train-holes train-atlas train-spa clean help

help:
	@echo "make setup   create .venv and install the library and every service (editable)"
	@echo "make demo    run a screening demo on the digital twin and print where its report is"
	@echo "make up      start the embedded stack (NATS + every service); Ctrl-C stops it"
	@echo "make test    set up, then run every test against real NATS, S3 and PostgreSQL"
	@echo "make bench   run the benchmarks; figures in bench/out/*.json"
	@echo "make lint    ruff, and mypy --strict on libs/ and services/"
	@echo "make docs    regenerate docs/asyncapi.json from the contracts"
	@echo "make train-holes  retrain the hole detector on the twin (about 30 min on 2 shared cores)"
	@echo "make train-atlas  retrain the atlas detector + crop classifier on twin atlases (~50 min on 2 cores)"
	@echo "make train-spa    retrain the micrograph picker on twin micrographs (~15 min on 1 core)"

setup: $(STAMP)

$(STAMP): $(PYPROJECTS) Makefile
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, pinned: the local CPU build; anything that depends on torch then keeps it.
	$(BIN)/pip install -q $(TORCH)
	# onnx is the exporter torch.onnx needs for training; onnxruntime serves the detectors.
	$(BIN)/pip install -q $(foreach p,$(PACKAGES),-e $(p)) -e 'libs/gridpilot[test,onnx]' \
		ruff mypy types-PyYAML "psycopg[binary]" sqlalchemy playwright "onnx>=1.16"
	# Browser tests drive Debian's chromium through Playwright (no browser download).
	command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
		echo "chromium not installed: browser tests will be skipped (install Debian's chromium)"
	@touch $(STAMP)

demo: setup
	$(BIN)/python -m gridpilot.cli demo

up: setup
	$(BIN)/python -m gridpilot.cli up

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	@# RELION 3.1 is bench/preprocess.py's frame-alignment peer (a system package, never a dependency).
	command -v relion_run_motioncorr >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq relion; } || \
		echo "relion not installed: bench/preprocess.py writes null RELION figures with the reason"
	mkdir -p bench/out
	for b in bench/[!_]*.py; do n=$$(basename $$b .py); \
		$(BIN)/python $$b --json bench/out/$$n.json || exit 1; done

lint: setup
	$(BIN)/ruff check libs services tests bench
	$(BIN)/mypy libs/gridpilot/src libs/gridpilot-sim/src $(wildcard services/*/src)

docs: setup
	$(BIN)/python -m gridpilot.cli docs asyncapi --out docs/asyncapi.json

# Rewrites services/hole-finder/src/hole_finder/weights/holes.{onnx,json}; the model card beside
# them says what the shipped weights measured.
train-holes: setup
	$(BIN)/python -m hole_finder.train --samples 1000 --steps 3000 --batch 16 --threads 1 --workers 2

# The shipped atlas models, from scratch: renders twin atlases (cached in bench/out/), trains the heat-map
# detector and the crop classifier, exports both to ONNX.
train-atlas: setup
	$(BIN)/python -m atlas_detector.train --cache bench/out/atlas-train-cache \
		--out services/atlas-detector/src/atlas_detector/models/atlas-squares

# The shipped micrograph picker, from scratch: renders 96 twin micrographs (cached in bench/out/),
# pre-trains the joint denoiser-detector with every particle labelled, exports ONNX + weights.
train-spa: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m picker_spa.train --twin-count 96 --val-count 8 --epochs 40 --steps 50 --width 24 \
		--max-covered 0.6 --picture-fraction 0.4 --threads 1 --cache bench/out/spa-twin-cache --out services/picker-spa/src/picker_spa/models --version spa-twin-3

clean:
	rm -rf .state bench/out
