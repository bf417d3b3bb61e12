# make lab   — install what is missing and open the course in JupyterLab
# make test  — install what is missing and run every test
# Both are idempotent and quiet when there is nothing to do.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP_SYS := $(VENV)/.stamp-system
STAMP_DEPS := $(VENV)/.stamp-deps
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo >/dev/null && [ "$$(id -u)" != 0 ] && echo sudo)
APT_PKGS := graphviz chromium libatomic1

.PHONY: all deps lab test bench strip clean

all: test

# System packages (Debian): Graphviz's dot, Chromium for the browser tests, libatomic1.
$(STAMP_SYS):
	@mkdir -p $(VENV)
	@missing=""; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	dpkg -s libatomic1 >/dev/null 2>&1 || missing="$$missing libatomic1"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "please install:$$missing (no apt-get here)"; exit 1; fi; \
	fi
	@touch $@

$(VPY):
	@$(PY) -m venv $(VENV)
	@log=$$(mktemp); $(VPY) -m pip install -q --upgrade pip >$$log 2>&1 || cat $$log; rm -f $$log

$(STAMP_DEPS): pyproject.toml | $(VPY)
	@echo "installing irqlab and its course/test dependencies into $(VENV)"
	@log=$$(mktemp); if ! $(VPY) -m pip install -q -e '.[course,test]' >$$log 2>&1; then cat $$log; rm -f $$log; exit 1; fi; rm -f $$log
	@$(VPY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	@$(VENV)/bin/jupyter labextension disable "@jupyterlab/apputils-extension:announcements" >/dev/null 2>&1 || true
	@touch $@

deps: $(STAMP_SYS) $(STAMP_DEPS)
	@:

test: deps
	@$(VPY) -m pytest -q

lab: deps
	@$(VENV)/bin/jupyter lab course/00-index.ipynb --ServerApp.root_dir=. \
	  $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) \
	  $$( [ -n "$$CI" ] || [ -z "$$DISPLAY$$BROWSER" ] && echo --no-browser )

bench: deps
	@$(VPY) benchmarks/storm.py

strip: deps
	@$(VENV)/bin/nbstripout course/*.ipynb course/solutions/*.ipynb

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis *.egg-info test-artifacts
