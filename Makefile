# The two set-up commands: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := examples/town

.PHONY: run test lint bench clean screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m compileall -q gtcore gtui   # byte-compiled up front: the first command never pays for compiling
	touch $(STAMP)

run: $(STAMP)
	bash $(DEMO)/setup-demo.sh $(DEMO) >/dev/null
	$(BIN)/gtui --town $(DEMO)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python bench/ledger_bench.py
	$(BIN)/python bench/discovery_bench.py
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/digest_bench.py
	$(BIN)/python bench/tui_bench.py
	$(BIN)/python bench/cli_bench.py
	$(BIN)/python bench/hosts_bench.py

clean:
	rm -rf $(VENV) build *.egg-info

screenshots: $(STAMP)
	$(BIN)/python examples/screenshots.py
