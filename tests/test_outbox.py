"""Every email goes through the outbox: a duplicated task sends once, transient errors
retry, permanent ones stop, and rows left behind are picked up by the sweeper."""

import random
import smtplib
from datetime import timedelta
from unittest import mock

import pytest
import requests
from anymail.exceptions import (
    AnymailConfigurationError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
    AnymailRequestsAPIError,
    AnymailSerializationError,
    AnymailUnsupportedFeature,
)
from celery.exceptions import Retry
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from subscriptions import tasks
from subscriptions.mail import outbox, retry_policy
from subscriptions.models import OutboundEmail, Subscription
from subscriptions.signup import services
from tests.esp_stub import PostmarkStub, Reply
from tests.factories import NewsletterFactory, with_form_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued() -> OutboundEmail:
    result = services.subscribe(
        email="ann@example.org",
        newsletters=[NewsletterFactory()],
        source=Subscription.Source.FORM,
        consent=services.ConsentContext(),
    )
    return OutboundEmail.objects.get(pk=result.confirmation_email_id)


def api_error(status: int) -> AnymailRequestsAPIError:
    response = mock.Mock(status_code=status, text="error", reason="x")
    response.json.side_effect = ValueError
    return AnymailRequestsAPIError(
        "ESP said no", response=response, email_message=None, payload=None, backend=None
    )


def run_in_worker(outbound_email_id: int) -> str:
    """Run the task body as a worker would, so `retry` raises Retry instead of looping."""
    task = tasks.send_outbound_email
    task.push_request(called_directly=False, is_eager=True, retries=0, args=[outbound_email_id])
    try:
        return task.run(outbound_email_id)
    finally:
        task.pop_request()


def test_a_task_delivered_twice_sends_once(queued):
    assert tasks.send_outbound_email.apply(args=[queued.pk]).get() == "sent"
    assert tasks.send_outbound_email.apply(args=[queued.pk]).get() == "skipped"

    assert len(mail.outbox) == 1
    queued.refresh_from_db()
    assert (queued.status, queued.attempts) == (OutboundEmail.Status.SENT, 1)
    assert queued.sent_at is not None


def test_a_row_another_worker_is_sending_is_left_alone(queued):
    assert outbox.claim(queued.pk) is not None

    assert tasks.send_outbound_email.apply(args=[queued.pk]).get() == "skipped"
    assert mail.outbox == []


def test_a_transient_error_puts_the_row_back_and_retries(queued, settings):
    with (
        mock.patch("anymail.backends.test.EmailBackend.send_messages", side_effect=api_error(503)),
        pytest.raises(Retry),
    ):
        run_in_worker(queued.pk)

    queued.refresh_from_db()
    assert queued.status == OutboundEmail.Status.QUEUED
    assert queued.attempts == 1
    assert "503" in queued.last_error or "ESP said no" in queued.last_error


@pytest.mark.parametrize("status", [400, 401, 422])
def test_a_permanent_error_fails_the_row_without_retry(queued, status):
    with mock.patch(
        "anymail.backends.test.EmailBackend.send_messages", side_effect=api_error(status)
    ):
        assert run_in_worker(queued.pk) == "failed"

    queued.refresh_from_db()
    assert queued.status == OutboundEmail.Status.FAILED
    assert queued.attempts == 1


def test_429_is_transient(queued):
    with (
        mock.patch("anymail.backends.test.EmailBackend.send_messages", side_effect=api_error(429)),
        pytest.raises(Retry),
    ):
        run_in_worker(queued.pk)


def esp_answer(status: int, body: bytes = b'{"Message": "x"}') -> requests.Response:
    response = requests.Response()
    response.status_code, response.reason, response._content = status, "x", body
    return response


def api_answer(status: int) -> AnymailRequestsAPIError:
    return AnymailRequestsAPIError("ESP said no", response=esp_answer(status))


def no_answer(cause: requests.RequestException) -> AnymailRequestsAPIError:
    """What anymail raises when the request got no answer: its error and the cause."""
    error_class = type("AnymailRequestsAPIError", (AnymailRequestsAPIError, type(cause)), {})
    error = error_class("Error posting to https://api.example.org/email:")
    error.__cause__ = cause
    return error


