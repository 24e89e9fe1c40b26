"""After a fault the outbox recovers in seconds: a row whose enqueue failed is due at
once, a send whose worker died is taken back within a sweep, the broker losing its
messages makes every waiting row go out again, and a long queue is not flooded with
duplicates while it drains."""

from datetime import timedelta
from unittest import mock

import psycopg
import pytest
import redis
from django.core import mail
from django.db import connection
from django.utils import timezone

from subscriptions import tasks
from subscriptions.mail import messages, outbox
from subscriptions.models import OutboundEmail, Subscription
from subscriptions.platform import leases, task_queue
from subscriptions.platform.leases import Namespace
from subscriptions.signup import services
from tests.factories import NewsletterFactory

pytestmark = pytest.mark.django_db
Status = OutboundEmail.Status


def sign_up(email: str = "ann@example.org") -> OutboundEmail:
    result = services.subscribe(
        email=email,
        newsletters=[NewsletterFactory()],
        source=Subscription.Source.FORM,
        consent=services.ConsentContext(),
    )
    return OutboundEmail.objects.get(pk=result.confirmation_email_id)


@pytest.fixture
def broker_takes_without_running(monkeypatch) -> list[int]:
    """A broker that accepts each task and holds it (no worker takes it yet)."""
    taken: list[int] = []
    monkeypatch.setattr(outbox, "send_to_worker", lambda task, pk: taken.append(pk) or f"task-{pk}")
    return taken


def test_a_row_whose_enqueue_failed_is_due_at_once_and_the_next_sweep_sends_it(
    django_capture_on_commit_callbacks,
):
    broker_down = mock.patch.object(
        tasks.send_outbound_email, "delay", side_effect=OSError("no broker")
    )
    with broker_down, django_capture_on_commit_callbacks(execute=True):
        outbound = sign_up()
    outbound.refresh_from_db()
    assert outbound.status == Status.QUEUED
    assert outbound.next_attempt_at is not None
    assert outbound.next_attempt_at <= timezone.now()

    # The broker is back: the very next sweep sends it, long before the row looks lost.
    assert outbox.requeue_stale() == 1

    outbound.refresh_from_db()
    assert (outbound.status, outbound.attempts) == (Status.SENT, 1)
    assert len(mail.outbox) == 1


def test_a_row_handed_to_the_broker_is_not_handed_again_until_it_looks_lost(
    broker_takes_without_running, settings
):
    stale = timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS)
    outbound = sign_up()
    broker_takes_without_running.clear()
    now = outbound.created_at + stale + timedelta(seconds=1)

    assert outbox.requeue_stale(now=now) == 1
    # A long queue in front of it: the next sweeps leave it to the task it has.
    assert outbox.requeue_stale(now=now + timedelta(seconds=10)) == 0
    assert outbox.requeue_stale(now=now + stale - timedelta(seconds=1)) == 0
    assert outbox.requeue_stale(now=now + stale + timedelta(seconds=1)) == 1
    assert broker_takes_without_running == [outbound.pk, outbound.pk]


def test_after_the_broker_lost_its_messages_every_waiting_row_goes_out_again(
    broker_takes_without_running,
):
    now = timezone.now()
    waiting = sign_up("waiting@example.org")
    due = sign_up("due@example.org")
    held_back = sign_up("later@example.org")
    in_backoff = sign_up("backoff@example.org")
    sent = sign_up("sent@example.org")
    OutboundEmail.objects.filter(pk=due.pk).update(next_attempt_at=now - timedelta(seconds=5))
    OutboundEmail.objects.filter(pk=held_back.pk).update(next_attempt_at=now + timedelta(hours=1))
    OutboundEmail.objects.filter(pk=in_backoff.pk).update(
        attempts=1, next_attempt_at=now + timedelta(minutes=5)
    )
    OutboundEmail.objects.filter(pk=sent.pk).update(status=Status.SENT)
    broker_takes_without_running.clear()

    assert outbox.requeue_after_broker_reset(now=now) == 2

    assert sorted(broker_takes_without_running) == sorted([waiting.pk, due.pk])


@pytest.mark.postgres
def test_a_send_whose_worker_died_is_taken_back_within_a_sweep(settings):
    outbound = sign_up()
    mail.outbox = []
    # Claimed seconds ago by a worker that is gone: its lease went with its session.
    outbox.claim(outbound.pk, task_id="dead-task", now=timezone.now() - timedelta(seconds=10))

    assert outbox.requeue_stale() == 1

    outbound.refresh_from_db()
    assert (outbound.status, outbound.attempts) == (Status.SENT, 2)
    assert len(mail.outbox) == 1


@pytest.mark.postgres
def test_a_send_whose_worker_still_holds_its_lease_is_left_alone(settings):
    outbound = sign_up()
    mail.outbox = []
    outbox.claim(outbound.pk, task_id="slow-task", now=timezone.now() - timedelta(seconds=10))
    database = settings.DATABASES["default"]
    with psycopg.connect(
        host=database["HOST"] or "127.0.0.1",
        port=database["PORT"] or 5432,
        user=database["USER"],
        password=database["PASSWORD"] or None,
        dbname=connection.settings_dict["NAME"],
        autocommit=True,
    ) as other_worker:
        other_worker.execute(
            "SELECT pg_advisory_lock(%s, %s)",
            [Namespace.OUTBOUND_EMAIL, leases.folded_key(outbound.pk)],
        )

        assert outbox.requeue_stale() == 0

    outbound.refresh_from_db()
    assert (outbound.status, outbound.attempts) == (Status.SENDING, 1)
    assert mail.outbox == []


@pytest.mark.redis
def test_the_broker_is_seen_to_have_lost_its_messages_once_per_loss(spare_redis):
    assert task_queue.broker_lost_its_messages(spare_redis.url) is True
    assert task_queue.broker_lost_its_messages(spare_redis.url) is False

    redis.Redis.from_url(spare_redis.url).flushdb()

    assert task_queue.broker_lost_its_messages(spare_redis.url) is True
    assert task_queue.broker_lost_its_messages(spare_redis.url) is False


def test_a_broker_that_keeps_its_messages_is_never_seen_to_lose_them():
    assert task_queue.broker_lost_its_messages("amqp://guest:guest@127.0.0.1:5672//") is False
    assert task_queue.broker_lost_its_messages("redis://127.0.0.1:1/0") is False


def test_every_attempt_at_one_email_carries_the_same_message_id(
    django_capture_on_commit_callbacks,
):
    """Should a worker die after the ESP accepted a message but before the row says so,
    the copy sent again has the same Message-ID, which mailbox providers fold into one."""
    with django_capture_on_commit_callbacks(execute=True):
        first, other = sign_up("ann@example.org"), sign_up("bob@example.org")
    sent = [message.extra_headers["Message-ID"] for message in mail.outbox]

    assert messages.build_message(first).extra_headers["Message-ID"] == sent[0]
    assert messages.build_message(first).extra_headers["Message-ID"] == sent[0]
    assert messages.build_message(other).extra_headers["Message-ID"] == sent[1] != sent[0]
    assert sent[0].startswith(f"<outbound.{first.pk}.") and sent[0].endswith("@news.example.org>")
