# Two set-up-free entry points (see README):
#   make reproduce   create .venv if missing, install, run the notebooks at SCALE (default smoke) with papermill
#   make test        create .venv if missing, install, lint (ruff), type-check (mypy) and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCALE ?= smoke
OUT ?= outputs/$(SCALE)
export MUJOCO_GL ?= egl

.PHONY: reproduce test install system-deps bench clean-outputs

$(BIN)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test]"
	@touch $@

install: system-deps $(BIN)/.installed

system-deps:
	@bash scripts/system_deps.sh

reproduce: install
	$(BIN)/anyskill reproduce --scale $(SCALE) --out $(OUT)

test: install
	$(BIN)/ruff check anyskill tests bench scripts
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/run.py

clean-outputs:
	rm -rf outputs
