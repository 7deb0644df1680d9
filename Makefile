PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv check test test-ray demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@echo "== installing tcdeploy, its server, MLflow and scikit-learn into $(VENV) (a few minutes the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install --progress-bar off -c constraints.txt -e '.[server,ray,dev]'
	touch $(STAMP)
	@echo "== $(VENV) is ready: '. $(VENV)/bin/activate' puts tcdeploy and mlflow on PATH"

# Lint, formatting and the layers (see [tool.importlinter] in pyproject.toml).
check: venv
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/lint-imports

# The Ray tests run after the rest, in a network namespace of their own (see tests/ray/run_in_netns.sh).
test: venv
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
	sh tests/ray/run_in_netns.sh

test-ray: venv
	sh tests/ray/run_in_netns.sh $(PYTEST_ARGS)

demo: venv
	$(BIN)/python examples/demo.py

bench: venv
	$(BIN)/python bench/serve_vs_mlflow.py

clean:
	rm -rf $(VENV) .venv-compat .tcdeploy .pytest_cache mlruns
