# Two commands on a fresh machine with Python >= 3.10 and pip: `make demo` and `make test`.
# Both create .venv and install through constraints.txt, which pins torch to the CPU build.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --constraint constraints.txt

FLOORS := .venv-floors

.PHONY: demo test test-floors lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and by exact pin, so that no later resolver step can pick a CUDA build.
$(VENV)/.demo-installed: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) torch==2.13.0
	$(PIP) -e '.[plot]'
	touch $@

# The optional features too (command line, ONNX, scenes), so that their tests run.
$(VENV)/.test-installed: $(VENV)/.demo-installed
	$(PIP) -e '.[test,plot,io,onnx,raster,geotiff]'
	touch $@

demo: $(VENV)/.demo-installed
	$(BIN)/python examples/demo.py --out demo-output

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest -q

# The suite again at the lowest versions pyproject.toml declares (constraints-floors.txt).
$(FLOORS)/.installed: pyproject.toml constraints-floors.txt
	$(PYTHON) -m venv $(FLOORS)
	$(FLOORS)/bin/python -m pip install --quiet --constraint constraints-floors.txt torch==2.13.0
	$(FLOORS)/bin/python -m pip install --quiet --constraint constraints-floors.txt -e '.[test,plot]'
	touch $@

test-floors: $(FLOORS)/.installed
	$(FLOORS)/bin/python -m pytest -q -p no:cacheprovider --deselect tests/test_uci_quick.py

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) $(FLOORS) demo-output
