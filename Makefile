# cam-audit: `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo_out

.PHONY: install demo test lint bench bench-full clean

$(STAMP): setup.py
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m pipeline.demo --workdir $(DEMO_DIR)

lint: $(STAMP)
	$(PY) -m ruff check pipeline transforms tests

test: $(STAMP) lint
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench/out build *.egg-info
