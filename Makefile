# Set-up, demo and tests on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
BUILD := build/cmake
PIP := $(VPY) -m pip install -q --disable-pip-version-check

.PHONY: demo test test-cpp test-python install deps system-deps bench docs clean

$(VPY):
	$(PYTHON) -m venv $(VENV)

system-deps:
	./.ci/system_deps.sh

deps: system-deps $(VPY)
	$(PIP) numpy scipy pytest "scikit-build-core>=0.10" "pybind11>=2.12" cmake ninja torch==2.13.0 nvidia-cuda-nvrtc torchdr matplotlib

# Builds the engine and the C++ tests in one CMake tree (kept for incremental rebuilds) and installs pykeops.
install: deps
	$(PIP) --no-build-isolation -Cbuild-dir=$(BUILD) -Ccmake.define.KEOPS_BUILD_TESTS=ON .

demo: install
	$(VPY) examples/gaussian_kernel.py

test-cpp: install
	$(VENV)/bin/ctest --test-dir $(BUILD) --output-on-failure

test-python: install
	$(VPY) -m pytest -q tests/python

test: test-cpp test-python

bench: install
	$(VPY) benchmarks/bench_cpu.py

docs: install
	$(VPY) docs/generate_operations.py

clean:
	rm -rf build $(VENV)
