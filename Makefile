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

test: $(STAMP)
	$(PY) -m pytest

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
	$(PY) -m pytest -m "not slow"

clean-venv:
	rm -rf $(VENV)
