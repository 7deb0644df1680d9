PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv browser check test test-ray demo bench screenshots clean

venv: $(STAMP) browser

# The console's browser tests drive Debian's Chromium (Playwright's own download cannot reach its
# host here); installed when missing and we are root, as CI is.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ]; then \
	  echo "== installing Debian's chromium for the console's browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

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
# The browser tests run in a pytest process of their own: Playwright's sync API holds an event
# loop on the main thread for its whole session, which the async tests after it cannot share.
test: venv
	$(BIN)/python -m pytest -q --ignore=tests/console $(PYTEST_ARGS)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/console
	sh tests/ray/run_in_netns.sh

test-ray: venv
	sh tests/ray/run_in_netns.sh $(PYTEST_ARGS)

demo: venv
	$(BIN)/python examples/demo.py

# PNGs of the console's main pages from a demo server, into docs/console/.
screenshots: venv
	$(BIN)/python examples/screenshots.py docs/console

bench: venv
	$(BIN)/python bench/serve_vs_mlflow.py

clean:
	rm -rf $(VENV) .venv-compat .tcdeploy .pytest_cache mlruns
