# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: demo test bench browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so nothing later pulls a CUDA build.
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pal run --out runs/demo --force

# Side-by-side speed and memory of the fast paths against the seed's way (see BENCHMARKS.md).
bench: $(STAMP)
	$(BIN)/pal bench --iterations 50

browser:
	scripts/ensure-chromium

test: $(STAMP) browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
