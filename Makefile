# The two commands a fresh clone needs:
#   make demo   set up, then run the detection service on the bundled photographs and
#               print what a subscriber receives (no camera needed)
#   make test   set up, then run the linters and every test, in both interpreter environments
PYTHON ?= python3
VENV ?= .venv
VENV_TFLITE ?= .venv-tflite

.PHONY: demo test lint setup setup-dev setup-tflite clean

demo: $(VENV)/.setup
	$(VENV)/bin/robovision demo

test: lint $(VENV_TFLITE)/.setup
	$(VENV)/bin/python -m pytest
	$(VENV_TFLITE)/bin/python -m pytest -m backend

lint: $(VENV)/.setup-dev
	$(VENV)/bin/ruff check robovision tests
	$(VENV)/bin/mypy

setup: $(VENV)/.setup
setup-dev: $(VENV)/.setup-dev
setup-tflite: $(VENV_TFLITE)/.setup

$(VENV)/.setup: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e .
	touch $@

# The dev environment adds the test tools, TensorFlow (the training recipe is tested), and
# tflite-runtime 2.14 without its numpy pin, so the numpy 2 incompatibility is tested for real.
$(VENV)/.setup-dev: $(VENV)/.setup
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,train]'
	$(VENV)/bin/python -m pip install --quiet --no-deps 'tflite-runtime==2.14.*'
	touch $@

# tflite-runtime 2.14 needs numpy 1; it gets an environment of its own.
$(VENV_TFLITE)/.setup: pyproject.toml
	test -x $(VENV_TFLITE)/bin/python || $(PYTHON) -m venv $(VENV_TFLITE)
	$(VENV_TFLITE)/bin/python -m pip install --quiet --upgrade pip
	$(VENV_TFLITE)/bin/python -m pip install --quiet -e '.[dev,tflite-runtime]'
	touch $@

clean:
	rm -rf $(VENV) $(VENV_TFLITE) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
