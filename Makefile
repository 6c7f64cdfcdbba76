# Two entry points for a fresh machine:
#   make study   install, then run the default study end to end (sample, train, correlate)
#   make test    install with test extras, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: study test install bench clean-study

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	# The NAS-Bench-201 reference implementation, for parameter-count tests and the side-by-side benchmark.
	# Its metadata pins numpy<=1.19 (no wheels for current Pythons); the modules we use need only torch.
	$(BIN)/python -m pip install -q --no-deps 'xautodl==1.0.0'
	touch $@

install: $(VENV)/.installed

study: install
	$(BIN)/python -m study.sample n=500
	$(BIN)/python -m study.train -m objective=rotation,supervised
	$(BIN)/python -m analysis.correlate

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python benchmarks/throughput.py
