"""A cap on the messages an hour (ISSUE_MESSAGES_PER_HOUR) holds across batches and
workers, over a sliding hour: the issue waits, shown to editors, until the oldest of
the hour's batches are an hour old, and a batch that comes out smaller gives its room
back. On Redis (shared by every worker) and in one process alike."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from subscriptions.issues import delivery, services, throttle, transport
from subscriptions.models import Issue, IssueDelivery
from subscriptions.platform.redis_store import redis_client
from tests.factories import NewsletterFactory
from tests.issue_support import draft, readers, workers_at_once
from tests.test_issue_admin import logged_in, url

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = 3600


@pytest.fixture(params=["redis", "in-process"])
def hourly(request, settings, monkeypatch):
    """A cap of 250 an hour, kept in Redis or (without REDIS_URL) in the process."""
    if request.param == "redis":
        if not settings.REDIS_URL:
            pytest.skip("needs Redis (REDIS_URL)")
        redis_client(settings.REDIS_URL).delete(throttle._HOUR_KEY)
    else:
        settings.REDIS_URL = ""
        monkeypatch.setattr(throttle, "_local_hour", throttle._Hour())
    settings.ISSUE_MESSAGES_PER_HOUR = 250
    settings.ISSUE_MESSAGES_PER_SECOND = 0
    monkeypatch.setattr(services, "hand_to_workers", lambda issue_id: None)
    return request.param


def an_hour_passes(kept_in: str) -> None:
    """Age every batch the cap remembers by an hour (Redis's clock cannot be moved)."""
    if kept_in == "in-process":
        for batch in throttle._local_hour._batches:
            batch[0] -= HOUR
        return
    from django.conf import settings

    client = redis_client(settings.REDIS_URL)
    for member, score in client.zrange(throttle._HOUR_KEY, 0, -1, withscores=True):
        client.zadd(throttle._HOUR_KEY, {member: score - HOUR * 1000})


def test_batches_shrink_to_an_hours_worth(hourly):
    assert transport.batch_size() == 250


def test_an_issue_waits_at_the_cap_and_goes_on_when_the_hour_has_room(hourly):
    newsletter = NewsletterFactory()
    readers(newsletter, 600)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")

    outcome = delivery.send_batches(issue.pk)

    assert len(mail.outbox) == 250
    assert HOUR - 60 < (outcome.wait or 0) <= HOUR
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENDING
    assert issue.paused_until is not None
    assert issue.paused_until > timezone.now() + timedelta(minutes=59)
    assert "hourly cap of 250 messages" in issue.last_error
    # The editor sees why it waits, on the page and in its live progress.
    editor = logged_in(can_send=True)
    progress = editor.get(url("progress", issue)).json()
    assert progress["waiting"] is True
    assert progress["last_error"].startswith("The hourly cap of 250 messages")
    assert b"The hourly cap of 250 messages" in editor.get(url("change", issue)).content
    # A sweep does not take a waiting issue for a lost one.
    assert services.requeue_quiet_issues(now=timezone.now() + timedelta(minutes=30)) == 0

    an_hour_passes(hourly)
    Issue.objects.filter(pk=issue.pk).update(paused_until=None)
    delivery.send_batches(issue.pk)
    assert len(mail.outbox) == 500

    an_hour_passes(hourly)
    Issue.objects.filter(pk=issue.pk).update(paused_until=None)
    delivery.send_batches(issue.pk)
    assert len(mail.outbox) == 600
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT
    sent_to = [m.to[0] for m in mail.outbox]
    assert len(set(sent_to)) == 600


def test_a_batch_that_comes_out_smaller_gives_back_its_room(hourly):
    waited, ticket = throttle.take_hour(250)
    assert waited == 0 and ticket
    assert throttle.take_hour(1)[0] > 0  # the hour is full

    throttle.settle_hour(ticket, 100)  # the provider was handed 100 of them

    assert throttle.take_hour(150)[0] == 0
    assert throttle.take_hour(1)[0] > 0


def test_the_wait_is_until_enough_of_the_oldest_batches_age_out(hourly):
    assert throttle.take_hour(100)[0] == 0
    assert throttle.take_hour(100)[0] == 0

    waited, ticket = throttle.take_hour(100)

    # 50 over: the oldest batch (100) must leave the hour first, about an hour from now.
    assert HOUR - 5 < waited <= HOUR
    assert ticket is None
    assert throttle.take_hour(50)[0] == 0  # what fits still goes


@pytest.mark.postgres
def test_two_workers_together_send_no_more_than_the_cap(hourly, monkeypatch):
    monkeypatch.setattr(transport, "PER_MESSAGE_BATCH", 40)
    newsletter = NewsletterFactory()
    readers(newsletter, 400)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")
    errors = workers_at_once(issue.pk)

    assert not errors
    # 250 fits six batches of 40 (240) and not a seventh; whichever worker sent them.
    assert len(mail.outbox) == 240
    assert IssueDelivery.objects.filter(issue=issue, status="sent").count() == 240
    assert IssueDelivery.objects.filter(issue=issue, status="sending").count() == 0


def test_a_long_wait_is_waited_in_steps_under_the_brokers_redelivery_time(hourly, monkeypatch):
    """A task put off for an hour would be handed out twice by Redis (its visibility
    timeout is an hour): the task comes back at most every LONGEST_TASK_WAIT seconds."""
    from django.conf import settings

    from subscriptions import tasks

    newsletter = NewsletterFactory()
    readers(newsletter, 300)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")
    enqueued: list[dict] = []
    monkeypatch.setattr(
        tasks.send_issue, "apply_async", lambda args, **options: enqueued.append(options)
    )

    tasks.send_issue(issue.pk)  # as a worker runs it

    assert len(mail.outbox) == 250
    assert enqueued == [{"countdown": delivery.LONGEST_TASK_WAIT, "queue": settings.ISSUE_QUEUE}]
    assert (
        settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] > delivery.LONGEST_TASK_WAIT
    )


def test_run_eagerly_a_wait_ends_the_task_instead_of_recursing(hourly):
    from subscriptions import tasks

    newsletter = NewsletterFactory()
    readers(newsletter, 300)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")

    result = tasks.send_issue.apply(args=(issue.pk,))

    assert result.successful(), result.traceback
    assert len(mail.outbox) == 250
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENDING


def test_the_note_goes_once_sending_goes_on(hourly):
    newsletter = NewsletterFactory()
    readers(newsletter, 300)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")
    delivery.send_batches(issue.pk)
    editor = logged_in(can_send=True)
    assert editor.get(url("progress", issue)).json()["note"].startswith("The hourly cap")

    an_hour_passes(hourly)
    Issue.objects.filter(pk=issue.pk).update(paused_until=None)
    delivery.send_batches(issue.pk)

    progress = editor.get(url("progress", issue)).json()
    assert (progress["status"], progress["note"]) == ("sent", "")
    assert b"The hourly cap" not in editor.get(url("change", issue)).content


def test_a_batch_whose_handing_over_broke_off_keeps_its_room(hourly, monkeypatch):
    """The provider may have taken it before the break: it counts, and will count again
    when the batch goes out after its lease, rather than the cap being overshot."""
    newsletter = NewsletterFactory()
    readers(newsletter, 100)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")

    def breaks(*args: object) -> None:
        raise RuntimeError("the worker's database went away after the provider's answer")

    monkeypatch.setattr(transport, "hand_over", breaks)
    with pytest.raises(RuntimeError):
        delivery.send_batches(issue.pk)

    assert throttle.take_hour(1)[0] > 0  # the batch's 250 of room are still taken
