# Two commands for a newcomer: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip

.PHONY: run test test-fast lint bench demo-media clean

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The web app and the pipeline (no torch): enough for `make run`.
$(VENV)/.installed-run: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[pipeline]'
	touch $@

# Everything, training and browser tests included.
$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) install -q -e '.[pipeline,train,dev]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	@scripts/ensure_system.sh run
	$(VENV)/bin/quilt demo

test: $(VENV)/.installed-test
	@scripts/ensure_system.sh test
	$(PY) -m pytest $(PYTEST_ARGS)

# The inner loop: no real-model runs, worker processes or browsers (`make test` runs all).
test-fast: $(VENV)/.installed-test
	@scripts/ensure_system.sh test
	$(PY) -m pytest -m "not slow and not browser" $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check app workers tests bench scripts migrations

bench: $(VENV)/.installed-run
	$(PY) bench/bench_pipeline.py

# Rebuild the bundled demo lecture (needs espeak-ng, sox, ffmpeg and PyPI access).
demo-media: $(VENV)/.installed-run
	$(PY) scripts/make_demo.py

clean:
	rm -rf var/ .pytest_cache
