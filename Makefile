# One obvious command per job. `make demo` and `make test` work on a fresh clone: they create
# .venv, install every library under packages/ (discovered, not listed) in editable mode, then run.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
PACKAGES := $(patsubst %/pyproject.toml,%,$(wildcard packages/*/pyproject.toml))
STAMP  := $(VENV)/.installed
pkg    ?=
export KEDRO_DISABLE_TELEMETRY := 1
export MPLBACKEND := Agg

.PHONY: install system-deps demo examples repro viz viz-build test test-fast lint bench bench-perov5 bench-carbon24 bench-yield active-learning-demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python $(wildcard packages/*/pyproject.toml) requirements-dev.txt requirements-pipelines.txt hatch_build.py scripts/install_dft.sh scripts/gpaw_siteconfig.py
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt $(foreach p,$(PACKAGES),-e "$(p)[test]")
	$(BIN)/python -m pip install --quiet -r requirements-pipelines.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .  # the root project (pipelines); its deps are the above
	bash scripts/install_dft.sh "$(BIN)/python"  # td-physics[dft]: GPAW built against Debian's libxc and OpenBLAS
	$(BIN)/python -m pip install --quiet -e "packages/td-data[relax,baselines]"  # CHGNet (weights ship in its wheel), PyXtal
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install every package editable

system-deps:  ## Debian packages the tests use (chromium, slurm-wlm, munge); installs only what is missing, as root
	bash scripts/setup_test_system.sh

demo: $(STAMP)  ## the main job: every Kedro pipeline on the embedded synthetic data (report in data/08_reporting)
	$(BIN)/kedro run

repro: $(STAMP)  ## the same pipelines as DVC stages: reruns only what changed since the last run (dvc.yaml)
	PATH="$(abspath $(BIN)):$$PATH" DVC_NO_ANALYTICS=1 $(BIN)/dvc repro

viz: $(STAMP)  ## serve the pipeline graph (kedro-viz) on http://127.0.0.1:4141
	$(BIN)/kedro viz run --no-browser --host 127.0.0.1 --port 4141

viz-build: $(STAMP)  ## write the pipeline graph as a static site to build/
	$(BIN)/kedro viz build

examples: $(STAMP)  ## the canonical tight-binding models against published values (figures in outputs/)
	$(BIN)/python examples/basic_usage.py --output-dir outputs/basic_usage
	$(BIN)/python examples/superconductors.py --output-dir outputs/superconductors
	$(BIN)/python examples/magnetic.py --output-dir outputs/magnetic
	$(BIN)/python examples/higher_order.py --output-dir outputs/higher_order

test: $(STAMP) system-deps  ## the whole test suite (or one package: make pkg=td-physics test)
ifeq ($(pkg),)
	$(BIN)/python -m pytest -n 2 --dist loadfile -q --durations=25  # the slowest tests, to keep the suite short
else
	$(BIN)/python -m pytest -n 2 --dist loadfile -q packages/$(pkg)/tests
endif

test-fast: $(STAMP) system-deps  ## everything except tests marked slow
	$(BIN)/python -m pytest -n 2 -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check packages examples benchmarks scripts tests pipelines
	$(BIN)/ruff format --check packages examples benchmarks scripts tests pipelines

bench: $(STAMP)  ## timings against PythTB and Z2Pack in the same run
	$(BIN)/python benchmarks/physics_vs_peers.py

# The published generation benchmarks as Kedro runs (conf/<name>, pipelines/benchmark); outputs/<name>/metrics.json.
# Override any parameter, e.g. make bench-perov5 PARAMS=train_options.budget_minutes=5 (a short run).
PARAMS ?=
bench-perov5: $(STAMP)  ## Perov-5 de-novo generation, CDVAE/DiffCSP protocol (outputs/perov5)
	$(BIN)/kedro run --env perov5 --pipelines=benchmark $(if $(PARAMS),--params "$(PARAMS)")

bench-carbon24: $(STAMP)  ## Carbon-24 de-novo generation, CDVAE/DiffCSP protocol (outputs/carbon24)
	$(BIN)/kedro run --env carbon24 --pipelines=benchmark $(if $(PARAMS),--params "$(PARAMS)")

bench-yield: $(STAMP)  ## z2_ti yield, conditioned vs unconditioned, relabelled by the TB ensemble (outputs/yield)
	$(BIN)/kedro run --env yield --pipelines=yield_benchmark $(if $(PARAMS),--params "$(PARAMS)")

# A tiny model (conf/active_learning_demo, files under data/active_learning_demo/), then two rounds of active learning
# from it: data/08_reporting/active_learning.json and its figures. Rerun: the rounds resume where they stopped.
active-learning-demo: $(STAMP)  ## two tiny rounds of generate, relax, label, select and fine-tune (data/08_reporting/active_learning.json)
	$(BIN)/kedro run --env active_learning_demo --pipelines=ingest,label,split,train
	$(BIN)/kedro run --env active_learning_demo --pipelines=active_learning

clean:
	rm -rf $(VENV) outputs .pytest_cache .hypothesis