PERMANENT, TRANSIENT = True, False
FAILURES = [
    # anymail: the request, the message or the settings are wrong.
    ("recipients refused in a 200", AnymailRecipientsRefused(response=esp_answer(200)), PERMANENT),
    ("recipients refused in a 422", AnymailRecipientsRefused(response=esp_answer(422)), PERMANENT),
    ("invalid address", AnymailInvalidAddress("Invalid email address 'ann@'"), PERMANENT),
    ("unsupported feature", AnymailUnsupportedFeature("no AMP for this ESP"), PERMANENT),
    ("serialization", AnymailSerializationError("Decimal is not JSON"), PERMANENT),
    ("anymail configuration", AnymailConfigurationError("set POSTMARK_SERVER_TOKEN"), PERMANENT),
    ("improperly configured", ImproperlyConfigured("EMAIL_BACKEND"), PERMANENT),
    # HTTP: a 4xx is about the request, except a timeout or a rate limit.
    ("http 400", api_answer(400), PERMANENT),
    ("http 401", api_answer(401), PERMANENT),
    ("http 403", api_answer(403), PERMANENT),
    ("http 404", api_answer(404), PERMANENT),
    ("http 422", api_answer(422), PERMANENT),
    ("http 408", api_answer(408), TRANSIENT),
    ("http 429", api_answer(429), TRANSIENT),
    ("http 500", api_answer(500), TRANSIENT),
    ("http 502", api_answer(502), TRANSIENT),
    ("http 503", api_answer(503), TRANSIENT),
    ("connection refused", no_answer(requests.ConnectionError("refused")), TRANSIENT),
    ("read timeout", no_answer(requests.ReadTimeout("read timed out")), TRANSIENT),
    # SMTP: the reply code decides (RFC 5321 §4.2.1), whatever the exception.
    ("smtp 550 reply", smtplib.SMTPResponseException(550, b"mailbox unavailable"), PERMANENT),
    ("smtp 421 reply", smtplib.SMTPResponseException(421, b"closing channel"), TRANSIENT),
    ("smtp sender 553", smtplib.SMTPSenderRefused(553, b"not ours", "hello@x.org"), PERMANENT),
    ("smtp sender 451", smtplib.SMTPSenderRefused(451, b"try later", "hello@x.org"), TRANSIENT),
    ("smtp data 552", smtplib.SMTPDataError(552, b"message too large"), PERMANENT),
    ("smtp data 452", smtplib.SMTPDataError(452, b"insufficient storage"), TRANSIENT),
    ("smtp auth 535", smtplib.SMTPAuthenticationError(535, b"bad credentials"), PERMANENT),
    ("smtp auth 454", smtplib.SMTPAuthenticationError(454, b"try again"), TRANSIENT),
    ("smtp greeting 421", smtplib.SMTPConnectError(421, b"too busy"), TRANSIENT),
    (
        "smtp recipient 550",
        smtplib.SMTPRecipientsRefused({"ann@example.org": (550, b"no such user")}),
        PERMANENT,
    ),
    (
        "smtp recipient greylisted 451",
        smtplib.SMTPRecipientsRefused({"ann@example.org": (451, b"greylisted")}),
        TRANSIENT,
    ),
    (
        "smtp recipients 550 and 451",
        smtplib.SMTPRecipientsRefused(
            {"ann@example.org": (550, b"no such user"), "bob@example.org": (451, b"later")}
        ),
        TRANSIENT,
    ),
    (
        "smtp disconnected",
        smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
        TRANSIENT,
    ),
    ("socket refused", ConnectionRefusedError(111, "Connection refused"), TRANSIENT),
    ("socket timeout", TimeoutError("timed out"), TRANSIENT),
]


@pytest.mark.parametrize(
    ("error", "permanent"),
    [pytest.param(error, permanent, id=name) for name, error, permanent in FAILURES],
)
def test_only_failures_that_trying_again_cannot_mend_are_permanent(error, permanent):
    assert retry_policy.is_permanent_failure(error) is permanent


def test_a_recipient_the_esp_refuses_inside_a_200_fails_the_row_without_retry(queued, settings):
    # Mandrill answers 200 with a status per recipient; anymail's real Mandrill backend
    # turns "every recipient rejected" into AnymailRecipientsRefused.
    refused = [{"email": "ann@example.org", "status": "rejected", "reject_reason": "hard-bounce"}]
    with PostmarkStub([Reply(200, refused)]) as mandrill:
        settings.EMAIL_BACKEND = "anymail.backends.mandrill.EmailBackend"
        settings.ANYMAIL = {"MANDRILL_API_KEY": "test-key", "MANDRILL_API_URL": mandrill.api_url}

        assert run_in_worker(queued.pk) == "failed"

    (exchange,) = mandrill.exchanges
    assert (exchange.path, exchange.status) == ("/messages/send.json", 200)
    queued.refresh_from_db()
    assert (queued.status, queued.attempts) == (OutboundEmail.Status.FAILED, 1)
    assert "AnymailRecipientsRefused" in queued.last_error


