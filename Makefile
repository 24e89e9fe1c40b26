# Two commands for a newcomer: `make run` and `make test`. Both set up from nothing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

# The suite's own settings; DATABASE_URL and REDIS_URL pass through from the caller
# (.ci/run points them at the real PostgreSQL and Redis).
TEST_ENV := DEBUG=false SECRET_KEY=test-only-not-secret SITE_URL=https://news.example.org \
	EMAIL_BACKEND=anymail.backends.test.EmailBackend

.PHONY: run test lint format venv migrate clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

run: venv
	bash scripts/run_dev.sh

test: venv lint
	$(TEST_ENV) $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
