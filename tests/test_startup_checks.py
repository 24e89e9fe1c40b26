"""A setting every sign-up reads that cannot work stops the deployment at `manage.py
check` (and so at `migrate` and `runserver`), instead of turning every sign-up into a
500: rate limits that do not parse, a Redis Cluster the limits cannot use, an unknown
challenge, a challenge without keys."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

import newsroom.settings as project_settings
from subscriptions.checks import (
    check_rate_limit_redis_cluster,
    check_rate_limits,
    check_signup_challenge,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


# --- rate limits ----------------------------------------------------------------------------


def test_the_default_rates_pass(settings) -> None:
    settings.RATE_LIMITS = project_settings.RATE_LIMITS

    assert check_rate_limits(None) == []


@pytest.mark.parametrize(
    "value", ["20 per hour", "20/hour", "20", "", "5/0h", "twenty/h", None, 20, ["20/h"]]
)
def test_a_rate_that_does_not_parse_fails_the_check_naming_its_variable(
    settings, value: object
) -> None:
    settings.RATE_LIMITS = {**project_settings.RATE_LIMITS, "api-ip": value}

    (error,) = check_rate_limits(None)

    assert error.id == "subscriptions.E001"
    assert error.level == checks.ERROR
    assert error.msg == f"RATE_LIMIT_API_IP is not a rate: {value!r}."
    assert error.hint == "Write count/window with the window in s, m, h or d, e.g. 20/h or 5/10m."


def test_every_bad_rate_is_reported_at_once(settings) -> None:
    settings.RATE_LIMITS = {
        **project_settings.RATE_LIMITS,
        "form-ip": "lots",
        "api-email": "5 a day",
    }

    errors = check_rate_limits(None)

    assert [error.msg for error in errors] == [
        "RATE_LIMIT_FORM_IP is not a rate: 'lots'.",
        "RATE_LIMIT_API_EMAIL is not a rate: '5 a day'.",
    ]


def test_a_limit_without_a_rate_fails_the_check(settings) -> None:
    settings.RATE_LIMITS = {
        name: rate for name, rate in project_settings.RATE_LIMITS.items() if name != "form-email"
    }

    (error,) = check_rate_limits(None)

    assert error.id == "subscriptions.E001"
    assert error.msg == "RATE_LIMITS has no rate for 'form-email'."


@pytest.mark.parametrize(
    ("cluster", "url"),
    [
        (False, ""),
        (False, "redis://redis:6379/1"),
        (True, "redis://redis-cluster:6379/0"),
        (True, "redis://redis-cluster:6379"),
        (True, "rediss://user:secret@redis-cluster.example.org:6380"),
    ],
)
def test_a_usable_redis_for_the_limits_passes(settings, cluster: bool, url: str) -> None:
    settings.RATE_LIMIT_REDIS_CLUSTER = cluster
    settings.RATE_LIMIT_REDIS_URL = url

    assert check_rate_limit_redis_cluster(None) == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "RATE_LIMIT_REDIS_URL is empty"),
        ("redis://redis-cluster:6379/1", "RATE_LIMIT_REDIS_URL names database 1"),
        ("redis://redis-cluster:6379/0?db=2", "RATE_LIMIT_REDIS_URL names database 2"),
        ("unix:///run/redis.sock", "RATE_LIMIT_REDIS_URL is a Unix socket"),
    ],
)
def test_a_redis_cluster_the_limits_cannot_use_fails_the_check(
    settings, url: str, problem: str
) -> None:
    settings.RATE_LIMIT_REDIS_CLUSTER = True
    settings.RATE_LIMIT_REDIS_URL = url

    (error,) = check_rate_limit_redis_cluster(None)

    assert error.id == "subscriptions.E006"
    assert error.level == checks.ERROR
    assert error.msg == f"RATE_LIMIT_REDIS_CLUSTER is on but {problem}."


# --- the challenge --------------------------------------------------------------------------


def use_challenge(settings, name: str, *, site_key: str = "site", server_key: str = "k") -> None:
    settings.SIGNUP_CHALLENGE = name
    settings.SIGNUP_CHALLENGE_SITE_KEY = site_key
    settings.SIGNUP_CHALLENGE_SECRET_KEY = server_key


@pytest.mark.parametrize("name", ["", "turnstile", "hcaptcha", " HCaptcha "])
def test_no_challenge_or_a_known_one_with_its_keys_passes(settings, name: str) -> None:
    use_challenge(settings, name)

    assert check_signup_challenge(None) == []


@pytest.mark.parametrize("name", ["recaptcha", "turnstyle", "altcha"])
def test_an_unknown_challenge_fails_the_check(settings, name: str) -> None:
    use_challenge(settings, name)

    (error,) = check_signup_challenge(None)

    assert error.id == "subscriptions.E002"
    assert error.level == checks.ERROR
    assert error.msg == f"SIGNUP_CHALLENGE is {name!r}, which is not a challenge this site knows."
    assert error.hint == ("Use one of ['hcaptcha', 'turnstile'], or leave it empty to turn it off.")


@pytest.mark.parametrize(
    ("site_key", "server_key", "missing"),
    [
        ("", "k", "SIGNUP_CHALLENGE_SITE_KEY"),
        ("site", "", "SIGNUP_CHALLENGE_SECRET_KEY"),
        ("", "", "SIGNUP_CHALLENGE_SITE_KEY and SIGNUP_CHALLENGE_SECRET_KEY"),
    ],
)
def test_a_challenge_without_its_keys_fails_the_check(
    settings, site_key: str, server_key: str, missing: str
) -> None:
    use_challenge(settings, "turnstile", site_key=site_key, server_key=server_key)

    (error,) = check_signup_challenge(None)

    assert error.id == "subscriptions.E003"
    assert error.msg == f"SIGNUP_CHALLENGE is 'turnstile' but {missing} is empty."


# --- at startup -----------------------------------------------------------------------------


def manage_py_check(tmp_path: Path, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3", **environment},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_manage_py_check_refuses_a_bad_rate_and_an_unknown_challenge(tmp_path: Path) -> None:
    result = manage_py_check(
        tmp_path, RATE_LIMIT_API_IP="20 per hour", SIGNUP_CHALLENGE="recaptcha"
    )

    assert result.returncode == 1
    assert "subscriptions.E001) RATE_LIMIT_API_IP is not a rate: '20 per hour'." in result.stderr
    assert "subscriptions.E002) SIGNUP_CHALLENGE is 'recaptcha'" in result.stderr


def test_manage_py_check_passes_with_the_defaults(tmp_path: Path) -> None:
    environment = {
        name: "" for name in os.environ if name.startswith(("RATE_LIMIT_", "SIGNUP_CHALLENGE"))
    }

    result = manage_py_check(tmp_path, **environment)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
