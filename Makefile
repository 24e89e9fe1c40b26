# Two commands for a newcomer: `make run` and `make test`. Both set up from nothing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

# The suite's own settings; DATABASE_URL and REDIS_URL pass through from the caller
# (.ci/run points them at the real PostgreSQL and Redis).
TEST_ENV := DEBUG=false SECRET_KEY=test-only-not-secret SITE_URL=https://news.example.org \
	EMAIL_BACKEND=anymail.backends.test.EmailBackend

# axe-core for the browser tests' accessibility checks, from the npm registry (only
# when npm is here; without it those checks say they were skipped).
AXE := node_modules/axe-core/axe.min.js
NPM := $(shell command -v npm 2>/dev/null)
BROWSER_TOOLS := $(if $(NPM),$(AXE),)

# Translations: `make messages` collects the marked strings of our code and templates
# into locale/*/LC_MESSAGES/django.po (translate there), then compiles the .mo files
# Django reads. Both are committed; the suite checks that every string is translated.
MESSAGE_SOURCES := --ignore='.venv/*' --ignore='node_modules/*' --ignore='var/*' \
	--ignore='tests/*' --ignore='bench/*' --ignore='staticfiles/*' --ignore='test-artifacts/*'

.PHONY: run test lint format venv migrate clean messages bench

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

run: venv
	bash scripts/run_dev.sh

$(AXE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

test: venv lint $(BROWSER_TOOLS)
	$(TEST_ENV) $(BIN)/python -m pytest $(PYTEST_ARGS)

# Every benchmark (bench/__main__.py), on the real PostgreSQL and Redis: about sixteen
# minutes. wrk, the load generator, comes from Debian's packages.
bench: venv
	command -v wrk >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	pg_isready -h 127.0.0.1 -p 5432 -q || pg_ctlcluster --skip-systemctl-redirect "$$(ls /etc/postgresql)" main start
	redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
	$(BIN)/python -m bench

# Style, the layers (pyproject.toml's import-linter contract) and the types (mypy with
# django-stubs, which reads the settings: the suite's own).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(TEST_ENV) $(BIN)/mypy

messages: venv
	DEBUG=true $(BIN)/python manage.py makemessages --all --no-obsolete $(MESSAGE_SOURCES)
	DEBUG=true $(BIN)/python manage.py compilemessages $(MESSAGE_SOURCES)

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache node_modules test-artifacts
