PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv check test demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[server,dev]'
	touch $(STAMP)

# Lint, formatting and the layers (see [tool.importlinter] in pyproject.toml).
check: venv
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports

test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: venv
	$(BIN)/python examples/demo.py

bench: venv
	$(BIN)/python bench/serve_vs_mlflow.py

clean:
	rm -rf $(VENV) .venv-compat .tcdeploy .pytest_cache
