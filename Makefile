# Everything happens in .venv; each target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test lint bench bench-quick browser clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,bench]"
	touch $@

run: $(VENV)/.installed
	$(BIN)/python app.py

# Browser tests need Debian's chromium and CJK fonts; installed here when we may (root), skipped otherwise.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk; \
	fi

test: $(VENV)/.installed browser
	$(BIN)/ruff check qa_bot tests bench app.py
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check qa_bot tests bench app.py

bench: $(VENV)/.bench-installed
	$(BIN)/python bench/run_quality.py
	$(BIN)/python bench/run_lifecycle.py
	$(BIN)/python bench/fusion_sweep.py
	$(BIN)/python bench/tokenizer_sweep.py

bench-quick: $(VENV)/.bench-installed
	$(BIN)/python bench/run_quality.py --quick

clean:
	rm -rf $(VENV) embeddings/manifest.json embeddings/g-* test-artifacts
