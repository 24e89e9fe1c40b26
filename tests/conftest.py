"""Shared fixtures. The suite runs on SQLite by default and on the real PostgreSQL and
Redis when DATABASE_URL / REDIS_URL point at them; with CI=true they must, and nothing
that needs them may skip."""

import os

import pytest
from django.conf import settings
from django.core import mail
from django.db import connection
from django.utils import translation

from newsroom.celery import app as celery_app
from subscriptions.membership import goal_counter
from subscriptions.platform.redis_store import redis_client
from subscriptions.signup import lookups
from tests.redis_server import redis_cluster, spare_redis  # noqa: F401 - fixtures for all tests

IN_CI = os.environ.get("CI", "").lower() == "true"
pytest_plugins = ["tests.browser_support"]


def pytest_configure(config: pytest.Config) -> None:
    if IN_CI:
        problems = []
        if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
            problems.append("DATABASE_URL must point at PostgreSQL")
        if not os.environ.get("REDIS_URL"):
            problems.append("REDIS_URL must be set")
        if problems:
            raise pytest.UsageError("CI=true but " + "; ".join(problems))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    has_redis = bool(settings.REDIS_URL)
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)"))
        if "redis" in item.keywords and not has_redis:
            item.add_marker(pytest.mark.skip(reason="needs Redis (set REDIS_URL)"))


@pytest.fixture(autouse=True)
def _email_and_tasks(settings):
    """Record mail with anymail's test backend and run tasks eagerly by default.

    Django's test set-up forces the locmem backend; anymail's test backend also records
    what anymail adds (metadata, tags), so tests can see it.
    """
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    # The test client speaks plain HTTP; production's redirect to HTTPS is tested on
    # its own.
    settings.SECURE_SSL_REDIRECT = False
    # Tests sign up many times from one address; the limits have tests of their own.
    settings.RATE_LIMITS = dict.fromkeys(settings.RATE_LIMITS, "100000/h")
    celery_app.conf.task_always_eager = True
    mail.outbox = []
    yield
    celery_app.conf.task_always_eager = settings.CELERY_TASK_ALWAYS_EAGER


@pytest.fixture(autouse=True)
def _site_language_after_each_test():
    """A request leaves its language active in the thread (Django's LocaleMiddleware
    sets it and never resets it; the next request sets its own). A test that calls code
    outside a request afterwards must not inherit a Ukrainian page's language."""
    yield
    translation.deactivate()


@pytest.fixture
def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _fresh_goal_counter(settings, monkeypatch):
    """Each test starts with no Redis copy of the goal and no remembered snapshot, and
    reads the count afresh every time (the per-process cache has a test of its own)."""
    monkeypatch.setattr(goal_counter, "LOCAL_CACHE_SECONDS", 0)
    monkeypatch.setattr(goal_counter, "_last_seen", goal_counter._LastSeen())
    # The same for what sign-ups look up (newsletters, domain rules); tested on its own.
    monkeypatch.setattr(lookups, "CACHE_SECONDS", 0)
    lookups.forget_all()
    if settings.REDIS_URL:
        redis_client(settings.REDIS_URL).delete(goal_counter.SNAPSHOT_KEY)
    yield