def test_the_row_fails_after_the_last_allowed_attempt(queued, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 2
    with mock.patch(
        "anymail.backends.test.EmailBackend.send_messages", side_effect=ConnectionError("down")
    ):
        with pytest.raises(Retry):
            run_in_worker(queued.pk)
        assert run_in_worker(queued.pk) == "failed"

    queued.refresh_from_db()
    assert (queued.status, queued.attempts) == (OutboundEmail.Status.FAILED, 2)


def test_retry_countdowns_grow_with_jitter_and_stay_below_the_ceiling(settings):
    settings.OUTBOX_RETRY_BASE_SECONDS = 5
    settings.OUTBOX_RETRY_MAX_SECONDS = 600
    first = [retry_policy.retry_countdown(1) for _ in range(50)]
    third = [retry_policy.retry_countdown(3) for _ in range(50)]
    late = [retry_policy.retry_countdown(30) for _ in range(50)]

    assert all(2.5 <= c <= 5 for c in first)
    assert all(10 <= c <= 20 for c in third)
    assert all(300 <= c <= 600 for c in late)
    assert len(set(late)) > 1


def test_the_sweeper_enqueues_rows_left_queued(queued, settings):
    OutboundEmail.objects.filter(pk=queued.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS + 1)
    )

    assert tasks.requeue_stale_work.apply().get() == 1

    queued.refresh_from_db()
    assert queued.status == OutboundEmail.Status.SENT
    assert len(mail.outbox) == 1


def fail_transiently_once(outbound_email_id: int) -> OutboundEmail:
    """One attempt that the ESP answers with a 503; the task schedules its retry."""
    with (
        mock.patch("anymail.backends.test.EmailBackend.send_messages", side_effect=api_error(503)),
        pytest.raises(Retry),
    ):
        run_in_worker(outbound_email_id)
    return OutboundEmail.objects.get(pk=outbound_email_id)


def test_a_retry_records_when_it_is_due(queued, settings):
    settings.OUTBOX_RETRY_BASE_SECONDS = 400
    settings.OUTBOX_RETRY_MAX_SECONDS = 600
    before = timezone.now()

    waiting = fail_transiently_once(queued.pk)

    # The first countdown is base/2..base, with jitter.
    assert waiting.status == OutboundEmail.Status.QUEUED
    assert before + timedelta(seconds=200) <= waiting.next_attempt_at
    assert waiting.next_attempt_at <= timezone.now() + timedelta(seconds=400)


def test_the_sweeper_leaves_a_retry_with_a_long_backoff_to_its_own_task(queued, settings):
    # A countdown well past the stale threshold: before, the sweeper enqueued the row two
    # minutes after the failed attempt and started a second chain of retries.
    settings.OUTBOX_RETRY_BASE_SECONDS = 600
    settings.OUTBOX_RETRY_MAX_SECONDS = 600
    waiting = fail_transiently_once(queued.pk)
    stale = timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)

    assert outbox.requeue_stale(now=waiting.claimed_at + stale + timedelta(seconds=60)) == 0
    assert outbox.requeue_stale(now=waiting.next_attempt_at) == 0
    assert outbox.requeue_stale(now=waiting.next_attempt_at + stale) == 0

    assert mail.outbox == []
    assert OutboundEmail.objects.get(pk=queued.pk).attempts == 1


def test_the_sweeper_enqueues_a_retry_overdue_by_more_than_the_stale_threshold(queued, settings):
    settings.OUTBOX_RETRY_BASE_SECONDS = 600
    settings.OUTBOX_RETRY_MAX_SECONDS = 600
    waiting = fail_transiently_once(queued.pk)
    stale = timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)

    # The retry's task never came back (the broker lost it).
    assert outbox.requeue_stale(now=waiting.next_attempt_at + stale + timedelta(seconds=1)) == 1

    sent = OutboundEmail.objects.get(pk=queued.pk)
    assert (sent.status, sent.attempts) == (OutboundEmail.Status.SENT, 2)
    assert sent.next_attempt_at is None
    assert len(mail.outbox) == 1


