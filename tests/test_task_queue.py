"""platform/task_queue.py builds kombu's Redis message itself (BENCHMARKS.md says why).
These hold it to what kombu produces for the pinned version: byte for byte, in the same
key, for the configuration it builds for; through `delay()` itself for the ones it does
not (a key prefix, priorities, TLS); and a transport option it was never checked
against stops start-up."""

import json
import os
import subprocess
import sys
from pathlib import Path

import kombu.transport.redis
import pytest
from celery import current_app

from subscriptions import checks
from subscriptions.platform import task_queue

PROBE = Path(__file__).resolve().parent / "envelope_probe.py"


def probe(case: str, task_name: str, args: list) -> dict:
    result = subprocess.run(  # noqa: S603 - our interpreter and our own probe
        [sys.executable, str(PROBE), os.environ["REDIS_URL"], case, task_name, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "DEBUG": "true"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.redis
@pytest.mark.parametrize(
    ("task_name", "args"),
    [
        ("subscriptions.tasks.send_outbound_email", [7]),
        ("subscriptions.tasks.unsubscribe_subscriptions", [[1, 2, 3], "admin:ed"]),
    ],
)
def test_the_message_is_byte_for_byte_what_kombu_pushes(task_name, args) -> None:
    pushed = probe("as deployed", task_name, args)

    assert pushed["hand_built"] is True
    assert pushed["ours"] == pushed["kombu"]
    key, raw = pushed["ours"]
    assert key == "envelope-probe"
    assert json.loads(raw)["headers"]["task"] == task_name


@pytest.mark.redis
@pytest.mark.parametrize("case", ["key prefix", "priorities"])
def test_with_a_key_prefix_or_priorities_the_message_is_celerys_own(case) -> None:
    pushed = probe(case, "subscriptions.tasks.send_outbound_email", [7])

    assert pushed["hand_built"] is False
    assert pushed["ours"] == pushed["kombu"]
    # kombu's priority steps are 0, 3, 6 and 9: priority 5 waits in step 3's list.
    expected = "probe:envelope-probe" if case == "key prefix" else "envelope-probe\x06\x163"
    assert pushed["ours"][0] == expected


@pytest.fixture
def celery_conf():
    conf = current_app.conf
    saved = {
        name: conf[name]
        for name in ("broker_url", "broker_use_ssl", "broker_transport_options", "task_routes")
    }
    conf.task_always_eager, eager = False, conf.task_always_eager
    yield conf
    conf.update(saved, task_always_eager=eager)


def test_tls_and_custom_routes_go_through_celery(celery_conf) -> None:
    celery_conf.broker_url = "redis://127.0.0.1:6379/0"
    celery_conf.broker_transport_options = {"visibility_timeout": 3600}
    assert task_queue.hand_built_envelope_fits(current_app)

    for change in (
        {"broker_url": "rediss://127.0.0.1:6380/0?ssl_cert_reqs=required"},
        {"broker_use_ssl": {"ssl_cert_reqs": "required"}},
        {"task_routes": {"subscriptions.tasks.*": {"queue": "mail"}}},
        {"broker_transport_options": {"global_keyprefix": "x:"}},
    ):
        saved = {name: celery_conf[name] for name in change}
        celery_conf.update(change)
        assert not task_queue.hand_built_envelope_fits(current_app), change
        celery_conf.update(saved)


def test_every_redis_transport_option_kombu_knows_is_sorted_into_one_kind() -> None:
    """A kombu upgrade that adds an option fails here until someone decides whether it
    changes the message."""
    known = set(kombu.transport.redis.Channel.from_transport_options) | {"polling_interval"}
    neutral, shaping = task_queue.NEUTRAL_TRANSPORT_OPTIONS, task_queue.SHAPING_TRANSPORT_OPTIONS

    assert not neutral & shaping
    assert sorted(known - neutral - shaping) == []
    assert sorted((neutral | shaping) - known) == []


def test_an_option_the_helper_was_never_checked_against_stops_start_up(settings) -> None:
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 3600,
        "global_keyprefix": "x:",
    }
    assert checks.check_broker_transport_options(None) == []

    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600, "new_option": 1}
    (error,) = checks.check_broker_transport_options(None)
    assert error.id == "subscriptions.E007"
    assert "new_option" in error.msg
