# The product's front door. Every target sources scripts/env.sh (loopback-only ROS 2, own domain).
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV := source scripts/env.sh
PYTEST_ARGS ?=

.PHONY: all setup test demo bench lint clean eval-quick

all: test

setup:
	bash scripts/bootstrap.sh

test: setup
	$(ENV) && ruff check src test bench scripts
	$(ENV) && mypy
	$(ENV) && python -m pytest test $(PYTEST_ARGS)

demo: setup
	$(ENV) && python scripts/demo.py

bench: setup
	$(ENV) && python bench/run_all.py

lint: setup
	$(ENV) && ruff check src test bench scripts
	$(ENV) && mypy

clean:
	rm -rf build install log .pytest_cache
