"""Logs never hold a full email address or IP. A filter on every handler masks them in
messages, arguments and tracebacks; the Celery worker logs through the same
configuration; gunicorn's access log leaves the client IP out and its own lines are
masked; django-axes masks what it logs about admin logins."""

import io
import json
import logging
import os
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import axes.utils
import pytest
import redis
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse

import newsroom.settings as project_settings
from newsroom.celery import app as celery_app
from newsroom.log_privacy import MaskPersonalData, mask_personal_data
from subscriptions.models import OutboundEmail, Subscription
from subscriptions.signup import services
from tests.esp_stub import PostmarkStub, Reply
from tests.factories import NewsletterFactory, with_form_token
from tests.smtp_stub import DEFER, REFUSE, SMTPStub

REPO_ROOT = Path(__file__).resolve().parent.parent
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"
VICTIM = "victim@example.org"
MASKED_VICTIM = "v***@example.org"
SMTP_REFUSAL = smtplib.SMTPRecipientsRefused(
    {VICTIM: (550, b"5.1.1 <victim@example.org>: Recipient address rejected: User unknown")}
)


def log_through_filter(message: object, *args: object, exc_info: bool = False) -> str:
    """What a handler with the filter writes for one logging call."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskPersonalData())
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("tests.log_privacy")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(message, *args, exc_info=exc_info)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue().rstrip("\n")


@contextmanager
def configured_log_output() -> Iterator[io.StringIO]:
    """What the handler settings.LOGGING configured writes while the block runs."""
    (handler,) = [h for h in logging.getLogger().handlers if h.name == "console"]
    output = io.StringIO()
    previous = handler.setStream(output)
    try:
        yield output
    finally:
        handler.setStream(previous)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


# --- the filter on realistic records ------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "args", "logged"),
    [
        (
            "outbound email %s failed: %s",
            (7, f"SMTPRecipientsRefused: {SMTP_REFUSAL}"),
            "outbound email 7 failed: SMTPRecipientsRefused: {'v***@example.org': (550, "
            "b'5.1.1 <v***@example.org>: Recipient address rejected: User unknown')}",
        ),
        (
            "outbound email %s failed: %s",
            (
                8,
                "AnymailRequestsAPIError: Postmark API response 422 (Unprocessable Entity):\n"
                + json.dumps({"ErrorCode": 406, "Message": "Inactive", "To": VICTIM}, indent=2),
            ),
            "outbound email 8 failed: AnymailRequestsAPIError: Postmark API response 422 "
            '(Unprocessable Entity):\n{\n  "ErrorCode": 406,\n  "Message": "Inactive",\n'
            '  "To": "v***@example.org"\n}',
        ),
        (
            "Task %(name)s[%(id)s] retry: %(exc)s",
            (
                {
                    "name": "subscriptions.tasks.send_outbound_email",
                    "id": "5b0e",
                    "exc": "Retry in 5s: SMTPDataError(451, b'4.3.0 <victim@example.org>')",
                },
            ),
            "Task subscriptions.tasks.send_outbound_email[5b0e] retry: "
            "Retry in 5s: SMTPDataError(451, b'4.3.0 <v***@example.org>')",
        ),
        (
            "Invalid request from ip=203.0.113.9: Invalid HTTP request line",
            (),
            "Invalid request from ip=203.0.113.x: Invalid HTTP request line",
        ),
        (
            "forwarded for %s",
            ("198.51.100.7, 203.0.113.9",),
            "forwarded for 198.51.100.x, 203.0.113.x",
        ),
        ("peer %s:%d", ("203.0.113.9", 51234), "peer 203.0.113.x:51234"),
        (
            "client %s refused",
            ("2001:db8:85a3:8d3:1319:8a2e:370:7348",),
            "client 2001:db8:85a3::/48 refused",
        ),
        ("peer [%s]:443", ("2001:db8::1",), "peer [2001:db8::/48]:443"),
        ("peer %s", ("::ffff:203.0.113.9",), "peer ::ffff:203.0.113.x"),
        (
            "Not Found: %s",
            ("/unsubscribe/?email=victim%40example.org&list=daily",),
            "Not Found: /unsubscribe/?email=v***%40example.org&list=daily",
        ),
        (
            "referer %s",
            ("https://www.example.org/story?utm_source=nl&email=victim@example.org",),
            "referer https://www.example.org/story?utm_source=nl&email=v***@example.org",
        ),
        (
            "reply to <mailto:%s>",
            ("Victim.Name+news@Example.ORG",),
            "reply to <mailto:V***@Example.ORG>",
        ),
        ("subscriber %r", ("o'brien@example.org",), 'subscriber "o***@example.org"'),
    ],
    ids=[
        "smtp-refusal",
        "anymail-error-json",
        "celery-retry-line",
        "ipv4-in-gunicorn-line",
        "forwarded-for-list",
        "ipv4-with-port",
        "ipv6",
        "ipv6-bracketed",
        "ipv4-mapped-ipv6",
        "url-encoded-address-in-url",
        "address-in-url",
        "mailto",
        "apostrophe",
    ],
)
def test_the_filter_masks_addresses_and_ips_in_realistic_records(
    message: str, args: tuple, logged: str
) -> None:
    assert log_through_filter(message, *args) == logged
    assert mask_personal_data(logged) == logged  # a second handler changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "Django 5.2.19 on Python 3.11.9, celery 5.7.0",
        "2026-12-01 22:04:03,123 took 0.35s (12:30 UTC)",
        "celery@worker-1 ready.",
        "link 00:1a:2b:3c:4d:5e up",
        "std::vector<int> and a :: b",
        "Listening at: http://0.0.0.0:8000 and http://[::]:8000",
        "ratelimit:api-ip:9f86d081884c7d65",
        "3 of 12 rows, 99.5% done",
    ],
)
def test_the_filter_leaves_ordinary_text_alone(text: str) -> None:
    assert log_through_filter(text) == text


def test_an_address_in_a_traceback_is_masked() -> None:
    try:
        raise SMTP_REFUSAL
    except smtplib.SMTPRecipientsRefused:
        logged = log_through_filter("sending failed", exc_info=True)

    assert logged.startswith("sending failed\nTraceback (most recent call last):")
    assert "smtplib.SMTPRecipientsRefused: {'v***@example.org': (550" in logged
    assert VICTIM not in logged


def test_a_message_whose_arguments_do_not_fit_is_still_logged_masked() -> None:
    logged = log_through_filter("%d refused for %s", "victim@example.org")

    assert logged == "%d refused for %s ('v***@example.org',)"


def test_masking_a_long_line_takes_linear_time() -> None:
    started = time.monotonic()
    mask_personal_data("a" * 200_000 + "@example.org " + "1." * 100_000 + "a:" * 100_000)

    assert time.monotonic() - started < 2.0


# --- every handler carries it -----------------------------------------------------------


def test_every_handler_in_settings_logging_masks_personal_data(settings) -> None:
    assert settings.LOGGING["filters"]["mask_personal_data"] == {
        "()": "newsroom.log_privacy.MaskPersonalData"
    }
    assert settings.LOGGING["handlers"]
    for name, handler in settings.LOGGING["handlers"].items():
        assert "mask_personal_data" in handler.get("filters", []), name


def test_every_handler_that_writes_in_this_process_masks_personal_data() -> None:
    """Including the ones Django's DEFAULT_LOGGING installs, and the one redis-py adds
    when a PubSub opens (as kombu's do in the worker): settings.LOGGING pre-empts them."""
    redis.Redis.from_url(CLOSED_PORT_REDIS).pubsub().close()  # connects to nothing
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    writing = [
        (logger.name, handler)
        for logger in loggers
        for handler in logger.handlers
        if not isinstance(handler, logging.NullHandler)
        and not type(handler).__module__.startswith("_pytest")  # pytest's capture
    ]

    assert writing
    for name, handler in writing:
        assert any(isinstance(f, MaskPersonalData) for f in handler.filters), (name, handler)


# --- end to end: a failing send -------------------------------------------------------------


@pytest.fixture
def smtp(settings) -> Callable[..., SMTPStub]:
    """Send through Django's real SMTP backend to a stand-in server with a script."""
    stubs: list[SMTPStub] = []

    def start(*script: str) -> SMTPStub:
        stub = SMTPStub(list(script)).__enter__()
        stubs.append(stub)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", stub.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        return stub

    yield start
    for stub in stubs:
        stub.__exit__()


def sign_up_over_the_api(django_capture_on_commit_callbacks) -> OutboundEmail:
    NewsletterFactory(slug="the-briefing")
    with django_capture_on_commit_callbacks(execute=True):
        response = Client().post(
            "/api/v1/subscriptions",
            data=json.dumps(with_form_token({"email": VICTIM, "newsletters": ["the-briefing"]})),
            content_type="application/json",
            REMOTE_ADDR="203.0.113.9",
        )
    assert response.status_code == 202
    return OutboundEmail.objects.get()


@pytest.mark.django_db
def test_an_smtp_server_refusing_the_reader_leaves_no_address_in_the_log(
    smtp, django_capture_on_commit_callbacks
) -> None:
    smtp(DEFER, REFUSE)

    with configured_log_output() as output:
        outbound = sign_up_over_the_api(django_capture_on_commit_callbacks)

    # The errors did carry the address: the row keeps it, the log must not.
    assert outbound.status == OutboundEmail.Status.FAILED
    assert f"<{VICTIM}>: Recipient address rejected" in outbound.last_error
    log = output.getvalue()
    assert "retry: Retry in" in log
    assert "SMTPDataError(451, b'4.3.0 <v***@example.org>: Temporary lookup failure')" in log
    assert f"WARNING subscriptions.tasks outbound email {outbound.pk} failed: " in log
    assert "SMTPRecipientsRefused: {'v***@example.org': (550, b'5.1.1 <v***@example.org>" in log
    assert VICTIM not in log
    assert "203.0.113.9" not in log


@pytest.mark.django_db
def test_an_esp_error_quoting_the_reader_leaves_no_address_in_the_log(
    settings, django_capture_on_commit_callbacks
) -> None:
    refusal = Reply(422, {"ErrorCode": 405, "Message": "Not allowed to send", "To": VICTIM})
    with PostmarkStub([refusal]) as stub:
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "test-token", "POSTMARK_API_URL": stub.api_url}
        with configured_log_output() as output:
            outbound = sign_up_over_the_api(django_capture_on_commit_callbacks)

    assert outbound.status == OutboundEmail.Status.FAILED
    assert f'"To": "{VICTIM}"' in outbound.last_error
    log = output.getvalue()
    assert f"outbound email {outbound.pk} failed: AnymailRequestsAPIError" in log
    assert '"To": "v***@example.org"' in log
    assert VICTIM not in log


