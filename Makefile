# The README's two commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# torch is a range, never one exact release. The default keeps to the releases that carry a
# CPU build on this project's machines; `make TORCH_SPEC='torch>=2.2' ...` takes the newest.
TORCH_SPEC ?= torch>=2.2,<2.14

.PHONY: demo test lint hooks bench clean

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

clean:
	rm -rf $(VENV) runs .pytest_cache
