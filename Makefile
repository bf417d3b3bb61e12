# make lab    — install what is missing and open the course in JupyterLab
# make test   — install what is missing and run every test (unit, notebooks, Binder config, real browser)
# make bench  — the storm benchmark      make strip — strip outputs from the notebooks
# make clean  — remove the venv and the caches
# Every target is idempotent and prints nothing of its own when there is nothing to do.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
JUPYTER := $(VENV)/bin/jupyter
STAMP_APT := $(VENV)/.stamp-apt
STAMP_DEPS := $(VENV)/.stamp-deps
APT_PKGS := graphviz chromium libatomic1
ANNOUNCEMENTS := @jupyterlab/apputils-extension:announcements
NOTEBOOKS = $(wildcard course/*.ipynb course/solutions/*.ipynb)

.PHONY: all venv deps lab test bench strip clean

all: test

# System packages (Debian): Graphviz's dot, Chromium and libatomic1 (Playwright's node driver) for the
# browser tests. Checked once per venv; apt runs only when something is missing. sudo only when not root
# (and `sudo -n` when there is no terminal to ask for a password, e.g. CI with stdin closed).
$(STAMP_APT):
	@mkdir -p $(VENV)
	@missing=""; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -e /usr/lib/x86_64-linux-gnu/libatomic.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libatomic.so.1 ] \
	  || dpkg -s libatomic1 >/dev/null 2>&1 || missing="$$missing libatomic1"; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1; then \
	    sudo=""; \
	    if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then \
	      if [ -t 0 ]; then sudo="sudo"; else sudo="sudo -n"; fi; \
	    fi; \
	    echo "installing system packages:$$missing (apt-get)"; \
	    $$sudo apt-get update -qq && \
	    $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PKGS) \
	      >/dev/null || { echo "apt-get failed: install$$missing by hand"; exit 1; }; \
	  else \
	    echo "warning: no apt-get here; install$$missing yourself (python -m irqlab doctor prints how)"; \
	  fi; \
	fi
	@touch $@

$(VPY):
	@$(PY) -m venv $(VENV)
	@log=$$(mktemp); $(VPY) -m pip install -q --upgrade pip >$$log 2>&1 || cat $$log; rm -f $$log

# The project (editable) with the course and test extras; then the "python3" kernelspec in the venv's
# sys-prefix, so notebooks run by nbclient or JupyterLab use the venv's Python.
$(STAMP_DEPS): pyproject.toml | $(VPY)
	@echo "installing irqlab and its course/test dependencies into $(VENV)"
	@log=$$(mktemp); if ! $(VPY) -m pip install -q -e '.[course,test]' >$$log 2>&1; then cat $$log; rm -f $$log; exit 1; fi; rm -f $$log
	@$(VPY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null 2>&1
	@touch $@

venv deps: $(STAMP_APT) $(STAMP_DEPS)
	@:

test: deps
	@$(VPY) -m pytest -q

# The "get notified about Jupyter news?" toast covers the course on a fresh profile: disable it for the venv.
lab: deps
	@grep -qs '"$(ANNOUNCEMENTS)": true' $(VENV)/etc/jupyter/labconfig/page_config.json \
	  || $(JUPYTER) labextension disable "$(ANNOUNCEMENTS)" >/dev/null 2>&1
	@$(JUPYTER) lab course/00-index.ipynb --ServerApp.root_dir=. \
	  $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) \
	  $$( { [ -n "$$CI" ] || [ -z "$$DISPLAY$$WAYLAND_DISPLAY$$BROWSER" ]; } && echo --no-browser )

bench: deps
	@$(VPY) benchmarks/storm.py

strip: deps
	@$(VENV)/bin/nbstripout $(NOTEBOOKS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache .benchmarks *.egg-info build dist test-artifacts
	find . -path ./.git -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -prune -exec rm -rf {} +