# --- the Celery worker ----------------------------------------------------------------------

WORKER_QUEUE = "tests-log-privacy"


def database_url_of_the_test_database() -> str:
    """DATABASE_URL pointing at the test database this session created."""
    return (
        urlsplit(os.environ["DATABASE_URL"])
        ._replace(path="/" + connection.settings_dict["NAME"])
        .geturl()
    )


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_logs_its_retries_and_failures_without_the_address(smtp, tmp_path) -> None:
    """`celery -A newsroom worker` in its own process: Celery's own lines go through
    settings.LOGGING (its format, its filter), not through handlers of Celery's."""
    stub = smtp(DEFER, REFUSE)
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_of_the_test_database(),
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(stub.port),
        "OUTBOX_RETRY_BASE_SECONDS": "0.2",
        "OUTBOX_RETRY_MAX_SECONDS": "0.5",
        "LOG_LEVEL": "INFO",
    }
    celery_app.conf.task_always_eager = False
    original_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = WORKER_QUEUE
    with celery_app.connection_for_write() as broker:
        broker.default_channel.queue_purge(WORKER_QUEUE)
    log_file = tmp_path / "worker.log"
    with log_file.open("w") as log_sink:
        worker = subprocess.Popen(  # noqa: S603 - our interpreter and our arguments
            [
                *(sys.executable, "-m", "celery", "-A", "newsroom", "worker"),
                *("--pool", "solo", "--queues", WORKER_QUEUE),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
            ],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log_sink,
            stderr=subprocess.STDOUT,
        )
    try:
        result = services.subscribe(
            email=VICTIM,
            newsletters=[NewsletterFactory()],
            source=Subscription.Source.API,
            consent=services.ConsentContext(ip_address="203.0.113.9"),
        )
        outbound_id = result.confirmation_email_id
        wait_for(
            lambda: OutboundEmail.objects.get(pk=outbound_id).status == OutboundEmail.Status.FAILED,
            timeout=60,
            what="the worker to fail the row",
        )
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        celery_app.conf.task_default_queue = original_queue

    log = log_file.read_text()
    assert stub.attempts == 2
    assert " INFO celery.app.trace Task subscriptions.tasks.send_outbound_email[" in log
    assert "retry: Retry in" in log
    assert "<v***@example.org>: Temporary lookup failure" in log
    assert f"WARNING subscriptions.tasks outbound email {outbound_id} failed: " in log
    assert VICTIM not in log


