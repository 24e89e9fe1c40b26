"""The ways the app is run: the container health check, the compose file's shape, the
example environment file (safe to copy for `make run` and for compose), and the deploy
check's warning about plain-HTTP links in emails."""

import io
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connection

from subscriptions.models import Newsletter
from tests.test_web_security import deploy_check, production_environment

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_the_health_check_answers_plain_http_even_where_https_is_enforced(client, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True

    health = client.get("/healthz/")
    page = client.get("/newsletters/")

    assert (health.status_code, health.content) == (200, b"ok\n")
    assert health["Cache-Control"].startswith("max-age=0")
    assert page.status_code == 301


@pytest.mark.django_db
def test_the_health_check_says_503_when_the_database_does_not_answer(client, monkeypatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise DatabaseError("connection refused")

    monkeypatch.setattr(connection, "cursor", refuse)

    assert client.get("/healthz/").status_code == 503


def test_the_compose_file_has_the_production_shape_with_health_checks() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]

    assert set(services) == {"web", "worker", "sender", "beat", "db", "redis", "mailpit"}
    # worker, sender and beat reuse web's definition: one image and env file.
    app = ("web", "worker", "sender", "beat")
    assert {services[name]["image"] for name in app} == {"newsroom:latest"}
    assert {services[name]["env_file"] for name in app} == {".env"}
    assert "/healthz/" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ("web", "worker", "sender", "db", "redis"):
        assert services[name]["healthcheck"]["test"], name
    # Issues have a worker of their own, at a lower CPU weight; the default queue's
    # worker (confirmation emails) does not take them.
    assert "-Q celery" in services["worker"]["command"]
    assert f"-Q {settings.ISSUE_QUEUE} " in services["sender"]["command"]
    assert services["sender"]["cpu_shares"] < 1024  # Docker's default weight


def _environment_from_env_example(tmp_path: Path) -> dict[str, str]:
    """The environment `cp .env.example .env` gives, outside compose (the file's own
    format rules: KEY=value lines, no inline comments)."""
    values = {"PATH": os.environ.get("PATH", "")}
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value.strip("'")
    values.update(DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", PYTHONPATH=str(REPO_ROOT))
    values.pop("REDIS_URL", None)
    return values


def test_make_run_over_a_copied_env_example_serves_pages_over_plain_http(tmp_path: Path) -> None:
    environment = _environment_from_env_example(tmp_path)
    environment["DEBUG"] = "true"  # what scripts/run_dev.sh sets
    probe = (
        "import django; django.setup();"
        "from django.core.management import call_command; call_command('migrate', verbosity=0);"
        "from django.test import Client;"
        "print(Client().get('/', HTTP_HOST='127.0.0.1').status_code)"
    )

    result = subprocess.run(  # noqa: S603 - our interpreter and our own probe
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**environment, "DJANGO_SETTINGS_MODULE": "newsroom.settings"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "200"


def test_the_deploy_check_warns_about_a_plain_http_site_url(tmp_path: Path) -> None:
    environment = production_environment(tmp_path, ANYMAIL_WEBHOOK_SECRET="hook:secret")
    environment["SITE_URL"] = "http://news.example.org"

    result = deploy_check(environment)

    assert result.returncode != 0
    assert "subscriptions.W002" in result.stdout + result.stderr


@pytest.mark.django_db
def test_the_demo_newsletters_load_once_and_keep_editors_changes() -> None:
    call_command("load_demo_newsletters", stdout=io.StringIO())
    Newsletter.objects.filter(slug="explaining-ukraine").update(name="Ukraine, explained")

    call_command("load_demo_newsletters", stdout=io.StringIO())

    assert sorted(Newsletter.objects.values_list("slug", flat=True)) == [
        "daily-digest",
        "editors-picks",
        "explaining-ukraine",
    ]
    ukraine = Newsletter.objects.get(slug="explaining-ukraine")
    assert ukraine.name == "Ukraine, explained"
    assert ukraine.host_line == "Explaining Ukraine with Kate Tsurkan"


def test_the_deploy_check_prints_no_warning_for_the_example_environment_filled_in(
    tmp_path: Path,
) -> None:
    """`.env.example` as a newcomer fills it in for production (its comments say what:
    a secret key, the public https URL and host, a webhook secret): not one warning a
    newcomer would have to interpret, HSTS's subdomain and preload ones included."""
    environment = _environment_from_env_example(tmp_path)
    environment.update(
        SECRET_KEY="".join(secrets.choice(string.ascii_letters) for _ in range(64)),
        SITE_URL="https://news.example.org",
        ALLOWED_HOSTS="news.example.org,127.0.0.1",
        ANYMAIL_WEBHOOK_SECRET="esp:" + secrets.token_urlsafe(24),
    )
    assert environment["DEBUG"] == "false"
    assert "SECURE_HSTS_INCLUDE_SUBDOMAINS" not in environment  # left off, as shipped

    result = deploy_check(environment)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output
