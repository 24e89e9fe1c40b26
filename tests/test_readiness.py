"""`/readyz/`: ready only when the database answers with every migration applied and
Redis and the broker answer; otherwise 503 naming what failed, with no address or error
text, within about a second whatever hangs. Real PostgreSQL, Redis and broker where the
run has them."""

import json
import time

import pytest
from django.db import connection, connections

from newsroom import health
from newsroom.celery import app as celery_app

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_migration_check(monkeypatch):
    monkeypatch.setattr(health, "_migrated", False)


def ready(client) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get("/readyz/")
    return response.status_code, json.loads(response.content), time.monotonic() - started


def test_ready_when_everything_answers_and_over_plain_http(client, settings):
    settings.SECURE_SSL_REDIRECT = True

    status, body, _ = ready(client)

    assert (status, body["ready"]) == (200, True), body
    assert set(body["checks"].values()) == {"ok"}
    expected = {"database", "migrations"}
    if settings.REDIS_URL:
        expected |= {"redis"}
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        expected |= {"broker"}
    assert set(body["checks"]) == expected


@pytest.mark.redis
def test_redis_that_does_not_answer_is_named_and_nothing_else_is_said(client, settings):
    settings.REDIS_URL = "redis://:a-secret-password@127.0.0.1:1/0"

    status, body, took = ready(client)
    raw = json.dumps(body)

    assert status == 503
    assert body["checks"]["redis"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert "a-secret-password" not in raw and "127.0.0.1" not in raw
    assert took < 1.5


@pytest.mark.redis
def test_a_broker_that_does_not_answer_is_named(client, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")

    status, body, took = ready(client)

    assert status == 503
    assert body["checks"]["broker"] == "unavailable"
    assert took < 1.5


def test_an_unapplied_migration_is_not_ready(client):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, app, name, applied FROM django_migrations WHERE app = 'subscriptions' "
            "ORDER BY name DESC LIMIT 1"
        )
        row = cursor.fetchone()
        cursor.execute("DELETE FROM django_migrations WHERE id = %s", [row[0]])
    try:
        status, body, _ = ready(client)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO django_migrations (id, app, name, applied) VALUES (%s, %s, %s, %s)",
                list(row),
            )

    assert status == 503
    assert body["checks"]["migrations"] == "1 not applied"
    assert ready(client)[0] == 200  # and ready again once it is


@pytest.mark.postgres
def test_a_database_that_refuses_is_named(client):
    saved = dict(connections.settings["default"])
    connections.settings["default"]["PORT"] = "1"  # the checks' threads connect afresh
    try:
        status, body, took = ready(client)
    finally:
        connections.settings["default"].clear()
        connections.settings["default"].update(saved)

    assert status == 503
    assert body["checks"]["database"] == "unavailable"
    assert took < 1.5
