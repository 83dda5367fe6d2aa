# `make run` and `make test` create .venv on first use and install the project.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint format probes clean browser-test

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# The main job: the default suite (digits + LeNet-5), summary table and report.html.
run: $(STAMP)
	$(BIN)/energy-harness probes
	$(BIN)/energy-harness run

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The report in a real browser: installs Debian's chromium and chromium-driver when they
# are missing (apt-get, as root or through sudo), then renders a report in headless
# Chromium and checks it (no sideways scrolling at 1000 px, images, no network, print).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser-test: $(STAMP)
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver; }
	$(BIN)/python -m pytest -q -rs tests/harness/report/test_browser.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# GPU validation of the NVML path: six checks, figures to results/validation/.
# On a GPU machine without the project's venv see benchmarks/gpu_check.sh.
.PHONY: gpu-check
gpu-check: $(STAMP)
	$(BIN)/python -m benchmarks.gpu_check
