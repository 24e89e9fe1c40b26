"""A deployment cannot run its ESP webhooks without a real secret: `check --deploy`
fails while a mounted webhook has none, a secret copied from the documentation stops
start-up (gunicorn runs no system checks), and `.env.example` ships none, only the
command that generates one."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

from subscriptions import checks as project_checks
from tests.test_web_security import deploy_check, production_environment

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTMARK_BACKEND = "anymail.backends.postmark.EmailBackend"


# --- the deploy check ----------------------------------------------------------------------


def test_a_mounted_webhook_without_a_secret_fails_the_deploy_check(settings) -> None:
    settings.EMAIL_BACKEND = POSTMARK_BACKEND
    settings.ESP_WEBHOOKS = ["mailgun"]
    settings.ANYMAIL = {}

    (error,) = project_checks.check_webhook_secret(None)

    assert error.id == "subscriptions.E004"
    assert error.level == checks.ERROR
    assert error.msg == (
        "ANYMAIL_WEBHOOK_SECRET is not set: the webhooks of mailgun, postmark refuse "
        "every event while DEBUG is off."
    )


@pytest.mark.parametrize(
    ("backend", "listed", "secret"),
    [
        (POSTMARK_BACKEND, [], "hook:s3cret"),
        ("django.core.mail.backends.smtp.EmailBackend", ["mailgun"], ["hook:a", "hook:b"]),
        # Mail over SMTP, and no provider's webhook mounted: nothing needs a secret.
        ("django.core.mail.backends.smtp.EmailBackend", [], None),
    ],
)
def test_a_secret_or_no_mounted_webhook_passes_the_deploy_check(
    settings, backend: str, listed: list[str], secret: object
) -> None:
    settings.EMAIL_BACKEND = backend
    settings.ESP_WEBHOOKS = listed
    settings.ANYMAIL = {} if secret is None else {"WEBHOOK_SECRET": secret}

    assert project_checks.check_webhook_secret(None) == []


def test_a_provider_esp_webhooks_does_not_know_fails_the_check(settings) -> None:
    settings.ESP_WEBHOOKS = ["postmark", "postmak", "smtp"]

    (error,) = project_checks.check_esp_webhooks(None)

    assert error.id == "subscriptions.E005"
    assert error.level == checks.ERROR
    assert error.msg == "ESP_WEBHOOKS names providers anymail has no webhooks for: postmak, smtp."


# --- a placeholder stops start-up ----------------------------------------------------------


def import_settings(environment: dict[str, str]) -> subprocess.CompletedProcess:
    """Load the settings as gunicorn and Celery do (no system checks)."""
    return subprocess.run(  # noqa: S603 - our interpreter and our own settings
        [sys.executable, "-c", "import newsroom.settings"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "value",
    [
        "change-me:change-me-too",
        "CHANGE-ME:x8Jc1mUe0cVQ2Z3p",
        "esp:changeme",
        "newsroom:change_me_please",
        "user:password",
        "USER:PASSWORD",
        # The README's rotation example, next to a real secret.
        "esp:x8Jc1mUe0cVQ2Z3pLq9w,user:new",
    ],
)
@pytest.mark.parametrize("debug", ["false", "true"])
def test_a_placeholder_webhook_secret_stops_start_up(
    tmp_path: Path, value: str, debug: str
) -> None:
    environment = production_environment(tmp_path, ANYMAIL_WEBHOOK_SECRET=value)
    environment["DEBUG"] = debug

    result = import_settings(environment)

    assert result.returncode == 1
    assert "ImproperlyConfigured: ANYMAIL_WEBHOOK_SECRET is a placeholder" in result.stderr
    # The error names no credential, placeholder or not.
    assert value.split(",")[0] not in result.stderr


def test_a_placeholder_given_in_the_anymail_json_stops_start_up(tmp_path: Path) -> None:
    environment = production_environment(
        tmp_path, ANYMAIL='{"WEBHOOK_SECRET": "change-me:change-me-too"}'
    )

    result = import_settings(environment)

    assert result.returncode == 1
    assert "ANYMAIL_WEBHOOK_SECRET is a placeholder" in result.stderr


# --- .env.example ----------------------------------------------------------------------


def env_example_lines() -> list[str]:
    return (REPO_ROOT / ".env.example").read_text().splitlines()


def test_env_example_ships_no_webhook_secret_but_says_how_to_generate_one(
    tmp_path: Path,
) -> None:
    lines = env_example_lines()
    setting = lines.index("ANYMAIL_WEBHOOK_SECRET=")
    comment = []
    for line in reversed(lines[:setting]):
        if not line.startswith("#"):
            break
        comment.insert(0, line)
    (command,) = [line.removeprefix("#").strip() for line in comment if "secrets." in line]
    assert command.startswith("python -c ")

    # A newcomer runs the command and pastes its output.
    generated = subprocess.run(  # noqa: S602 - the command .env.example prints, run as told
        command.replace("python", sys.executable, 1),
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert re.fullmatch(r"[a-z]+:[A-Za-z0-9_\-]{32}", generated), generated
    environment = production_environment(
        tmp_path, ANYMAIL_WEBHOOK_SECRET=generated, EMAIL_BACKEND=POSTMARK_BACKEND
    )
    result = deploy_check(environment)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output


def test_env_example_names_the_providers_whose_webhooks_answer() -> None:
    assert "ESP_WEBHOOKS=" in env_example_lines()


@pytest.mark.parametrize(
    "value", ["change-me-to-a-long-random-string", "insecure-dev-key-change-me"]
)
def test_a_placeholder_secret_key_stops_start_up_in_production(tmp_path: Path, value: str) -> None:
    environment = production_environment(tmp_path)
    environment["SECRET_KEY"] = value

    result = import_settings(environment)

    assert result.returncode == 1
    assert "ImproperlyConfigured: SECRET_KEY is a placeholder" in result.stderr
    assert value not in result.stderr


def test_env_example_ships_no_secret_key() -> None:
    assert "SECRET_KEY=" in env_example_lines()
