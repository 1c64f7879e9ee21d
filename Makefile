# The product's front door. Every target sources scripts/env.sh (loopback-only ROS 2, own domain).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV := source scripts/env.sh
PYTEST_ARGS ?=

.PHONY: all setup test demo bench bench-quality lint clean eval-quick

all: test

setup:
	bash scripts/bootstrap.sh

test: setup
	$(ENV) && ruff check src test bench scripts
	$(ENV) && mypy
	$(ENV) && python -m pytest test $(PYTEST_ARGS)

demo: setup
	$(ENV) && python scripts/demo.py

bench: setup  # performance figures beside issue 13's targets -> runs/bench/bench.json (docs/performance.md)
	$(ENV) && python bench/run_all.py

bench-quality: setup  # the slow quality and ablation benches (f vs F per LVM, miners, stream norm, updates)
	$(ENV) && python bench/run_all.py --quality

lint: setup
	$(ENV) && ruff check src test bench scripts
	$(ENV) && mypy

clean:
	rm -rf build install log .pytest_cache
