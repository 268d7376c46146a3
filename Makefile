# The two commands a new user needs: `make demo` and `make test` (and `make docs`, the site).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip --disable-pip-version-check --quiet

.PHONY: demo test test-library docs bench zounds-venv gpu-check browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so nothing later pulls a CUDA build.
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[app,dev,ray,docs,cdpam,judges]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/pal run --out runs/demo --force

# The documentation site, offline, into site/ (open site/index.html). --strict: a broken link, a
# page missing from the nav or a docstring that does not render is an error; `make test` runs it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# Side-by-side speed and memory against zounds 1.57.0 itself (see BENCHMARKS.md); `pal bench
# --matrix` is the cost table over losses, rates, lengths and batches.
bench: $(STAMP)
	$(BIN)/pal bench

# zounds 1.57.0, the post's original code, in its own venv: the baseline of `pal bench`.
zounds-venv:
	tools/zounds/make-venv

# On CUDA, inside 8 minutes: every CUDA test, pal bench --ops (where it exists), the cost matrix,
# the default run and the 75-run set, each part bounded in time; one screen and runs/gpu-check/
# summary.json. On a GPU machine without the venv: python3 scripts/gpu-check, src/ on PYTHONPATH.
# Says so in one line and succeeds on a machine without CUDA.
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu-check

browser:
	scripts/ensure-chromium

# The library alone, as a researcher installs it: a bare venv with torch and this package, no
# extras; it must hold nothing torch itself does not pull beyond numpy and scipy, and pass the
# library's own tests there.
LIBRARY_VENV := .venv-library
test-library:
	test -x $(LIBRARY_VENV)/bin/python || $(PYTHON) -m venv $(LIBRARY_VENV)
	$(LIBRARY_VENV)/bin/python -m pip --disable-pip-version-check --quiet install torch==2.13.0
	$(LIBRARY_VENV)/bin/python -m pip --disable-pip-version-check --quiet install . pytest
	$(LIBRARY_VENV)/bin/python -m pip --disable-pip-version-check --quiet install --force-reinstall --no-deps .
	$(LIBRARY_VENV)/bin/python scripts/check-library-install
	$(LIBRARY_VENV)/bin/python -m pytest -p no:cacheprovider tests/library --pyargs perceptual_audio_loss

# The application's suite is bounded (about 5 minutes on 2 cores): past 30 minutes it is stopped with
# SIGINT, so pytest prints where it was instead of the CI's limit cutting it off in silence.
test: $(STAMP) browser test-library docs
	timeout --signal=INT 1800 $(BIN)/python -m pytest tests/app src/pal

clean:
	rm -rf $(VENV) $(LIBRARY_VENV) runs site .pytest_cache
