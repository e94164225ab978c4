# Two commands on a fresh clone: `make run` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
OUT ?= runs/example

.PHONY: run test lint typecheck setup clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Re-runnable: a finished run of the same config is reported complete; an interrupted one resumes.
run: $(STAMP)
	$(VENV)/bin/dreamjourney journey examples/garden.png --preset offline --trajectory pan-left \
		--segments 4 --frames 16 --size 384x288 --out $(OUT) --resume
	@echo "contact sheet: $(OUT)/contact_sheet.png, path over the world: $(OUT)/trajectory.png"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: $(STAMP)
	$(VENV)/bin/mypy

test: $(STAMP) lint typecheck
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
