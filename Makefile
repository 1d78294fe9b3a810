# Tripwire developer commands. On a fresh machine `make demo` and `make test` do all set-up themselves.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
# Dependencies reinstall only when the pins change (the hash covers the dependency lists only); the
# project itself is re-linked when pyproject.toml changes or the checkout moves.
PINS_HASH := $(shell sh .ci/pins-hash)
PATH_HASH := $(shell pwd | sha256sum | cut -c1-8)
DEPS_STAMP := $(VENV)/.deps-$(PINS_HASH)
LINK_STAMP := $(VENV)/.link-$(PINS_HASH)-$(PATH_HASH)
PYTEST_ARGS ?=

.PHONY: setup demo test test-unit test-integration bench browser postgres speech-tools ocr-tools clean

setup: $(LINK_STAMP)

$(DEPS_STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip==25.3 setuptools==84.2.1 wheel==0.45.1
	$(PY) -m pip install --quiet --no-build-isolation -e '.[test]'
	@rm -f $(VENV)/.deps-* $(VENV)/.link-*
	@touch $@

$(LINK_STAMP): $(DEPS_STAMP) pyproject.toml
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.link-*
	@touch $@

demo: setup  ## corpus -> Ray Train -> checkpoint -> Ray Serve -> HTTP requests, on local Ray
	$(PY) -m entrypoints.demo

# Two pytest-xdist workers: one runs every test on the session's Ray in order, the other everything else
# (unit tests, the reviewer app and browser pages, PostgreSQL) meanwhile (tests/conftest.py).
test: setup  ## unit + integration tests (goal: 15 minutes on 2 cores; unit alone: about 2 min)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

test-integration: setup
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

bench: setup  ## benchmarks; figures printed and saved under bench/results/
	$(PY) -m bench.bench_serving
	$(PY) -m bench.bench_hop_floor
	$(PY) -m bench.bench_ingest
	$(PY) -m bench.bench_scan

browser:  ## Debian's chromium, for the report screenshot tests (Playwright drives it; no browser download)
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium

postgres:  ## Debian's PostgreSQL server, for the review store's PostgreSQL tests (each starts a throwaway server)
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q postgresql

speech-tools:  ## Debian's espeak-ng and sox: spoken test clips and golden sets are made with them
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q espeak-ng sox

ocr-tools:  ## Debian's tesseract-ocr (English): the second OCR engine, beside the rapidocr wheel
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q tesseract-ocr tesseract-ocr-eng

clean:
	rm -rf runs data .pytest_cache
