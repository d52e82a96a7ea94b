# Every target sets itself up: a fresh clone needs only python3 (>= 3.10) and make.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

CHROMIUM := /usr/bin/chromium

.PHONY: serve demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch is pinned to 2.13.0 in the parity extra: the CPU build kept on these machines.
	$(PY) -m pip install --quiet -e '.[test,parity,dev,docs]'
	rm -f $(VENV)/.installed-* && touch $@

serve: $(STAMP)
	$(PY) -m mkdocs build --strict
	@echo "refattn docs: http://127.0.0.1:8000 (Ctrl-C stops)"
	$(PY) -m http.server 8000 --bind 127.0.0.1 --directory site

demo: $(STAMP)
	$(PY) -m refattn.demo

# The site's browser test reads the docs in Debian's headless Chromium.
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

test: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) -m refattn.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
