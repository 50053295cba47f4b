# The two commands a newcomer needs: `make train` (the example) and `make test`.
# Both do all set-up themselves (system packages, Caffe build, venv) via scripts/bootstrap.sh.
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: env test lint caffe clean

env:  ## system packages, Caffe (cached), .venv, caffe wrapper
	@bash scripts/bootstrap.sh

caffe:  ## only build (or find) Caffe for the venv's Python
	@bash scripts/bootstrap.sh

test: env  ## the test suite (REQUIRE_CAFFE=1 makes Caffe tests fail instead of skip)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:  ## remove the venv and outputs (the Caffe cache stays: see docs/build.md)
	@# literal paths inside the clone, never a variable a user or the environment could set
	rm -rf ./.venv ./runs ./.pytest_cache ./build ./*.egg-info

.PHONY: train experiment
train: env  ## the example: build data, train with .venv/bin/caffe, evaluate, write runs/<name>/
	$(PY) -m examples.digits_multilabel.train $(TRAIN_ARGS)

experiment: env  ## softmax (1/k) vs sigmoid: digits (docs/experiment/), long tail (docs/long_tail/)
	$(PY) -m examples.digits_multilabel.experiment $(EXPERIMENT_ARGS)
	$(PY) -m examples.long_tail.experiment

.PHONY: bench
bench: env  ## forward+backward timings against native Caffe and PyTorch -> bench/results.json
	$(PY) bench/bench.py $(BENCH_ARGS)

.PHONY: route
route: env  ## the example as a user's route: PNGs + tags.csv -> lists -> train -> evaluate -> predict
	$(PY) -m examples.digits_multilabel.route $(ROUTE_ARGS)
