# Every target sets itself up: a fresh clone needs only python3 (>= 3.11) and make.
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
SUM := $(shell cksum pyproject.toml | cut -d' ' -f1)
# Two installs into the same .venv: the docs site's (numpy and the docs extra, about
# 150 MB) and everything the tests need (every extra, about 2 GB with torch, jax and
# tensorflow-cpu). The second includes the first.
DOCS := $(VENV)/.docs-$(SUM)
ALL := $(VENV)/.all-$(SUM)
CHROMIUM := /usr/bin/chromium

# Material for MkDocs prints an end-of-life banner on every build; this is its switch.
export NO_MKDOCS_2_WARNING := 1

.PHONY: serve demo test bench clean

$(PY):
	@$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(f"refattn needs Python >= 3.11; $(PYTHON) is {v.major}.{v.minor} (try: make PYTHON=python3.11 ...)" if v < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)

# --no-compile: byte-compiling every installed module took half of the install time;
# Python compiles what the build imports, once.
$(DOCS): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -e '.[docs]'
	rm -f $(VENV)/.docs-* && touch $@

# torch is pinned to 2.13.0 in the parity extra: the CPU build kept on these machines.
$(ALL): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,parity,dev,docs]'
	rm -f $(VENV)/.docs-* $(VENV)/.all-* && touch $@ $(DOCS)

# Takes the port first (one line if it is in use), builds the site, serves it with the
# site's own 404 page; `make serve PORT=8001` for another port.
serve: $(DOCS)
	@$(PY) docs/hooks/serve_site.py --build --port $(PORT)

demo: $(DOCS)
	$(PY) -m refattn.demo

# The site's browser test reads the docs in Debian's headless Chromium.
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: $(ALL) $(CHROMIUM)
	$(PY) -m pytest
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: $(ALL)
	$(PY) -m refattn.bench

clean:
	rm -rf $(VENV) site .pytest_cache .mypy_cache .ruff_cache .hypothesis
