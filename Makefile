# rnnkit: `make demo` runs the main job on built-in data, `make test` runs the test suite.
# Both create .venv on first use (CPU torch first, so set-up takes a minute, not a GPU download).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast test-isa test-asan bench quality clean

install: $(STAMP)

# $(call venv,FOLDER,EXTRA): a venv with the CPU build of torch first, then rnnkit (editable) with EXTRA;
# builds the native kernels up front
define venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python -m pip install --quiet --upgrade pip
	$(1)/bin/python -m pip install --quiet -c constraints-cpu.txt torch
	$(1)/bin/python -m pip install --quiet -c constraints-cpu.txt -e ".[$(2)]"
	-$(1)/bin/python -m rnnkit.kernels
	touch $(1)/.installed
endef

$(STAMP): pyproject.toml constraints-cpu.txt
	$(call venv,$(VENV),test)

demo: $(STAMP)
	$(VENV)/bin/rnnkit demo --out runs/demo --force

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# `make test-isa`: the suite three more times, as other machines run it, so that a test which holds
# only on this CPU fails here first: (1) an AVX2-only x86-64 CPU, (2) one without AVX (portable
# vectors), (3) one thread. Each caps rnnkit's kernels (RNNKIT_NATIVE_ISA) and torch's own: its
# vectorised ops (ATEN_CPU_CAPABILITY, avx2 only where the CPU has it: torch does not check),
# MKL's products (MKL_ENABLE_INSTRUCTIONS) and oneDNN (ONEDNN_MAX_CPU_ISA). The slow examples are
# left out to keep it to a few minutes; `make test-isa ISA_TESTS=` runs them too.
ISA_TESTS   ?= -m "not slow"
ISA_AVX2     = RNNKIT_NATIVE_ISA=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \
               $(if $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo y),ATEN_CPU_CAPABILITY=avx2)
ISA_GENERIC  = RNNKIT_NATIVE_ISA=generic ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2 \
               ONEDNN_MAX_CPU_ISA=SSE41

test-isa: $(STAMP)
	$(ISA_AVX2) $(PY) -m pytest -q $(ISA_TESTS)
	$(ISA_GENERIC) $(PY) -m pytest -q $(ISA_TESTS)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q $(ISA_TESTS)

# The native kernels built with AddressSanitizer + UBSan (RNNKIT_NATIVE_SANITIZE=1, its own cache
# entry) under the kernel-focused tests. The ASan runtime must be loaded first, hence LD_PRELOAD,
# with libstdc++ (else ASan cannot intercept C++ exceptions, which torch throws); torch itself
# is not instrumented, so leak reports (about torch's allocations, not rnnkit's) are off.
ASAN_CC ?= gcc
ASAN_TESTS ?= $(addprefix tests/kernels/,test_kernels.py test_fused_trainer.py test_streaming.py \
	test_tracing.py test_functorch.py test_cell_table.py)
# gradgradcheck runs the recomputing backward, torch operations rather than the kernels, and
# takes minutes under ASan's allocator; the slow cases repeat the fast ones at larger sizes
ASAN_PYTEST_ARGS ?= -m "not slow" -k "not gradgradcheck"
ASAN_ENV = RNNKIT_NATIVE_SANITIZE=1 CC=$(ASAN_CC) \
	LD_PRELOAD="$$($(ASAN_CC) -print-file-name=libasan.so) $$($(ASAN_CC) -print-file-name=libstdc++.so)" \
	ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
test-asan: $(STAMP)
	@# the sanitized kernels must really load, or every kernel test would quietly skip
	$(ASAN_ENV) $(PY) -c "from rnnkit.kernels import _native; assert _native.available(), 'rnnkit: the sanitized native kernels did not load'"
	$(ASAN_ENV) $(PY) -m pytest -q -p no:cacheprovider $(ASAN_PYTEST_ARGS) $(ASAN_TESTS)

bench: $(STAMP)
	$(PY) -m pip install --quiet -c constraints-cpu.txt -e ".[bench]" || echo "rnnkit: Keras not installed; its contender is skipped"
	$(PY) benchmarks/run.py

# `make quality`: rnnkit's accuracy against the classical methods on public data (benchmarks/quality/,
# about 20 minutes on 2 cores; `make quality QUALITY_ARGS=--quick` for a few minutes). Its data and
# contenders come with the `bench` extra (statsforecast, pmdarima, sktime, aeon, tslearn, pyts,
# statsmodels), which hold pandas below 3, so they get a venv of their own: the test venv keeps its versions.
QVENV  := .venv-quality
QPY    := $(QVENV)/bin/python
QSTAMP := $(QVENV)/.installed
QUALITY_ARGS ?=

$(QSTAMP): pyproject.toml constraints-cpu.txt
	$(call venv,$(QVENV),bench)

quality: $(QSTAMP)
	$(QPY) benchmarks/quality/run.py $(QUALITY_ARGS)

clean:
	rm -rf $(VENV) $(QVENV) runs build src/*.egg-info .pytest_cache
