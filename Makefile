# rnnkit: `make demo` runs the main job on built-in data, `make test` runs the test suite.
# Both create .venv on first use (CPU torch first, so set-up takes a minute, not a GPU download).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints-cpu.txt torch
	$(PY) -m pip install --quiet -c constraints-cpu.txt -e ".[test]"
	-$(PY) -m rnnkit.kernels
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rnnkit demo --out runs/demo --force

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) -m pip install --quiet -c constraints-cpu.txt -e ".[bench]" || echo "rnnkit: Keras not installed; its contender is skipped"
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) runs build src/*.egg-info .pytest_cache
