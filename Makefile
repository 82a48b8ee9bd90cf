# iotlake: `make demo` and `make test` set everything up on a fresh machine (venv, packages, tshark, Delta jars).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup venv tshark chromium jars demo test test-heavy reliability lint format bench clean

setup: venv tshark chromium jars

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

# tshark from Debian, non-interactively; debconf answers "no" to non-root capture.
tshark:
	@command -v tshark >/dev/null 2>&1 || { \
	  echo "installing tshark (apt-get)"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | $(SUDO) debconf-set-selections && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq tshark >/dev/null; \
	} || { echo "error: tshark is missing and apt-get could not install it; install it with 'sudo apt-get install tshark'" >&2; exit 1; }
	@command -v editcap >/dev/null 2>&1 && command -v capinfos >/dev/null 2>&1 || { echo "error: editcap/capinfos missing (package wireshark-common)" >&2; exit 1; }

# Headless Chromium from Debian for the report's browser test (tests/integration/test_report.py skips without it).
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing chromium (apt-get)"; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; \
	} || { echo "error: chromium is missing and apt-get could not install it (the report's browser test needs it); install it with 'sudo apt-get install chromium'" >&2; exit 1; }

# Delta jars: Ivy through spark.jars.packages (Maven Central), else mvn dependency:copy into the jar cache.
jars: $(STAMP)
	@$(BIN)/python -m iotlake.spark jars

demo: setup
	$(BIN)/iotlake demo

test: setup
	$(BIN)/python -m pytest

# Tests too long for test's time budget: signatures on the 100 shared event captures, two more labelled
# week-long captures, and the other raw/cooked link types of the bad-input corpus (about 10 minutes).
test-heavy: setup
	$(BIN)/python -m pytest -m heavy -s tests/conformance tests/badinput

# Kill-and-rerun of real CLI processes (about 5 minutes; not part of test, which keeps under its time budget).
reliability: setup
	$(BIN)/python -m pytest -m reliability -s tests/reliability

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Benchmark (not part of test): e.g. make bench BENCH_ARGS="--sizes 10MB --runs 1"; see bench/README.md.
bench: setup
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf lake data spark-warehouse .pytest_cache
