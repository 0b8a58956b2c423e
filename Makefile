# Everything happens in .venv; each target installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test lint bench bench-quick bench-sweeps fusion-model hardneg calibration browser clean train reader

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test,bench,peers,train]"
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

# Every benchmark, then docs/benchmarks.md and its plot (43 minutes here on 2026-11-29); bench-quick: a few minutes.
BENCHES := embed_speed ov_kernels precision_quality run_fusion run_quality run_lifecycle run_perf reader_speed peers stores scale

bench: $(VENV)/.bench-installed
	for b in $(BENCHES); do $(BIN)/python bench/$$b.py || exit 1; done
	$(BIN)/python bench/precision_quality.py --avx2 --docs 100 --quick
	$(BIN)/python bench/report.py

bench-quick: $(VENV)/.bench-installed
	for b in $(BENCHES); do [ $$b = run_lifecycle ] || $(BIN)/python bench/$$b.py --quick || exit 1; done
	$(BIN)/python bench/report.py

# The dense-favouring check set (bench/data/drcd-hardneg) and the learned fusion weights (qa_bot/fusion_model.json),
# both deterministic; the fusion weights are fitted with scipy (the train extra).
hardneg: $(VENV)/.installed
	$(BIN)/python bench/make_hardneg.py

fusion-model: $(VENV)/.bench-installed
	$(BIN)/python bench/train_fusion.py

# The int8 model's calibration texts (qa_bot/embedding/calibration.jsonl) from ../shared's CMRC 2018 trial.
calibration: $(VENV)/.installed
	$(BIN)/python bench/make_calibration.py

# The answer model (qa_bot/answer_model.json) from DRCD dev near-miss + CMRC 2018 trial, deterministic;
# also writes bench/results/answer_model.json and docs/answer-confidence.png (1,699 s on an AVX2-only CPU with
# the reader's and the retrieval's caches cold: its "seconds" and "seconds_by_step"; a first run also builds the
# DRCD and CMRC indexes, a minute or two more: docs/architecture.md, "make train's time").
train: $(VENV)/.bench-installed
	$(BIN)/python bench/train_answer.py

# The passage reader's adapter (qa_bot/reader_model.npz) from the same data and splits, deterministic
# (seed 0, 2 threads); also writes bench/results/reader.json (~72 minutes here). Run `make train` after it:
# the answer model reads the reader's output.
reader: $(VENV)/.bench-installed
	$(BIN)/python bench/train_reader.py

# Design sweeps behind docs/architecture.md (fusion methods, BM25 tokenisations).
bench-sweeps: $(VENV)/.bench-installed
	$(BIN)/python bench/fusion_sweep.py
	$(BIN)/python bench/tokenizer_sweep.py

clean:
	rm -rf $(VENV) embeddings/manifest.json embeddings/g-* test-artifacts
