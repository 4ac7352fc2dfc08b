# Two commands do all the set-up on a fresh machine: `make test` and `make demo`.
# Both create .venv from pyproject.toml the first time (and again whenever pyproject.toml changes).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-fast demo demo-text bench gpu-check clean-venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@echo "make venv: installing PyTorch (CUDA build, ~5.5 GB) and the rest into $(VENV) (~6.3 GB in all);" \
	      "takes several minutes, with no output until it is done"
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip freeze --exclude-editable > $(VENV)/installed-versions.txt
	$(PY) -m tools.offline_plots .   # `dvc plots show` pages that render offline (.dvc/offline_plots.html)
	touch $(STAMP)

# `make test` runs the suite on TEST_WORKERS pytest-xdist processes, a test file at a time each (a module's fixtures
# are built once), and every test and every stage it starts on one thread (TEST_ENV): tiny tensors gain nothing
# from more threads, and 2 processes x 2 threads on 2 cores made some tests 5x slower (README: the times). On a
# machine with an NVIDIA GPU the default is one process: tests there claim the GPU (ednas_core/gpu_claim.py) and
# would wait for each other. `make test TEST_WORKERS=0`: one process.
TEST_WORKERS ?= $(if $(shell nvidia-smi -L 2>/dev/null),0,2)
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PYTEST := $(TEST_ENV) $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

test: $(STAMP)
	$(PYTEST)

demo: $(STAMP)
	$(PY) -m tools.demo digits

demo-text: $(STAMP)
	$(PY) -m tools.demo markov

# On a GPU box: the CUDA-only tests (sync-free step loops under torch.cuda.set_sync_debug_mode, every CUDA
# switch, deterministic repeats), then the benchmark harness at the paper's sizes (JSON in benchmarks/results/).
gpu-check: $(STAMP)
	EDNAS_REQUIRE_CUDA=1 $(PY) -m pytest -q -rs -k cuda tests/test_no_host_sync.py tests/test_cuda.py \
		tests/strategies/test_nao.py tests/benchmarks/test_benchmark_run.py
	$(PY) -m benchmarks.run

bench: $(STAMP)
	$(PY) -m benchmarks.run

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

clean-venv:
	rm -rf $(VENV)
