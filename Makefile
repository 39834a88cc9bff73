# The two set-up commands: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO := examples/town

.PHONY: run test lint bench bench-peers clean screenshots

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
	$(BIN)/python -m mypy   # gtcore and gtui: [tool.mypy] files in pyproject.toml
	$(BIN)/python -m pytest -n 3  # two cores: the tests wait on children, servers and clocks, so three workers (216 s; two: 255-273 s)

lint: $(STAMP)
	$(BIN)/ruff check .

# Whole-process figures run gtui installed from a wheel into a venv of its own (cached under
# $$TMPDIR/gtui-bench), beside that venv's `python -c pass`; BENCH_ARGS=--quick checks they run.
bench: $(STAMP)
	$(BIN)/python bench/ledger_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/discovery_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/engine_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/digest_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/tui_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/cli_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/hosts_bench.py $(BENCH_ARGS)

# Optional: gtui beside APScheduler 4, installed into its own venv (skipped when it cannot be).
bench-peers: $(STAMP)
	$(BIN)/python bench/peer_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info

screenshots: $(STAMP)
	$(BIN)/python examples/screenshots.py
