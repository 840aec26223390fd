# The README's two commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# torch is a range, never one exact release. The default keeps to the releases that carry a
# CPU build on this project's machines; `make TORCH_SPEC='torch>=2.2' ...` takes the newest.
TORCH_SPEC ?= torch>=2.2,<2.14

.PHONY: demo test lint hooks bench bench-peers bench-labels clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/satkit demo

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check satkit tests benchmarks

hooks:
	git config core.hooksPath hooks
	@echo "git hooks installed from hooks/ (notebook output stripping, lint)"

# Every CPU benchmark; each prints ratios measured side by side in one run.
bench: $(VENV)/.installed
	$(PY) benchmarks/bench_head.py
	$(PY) benchmarks/bench_recorder.py
	$(PY) benchmarks/bench_heads.py
	$(PY) benchmarks/bench_trainer.py
	$(PY) benchmarks/bench_loader.py
	$(PY) benchmarks/bench_analysis.py
	$(PY) benchmarks/bench_epoch.py
	$(PY) benchmarks/bench_eval.py

# The peers of benchmarks/bench_vs_peers.py, Cockpit and BackPACK, and what they import: the
# `bench` extra of pyproject.toml (tests/test_bench_vs_peers.py keeps it, these two lists and the
# script's equal). Not `pip install -e ".[bench]"`: BackPACK requires torchvision (for its
# examples only), whose wheels pin one exact torch release, so pip's resolver would replace the
# CPU torch with a newer CUDA build (about 3 GB of wheels). So the peers go in without their
# dependencies (pip then says that torchvision is missing: expected), then the runtime
# dependencies they import that satkit does not already bring (and a setuptools that still has
# pkg_resources, which Cockpit imports).
# `make bench-peers BENCH_PEERS_ARGS="--rounds 20"` passes options to the script.
BENCH_PEERS      := "cockpit-for-pytorch>=1.0.2" "backpack-for-pytorch>=1.7"
BENCH_PEER_DEPS  := "einops>=0.3,<1" "unfoldNd>=0.2,<1" "json-tricks>=3.15" "setuptools>=77,<82"
BENCH_PEERS_ARGS ?=

bench-peers: $(VENV)/.installed
	$(PY) -m pip install --quiet --no-deps $(BENCH_PEERS)
	$(PY) -m pip install --quiet $(BENCH_PEER_DEPS)
	$(PY) benchmarks/bench_vs_peers.py $(BENCH_PEERS_ARGS)

# cleanlab, the peer of benchmarks/bench_label_issues.py (pyproject's `bench-labels` extra; it
# brings scikit-learn and leaves torch as it is). BENCH_LABELS_ARGS passes options to the script.
BENCH_LABELS      := "cleanlab>=2.6"
BENCH_LABELS_ARGS ?=

bench-labels: $(VENV)/.installed
	$(PY) -m pip install --quiet $(BENCH_LABELS)
	$(PY) benchmarks/bench_label_issues.py $(BENCH_LABELS_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
