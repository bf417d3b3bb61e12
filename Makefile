# make lab    — install what is missing and open the course in JupyterLab (make lab PORT=8899: another port;
#               a busy port makes Jupyter take the next free one, and the URL it prints says which)
# make test   — install what is missing and run every test (unit, notebooks, Binder config, real browser)
# make fuzz   — the long randomized comparison of the storm engine with the replay, for
#               IRQLAB_FUZZ_SECONDS seconds (default 600): make fuzz IRQLAB_FUZZ_SECONDS=60
# make bench  — the storm benchmark      make strip — strip outputs from the notebooks
# make clean  — remove the venv and the caches
# Every target is idempotent and prints nothing of its own when there is nothing to do.
#
# System packages (Debian/Ubuntu, apt-get): python3 and python3-venv for the venv, graphviz for the diagrams;
# `make test` also needs chromium and libatomic1 (Playwright's node driver) for the browser tests. They are
# checked on every run (a few milliseconds) and installed only when missing: as root, or with sudo (`sudo -n`
# when there is no terminal to ask for a password, e.g. CI). Without either, make stops and prints the one
# command to run as root. apt's output goes to a log that is shown only if apt fails.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
JUPYTER := $(VENV)/bin/jupyter
STAMP_DEPS := $(VENV)/.stamp-deps
PORT ?= 8888
IRQLAB_FUZZ_SECONDS ?= 600
ANNOUNCEMENTS := @jupyterlab/apputils-extension:announcements
COURSE_URL := /lab/tree/course/00-index.ipynb
CHROMIUM ?= /usr/bin/chromium
NOTEBOOKS = $(wildcard course/*.ipynb course/solutions/*.ipynb)
LIBATOMIC ?= /usr/lib/x86_64-linux-gnu/libatomic.so.1 /usr/lib/aarch64-linux-gnu/libatomic.so.1
# what the system-package check looks for: "lab" (python3, venv, dot) or "test" (also chromium, libatomic1);
# `make test` sets it for everything it builds
SYSPKGS := lab

.PHONY: all system venv deps lab test fuzz bench strip clean
# one apt-get at a time, and the venv before pip
.NOTPARALLEL:

all: test

test: SYSPKGS := test

# The check runs `$(PY) -c 'import ensurepip, venv'` only while there is no venv: Debian ships ensurepip
# in python3-venv, and without it `python3 -m venv` makes a venv with no pip.
system:
	@missing=""; \
	if ! [ -x $(VPY) ] && ! $(PY) -c 'import ensurepip, venv' >/dev/null 2>&1; then missing="$$missing python3 python3-venv"; fi; \
	command -v dot >/dev/null 2>&1 || missing="$$missing graphviz"; \
	if [ "$(SYSPKGS)" = test ]; then \
	  [ -x $(CHROMIUM) ] || missing="$$missing chromium"; \
	  found=""; for f in $(LIBATOMIC); do [ -e "$$f" ] && found=1; done; \
	  [ -n "$$found" ] || dpkg -s libatomic1 >/dev/null 2>&1 || missing="$$missing libatomic1"; \
	fi; \
	[ -z "$$missing" ] && exit 0; \
	cmd="apt-get update && apt-get install -y --no-install-recommends$$missing"; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "irqlab needs:$$missing — there is no apt-get here: install them with your package manager"; \
	  echo "(python -m irqlab doctor prints the commands for conda and macOS once the venv exists)"; \
	  case "$$missing" in *python3*) exit 1;; esac; exit 0; \
	fi; \
	sudo=""; \
	if [ "$$(id -u)" != 0 ]; then \
	  if ! command -v sudo >/dev/null 2>&1; then why="there is no sudo"; \
	  elif sudo -n true >/dev/null 2>&1; then sudo="sudo -n"; \
	  elif [ -t 0 ] && sudo -v; then sudo="sudo"; \
	  elif [ -t 0 ]; then why="sudo did not accept you"; \
	  else why="sudo needs a password, and there is no terminal to ask for it"; fi; \
	  if [ -z "$$sudo" ]; then \
	    echo "irqlab needs these system packages:$$missing"; \
	    echo "you are not root and $$why: run this as root (su -), then make again:"; \
	    echo ""; echo "    $$cmd"; echo ""; exit 1; \
	  fi; \
	fi; \
	log=$$(mktemp); \
	echo "installing system packages:$$missing (apt-get$${sudo:+ with sudo})"; \
	if ! { $$sudo apt-get update -q && \
	       $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends$$missing; } \
	     </dev/null >$$log 2>&1; then \
	  cat $$log; echo "apt-get failed: its output is above (and in $$log)"; exit 1; \
	fi; \
	rm -f $$log; \
	if ! [ -x $(VPY) ] && ! $(PY) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
	  echo "$(PY) still cannot make a venv (python3-venv is installed; is $(PY) Debian's python3?)"; exit 1; \
	fi

# A venv is made whole or not at all: a failed step removes the half-made one, so the next run starts clean
# (a venv with no pip would otherwise pass for done).
$(VPY): | system
	@rm -rf $(VENV); log=$$(mktemp); \
	if ! { $(PY) -m venv $(VENV) && $(VPY) -m pip --version; } </dev/null >$$log 2>&1; then \
	  cat $$log; rm -f $$log; rm -rf $(VENV); \
	  echo "could not make $(VENV) with $(PY) (its output is above); removed the half-made $(VENV)"; exit 1; \
	fi; rm -f $$log

# The project (editable) with the course and test extras; then the "python3" kernelspec in the venv's
# sys-prefix, so notebooks run by nbclient or JupyterLab use the venv's Python, and JupyterLab's
# "get notified about Jupyter news?" toast, which covers the course on a fresh profile, turned off.
$(STAMP_DEPS): pyproject.toml | $(VPY)
	@echo "installing irqlab (editable) with its course and test extras into $(VENV): pip fetches JupyterLab,"
	@echo "Playwright, repo2docker... about 120 packages, a minute or two the first time (its log: only on failure)"
	@log=$$(mktemp); t0=$$(date +%s); \
	if ! { $(VPY) -m pip install -q --upgrade pip && \
	       $(VPY) -m pip install -q -e '.[course,test]' && \
	       $(VPY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" && \
	       $(JUPYTER) labextension disable "$(ANNOUNCEMENTS)"; } </dev/null >$$log 2>&1; then \
	  cat $$log; rm -f $$log; rm -rf $(VENV); \
	  echo "pip failed (its output is above); removed $(VENV), so that the next make starts clean"; exit 1; \
	fi; rm -f $$log; \
	echo "$(VENV) is ready: $$($(VPY) -m pip list 2>/dev/null | tail -n +3 | wc -l) packages in $$(( $$(date +%s) - t0 )) s"
	@touch $@

venv: $(VPY)
	@:

deps: system $(STAMP_DEPS)
	@:

test: deps
	@$(VPY) -m pytest -q

# The URL Jupyter prints opens the course's index (default_url), with the token.
lab: deps
	@$(JUPYTER) lab --ServerApp.root_dir=. --LabApp.default_url=$(COURSE_URL) --ServerApp.port=$(PORT) \
	  $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) \
	  $$( { [ -n "$$CI" ] || [ -z "$$DISPLAY$$WAYLAND_DISPLAY$$BROWSER" ]; } && echo --no-browser )

fuzz: deps
	@IRQLAB_FUZZ_SECONDS=$(IRQLAB_FUZZ_SECONDS) $(VPY) -m pytest -q tests/test_twin_fuzz.py tests/test_storm_equivalence.py

bench: deps
	@$(VPY) benchmarks/storm.py

strip: deps
	@$(VENV)/bin/nbstripout $(NOTEBOOKS)

clean:
	@rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache .benchmarks *.egg-info build dist test-artifacts
	@find . -path ./.git -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d -prune -exec rm -rf {} +
