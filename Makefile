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

clean:  ## remove the venv and outputs (the Caffe cache stays: see README)
	rm -rf $(VENV) runs .pytest_cache build *.egg-info