# --- gunicorn -------------------------------------------------------------------------------


def test_the_image_and_compose_start_gunicorn_with_its_config() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    compose = (REPO_ROOT / "docker-compose.yml").read_text()

    assert 'CMD ["gunicorn", "--config", "newsroom/gunicorn.conf.py",' in dockerfile
    assert "exec gunicorn --config newsroom/gunicorn.conf.py newsroom.wsgi:application" in compose
    for text in (dockerfile, compose):
        assert "--access-logfile" not in text
        assert "--access-logformat" not in text


def test_gunicorn_logs_requests_without_the_client_ip_or_addresses(tmp_path) -> None:
    port = free_port()
    environment = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": "gunicorn-test-key",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "false",
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
    }
    log_file = tmp_path / "gunicorn.log"
    with log_file.open("w") as log_sink:
        server = subprocess.Popen(  # noqa: S603 - our interpreter and our arguments
            [
                *(sys.executable, "-m", "gunicorn", "--config", "newsroom/gunicorn.conf.py"),
                *("--bind", f"127.0.0.1:{port}", "--workers", "1", "newsroom.wsgi:application"),
            ],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log_sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "Booting worker" in log_file.read_text(), timeout=30, what="gunicorn")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/schema/?email=victim%40example.org",
            headers={"Referer": "https://www.example.org/story?email=victim@example.org"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our server
            assert response.status == 200
        with socket.create_connection(("127.0.0.1", port), timeout=10) as garbage:
            garbage.sendall(b"GET /?to=victim@example.org HTTP/1.1 junk\r\n\r\n")
            garbage.recv(1024)
        wait_for(lambda: "Invalid request" in log_file.read_text(), timeout=10, what="the log")
    finally:
        server.terminate()
        server.wait(timeout=20)

    log = log_file.read_text()
    assert '"GET /api/schema/ HTTP/1.1" 200 ' in log
    assert "Invalid request from ip=127.0.0.x" in log
    assert "127.0.0.1" not in log
    assert "victim" not in log


# --- django-axes ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failed_admin_login_is_logged_without_the_username_or_ip(client, settings) -> None:
    assert project_settings.AXES_SENSITIVE_PARAMETERS == ["username", "ip_address"]
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    axes.utils.reset()
    User.objects.create_user("editor@example.org", password="a long secret", is_staff=True)

    with configured_log_output() as output:
        response = client.post(
            reverse("admin:login"),
            {"username": "editor@example.org", "password": "wrong"},
            REMOTE_ADDR="203.0.113.5",
        )
    axes.utils.reset()

    assert response.status_code == 200
    log = output.getvalue()
    assert "AXES: New login failure by {" in log
    assert 'username: "********************"' in log
    assert 'ip_address: "********************"' in log
    assert "editor" not in log
    assert "203.0.113" not in log


def test_json_lines_are_one_object_each_and_masked_like_plain_ones() -> None:
    """LOG_FORMAT=json: what a log shipper reads, with no address or IP in the message
    or in the traceback the formatter writes itself."""
    from newsroom.log_privacy import MaskedJsonFormatter, MaskPersonalData, logging_config

    config = logging_config("INFO", "json")
    handler_config = config["handlers"]["console"]
    formatter_config = config["formatters"][handler_config["formatter"]]
    assert formatter_config["()"] == "newsroom.log_privacy.MaskedJsonFormatter"
    assert handler_config["filters"] == ["mask_personal_data"]
    # The configured handler, on a logger of this test's own (not the process's root).
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskedJsonFormatter(formatter_config["fmt"]))
    handler.addFilter(MaskPersonalData())
    logger = logging.getLogger("tests.json_lines")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise ValueError("refused victim@example.org from 203.0.113.9")
    except ValueError:
        logger.exception("could not send to %s", "victim@example.org")
    finally:
        logger.removeHandler(handler)

    line = stream.getvalue().strip()
    record = json.loads(line)
    assert "\n" not in line
    assert record["levelname"] == "ERROR"
    assert record["name"] == "tests.json_lines"
    assert record["message"] == "could not send to v***@example.org"
    assert "ValueError: refused v***@example.org from 203.0.113.x" in record["exc_info"]
    assert "victim@" not in line and "203.0.113.9" not in line


def test_an_unknown_log_format_stops_start_up_with_the_choices() -> None:
    from newsroom.log_privacy import logging_config

    with pytest.raises(ValueError, match="LOG_FORMAT must be one of plain, json"):
        logging_config("INFO", "xml")