def test_the_sweeper_enqueues_a_row_that_never_reached_the_broker(queued, settings):
    stale = timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)
    assert (queued.claimed_at, queued.next_attempt_at) == (None, None)

    assert outbox.requeue_stale(now=queued.created_at + stale - timedelta(seconds=1)) == 0
    assert outbox.requeue_stale(now=queued.created_at + stale + timedelta(seconds=1)) == 1

    queued.refresh_from_db()
    assert (queued.status, queued.attempts) == (OutboundEmail.Status.SENT, 1)


def test_the_sweeper_leaves_fresh_rows_to_their_task(queued):
    assert outbox.requeue_stale() == 0
    assert mail.outbox == []


def test_a_row_whose_worker_died_mid_send_is_taken_over(queued, settings):
    outbox.claim(queued.pk, now=timezone.now() - timedelta(hours=1))

    assert outbox.requeue_stale() == 1

    queued.refresh_from_db()
    assert (queued.status, queued.attempts) == (OutboundEmail.Status.SENT, 2)


def test_an_unreachable_broker_does_not_fail_the_signup(client, django_capture_on_commit_callbacks):
    newsletter = NewsletterFactory()
    with (
        mock.patch.object(tasks.send_outbound_email, "delay", side_effect=OSError("no broker")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(
            "/api/v1/subscriptions",
            data=with_form_token({"email": "ann@example.org", "newsletters": [newsletter.slug]}),
            content_type="application/json",
        )

    assert response.status_code == 202
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.QUEUED


def test_a_redelivery_of_the_same_task_takes_over_its_own_claim(queued):
    first = outbox.claim(queued.pk, task_id="task-1")

    again = outbox.claim(queued.pk, task_id="task-1")

    assert first is not None and again is not None
    queued.refresh_from_db()
    assert (queued.status, queued.attempts, queued.claimed_by_task) == ("sending", 2, "task-1")


def test_a_different_task_cannot_take_a_fresh_claim(queued):
    outbox.claim(queued.pk, task_id="task-1")

    assert outbox.claim(queued.pk, task_id="task-2") is None
    assert outbox.claim(queued.pk) is None


def held_back(count: int, *, first_due, per_minute: int) -> list[int]:
    """Confirmations a pending import held back, due at its pace (each queued as its
    chunk was written, so a later one was queued later), written in no order; their ids,
    oldest due first."""
    gap = timedelta(minutes=1) / per_minute
    order = list(range(count))
    random.Random(count).shuffle(order)
    rows = OutboundEmail.objects.bulk_create(
        OutboundEmail(
            kind=OutboundEmail.Kind.CONFIRMATION,
            to_email=f"held{n}@example.org",
            created_at=first_due - timedelta(hours=2) + n * gap,
            next_attempt_at=first_due + n * gap,
        )
        for n in order
    )
    return [row.pk for row in sorted(rows, key=lambda row: row.next_attempt_at)]


@pytest.fixture
def enqueued(monkeypatch) -> list[int]:
    """What the sweeper hands to Celery, in order."""
    handed = []

    def hand(outbound_email_id: int) -> bool:
        handed.append(outbound_email_id)
        return True

    monkeypatch.setattr(outbox, "enqueue", hand)
    return handed


def test_the_sweeper_keeps_up_with_an_import_pace_above_a_thousand_a_minute(
    settings, enqueued
) -> None:
    settings.IMPORT_CONFIRMATIONS_PER_MINUTE = 3_000
    settings.OUTBOX_SWEEP_INTERVAL = 60
    now = timezone.now()
    stale = timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)
    # A minute's worth at that pace, all due by the sweep.
    due = held_back(3_000, first_due=now - stale - timedelta(minutes=1), per_minute=3_000)

    assert outbox.requeue_stale(now=now) == 3_000

    assert enqueued == due


def test_the_sweeper_sends_the_oldest_due_first_when_more_are_due_than_a_sweep_takes(
    settings, enqueued
) -> None:
    settings.IMPORT_CONFIRMATIONS_PER_MINUTE = 300  # a sweep takes the minimum, 1,000
    now = timezone.now()
    stale = timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)
    due = held_back(1_200, first_due=now - stale - timedelta(hours=1), per_minute=300)
    not_yet = held_back(5, first_due=now, per_minute=300)

    assert outbox.requeue_stale(now=now) == 1_000

    assert enqueued == due[:1_000]
    assert not set(not_yet) & set(enqueued)
