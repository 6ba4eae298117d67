# ENUMER — two commands: `make run` (set up, seed the demo store, start the gateway)
# and `make test` (the whole suite). Only Python 3.11+ and make are needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint unit e2e bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/enumer demo seed
	@echo
	@echo "Try, in another terminal:"
	@echo "  dig -p 5335 @127.0.0.1 -t naptr +short 53995390081.enum"
	@echo "  dig -p 5335 @127.0.0.1 -t naptr +short 4.3.2.1.0.0.0.5.5.5.1.enum"
	@echo
	$(BIN)/enumer serve

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

unit: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

test: lint unit

bench: setup
	$(BIN)/python bench/gateway.py

clean:
	rm -rf $(VENV) build *.egg-info
