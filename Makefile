# cam-audit: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out
BENCH_ARGS ?=
BENCH_FULL_ARGS ?=

.PHONY: install demo test lint bench bench-full clean

$(STAMP): setup.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
# The litert extra (the default CPU backend) has no macOS x86_64 wheel: without it cam-audit runs TensorFlow.
	$(PY) -m pip install --quiet -e '.[test,litert]' || $(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m reference.demo --workdir $(DEMO_DIR)

lint: $(STAMP)
	$(PY) -m ruff check pipeline transforms reference tests bench

test: $(STAMP) lint
	$(PY) -m pytest -q

# Throughput beside its limit and two alternatives, and memory at two sizes (see bench/README.md).
# BENCH_ARGS=--quick for a ~2-minute development run.
bench: $(STAMP)
	$(PY) -m bench.run_bench $(BENCH_ARGS)

# The full synthetic MURA (40,005 images, generated once into bench/out/full, ~3.6 GB), 2 worker processes.
bench-full: $(STAMP)
	$(PY) -m bench.full $(BENCH_FULL_ARGS)

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench/out build *.egg-info
