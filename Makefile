# dfer: `make demo` and `make test` each set everything up on a fresh machine first.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
DFER := $(VENV)/bin/dfer
STAMP := $(VENV)/.dfer-installed

DATASET ?= cremad
ROOT ?= samples/cremad
PRESET ?= tiny
DEVICE ?= cpu
STORE ?= cache/$(DATASET)-$(PRESET)

.PHONY: install test test-all demo extract clean

install: $(STAMP)

# Re-runs whenever a dependency file changes; pip skips what is already installed.
$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: install
	$(PY) -m pytest -q -m "not slow"

test-all: install
	$(PY) -m pytest -q

demo: install
	$(DFER) extract cremad samples/cremad --out cache/demo --preset tiny
	$(DFER) info cache/demo

extract: install
	$(DFER) extract $(DATASET) $(ROOT) --out $(STORE) --preset $(PRESET) --device $(DEVICE)
	$(DFER) info $(STORE)

clean:
	rm -rf cache/demo runs .pytest_cache
