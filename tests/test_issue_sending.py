"""An issue reaches every active reader of its newsletter once, and no one else: not a
reader who left, bounced or was suppressed before their batch, not a later sign-up.
Each copy carries its reader's own one-click unsubscribe, which ends that newsletter
only and counts against the issue."""

import json
import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from subscriptions.issues import copies, delivery, selectors, services, transport
from subscriptions.models import (
    Issue,
    IssueDelivery,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from subscriptions.tokens import unsubscribe_token
from tests.factories import NewsletterFactory, SubscriptionFactory
from tests.issue_support import draft, readers, workers_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def send(issue: Issue) -> Issue:
    """Press Send; the workers (eager here) send every batch."""
    services.send_now(issue_id=issue.pk, actor="admin:ann")
    issue.refresh_from_db()
    return issue


def recipients() -> list[str]:
    return [address for message in mail.outbox for address in message.to]


def test_an_issue_reaches_exactly_the_active_readers_once_each(monkeypatch):
    newsletter = NewsletterFactory(name="Explaining Ukraine", slug="explaining-ukraine")
    active = readers(newsletter, 1995)
    readers(newsletter, 5, status="unsubscribed", prefix="gone")
    readers(newsletter, 3, status="pending", prefix="unconfirmed")
    other = NewsletterFactory(slug="daily-digest")
    readers(other, 4, prefix="digest-only")
    suppressed = active[10].subscriber
    SuppressedAddress.objects.create(
        email=suppressed.email, reason="hard_bounce", created_at=timezone.now()
    )
    bounced_late = active[-1]
    monkeypatch.setattr(transport, "PER_MESSAGE_BATCH", 400)
    batches = []
    record = delivery._record

    def record_then_bounce(sent, refused):
        record(sent, refused)
        batches.append(len(sent))
        if len(batches) == 1:
            # The provider reported a bounce while the first batch went out.
            Subscription.objects.filter(pk=bounced_late.pk).update(status="bounced")

    monkeypatch.setattr(delivery, "_record", record_then_bounce)
    issue = draft(newsletter)

    issue = send(issue)

    expected = {s.subscriber.email for s in active} - {
        suppressed.email,
        bounced_late.subscriber.email,
    }
    assert sorted(recipients()) == sorted(expected)  # each once
    assert len(batches) == 5
    assert issue.status == Issue.Status.SENT
    assert issue.audience == 1995
    progress = selectors.progress(issue.pk)
    assert (progress.sent, progress.skipped, progress.left, progress.failed) == (1993, 2, 0, 0)
    assert set(
        IssueDelivery.objects.filter(issue=issue, status="skipped").values_list("error", flat=True)
    ) == {"suppressed", "bounced"}


def test_each_copy_carries_its_readers_own_one_click_unsubscribe_for_that_newsletter_only():
    newsletter = NewsletterFactory(slug="explaining-ukraine")
    first, second = readers(newsletter, 2)
    digest = SubscriptionFactory(
        subscriber=first.subscriber, newsletter=NewsletterFactory(slug="digest"), status="active"
    )
    issue = send(draft(newsletter))

    by_reader = {message.to[0]: message for message in mail.outbox}
    message = by_reader[first.subscriber.email]
    header = message.extra_headers["List-Unsubscribe"]
    url = re.match(r"<([^>]+)>", header).group(1)
    token = urlsplit(url).path.rstrip("/").split("/")[-1]
    assert unsubscribe_token.read_token(token) == first.pk
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.extra_headers["List-Id"].endswith("<explaining-ukraine.news.example.org>")
    assert message.metadata == {
        "message_type": "issue",
        "issue_id": str(issue.pk),
        "subscriber_id": str(first.subscriber_id),
        "subscription_ids": str(first.pk),
    }
    html = message.alternatives[0][0]
    assert url.replace("&", "&amp;") in html and url in message.body  # the visible link
    assert by_reader[second.subscriber.email].extra_headers["List-Unsubscribe"] != header

    parts = urlsplit(url)
    response = Client(enforce_csrf_checks=True).post(
        f"{parts.path}?{parts.query}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200, url
    first.refresh_from_db()
    digest.refresh_from_db()
    assert first.status == "unsubscribed"
    assert digest.status == "active"
    event = SubscriptionEvent.objects.get(kind="unsubscribed")
    assert event.detail == {"via": "one-click", "issue": issue.pk}
    assert selectors.report(issue.pk).unsubscribed == 1


def test_a_reader_who_signs_up_after_sending_started_does_not_get_it(monkeypatch):
    newsletter = NewsletterFactory()
    readers(newsletter, 30)
    monkeypatch.setattr(transport, "PER_MESSAGE_BATCH", 10)
    record = delivery._record
    late = []

    def record_then_sign_up(sent, refused):
        record(sent, refused)
        if not late:
            late.append(SubscriptionFactory(newsletter=newsletter, status="active"))

    monkeypatch.setattr(delivery, "_record", record_then_sign_up)

    issue = send(draft(newsletter))

    assert len(mail.outbox) == 30
    assert late[0].subscriber.email not in recipients()
    assert issue.audience == 30


def test_the_html_part_is_sanitised_and_inlined_and_the_text_part_is_plain():
    newsletter = NewsletterFactory()
    readers(newsletter, 1)
    body = (
        "# Today\n\nA [safe link](https://example.org/a) and a "
        "[bad one](javascript:alert(1)).\n\n<script>alert('x')</script>\n\n"
        '<a href="javascript:alert(2)" onclick="steal()">click</a>'
    )
    send(draft(newsletter, body=body, preheader="The short version"))

    message = mail.outbox[0]
    html = message.alternatives[0][0]
    assert "<script" not in html and 'href="javascript' not in html and "onclick" not in html
    assert 'href="https://example.org/a"' in html
    assert re.search(r'<p style="[^"]*margin', html)  # the template's CSS, inlined
    assert "The short version" in html
    assert "<" not in message.body.split("--")[0].replace("<https", "")
    assert "safe link" in message.body


def test_a_ukrainian_reader_gets_the_ukrainian_version_and_others_the_default():
    newsletter = NewsletterFactory()
    english, ukrainian = readers(newsletter, 2)
    ukrainian.subscriber.language = "uk"
    ukrainian.subscriber.save(update_fields=["language"])
    issue = draft(newsletter, subject="Thursday", body="In English.")
    Issue.objects.filter(pk=issue.pk).update(subject_uk="Четвер", body_uk="Українською.")

    send(issue)

    by_reader = {message.to[0]: message for message in mail.outbox}
    assert by_reader[ukrainian.subscriber.email].subject == "Четвер"
    assert "Українською." in by_reader[ukrainian.subscriber.email].body
    assert "lang=uk" in by_reader[ukrainian.subscriber.email].extra_headers["List-Unsubscribe"]
    assert by_reader[english.subscriber.email].subject == "Thursday"


def test_a_batch_whose_worker_died_is_sent_again_after_its_lease_and_counted(monkeypatch):
    newsletter = NewsletterFactory()
    readers(newsletter, 25)
    monkeypatch.setattr(transport, "PER_MESSAGE_BATCH", 10)
    issue = draft(newsletter)
    monkeypatch.setattr(services, "hand_to_workers", lambda issue_id: None)
    services.send_now(issue_id=issue.pk, actor="test")
    issue.refresh_from_db()
    # A worker claims a batch, hands it to the provider, and dies before recording it.
    claimed = delivery.claim_batch(issue, now=timezone.now())
    for reader in claimed:
        copies.message_for(issue, reader, copies.Editions(issue).of("")).send()
    assert len(mail.outbox) == 10
    # Until the lease runs out, no one else takes that batch.
    delivery.send_batches(issue.pk)
    assert len(mail.outbox) == 25
    assert IssueDelivery.objects.filter(issue=issue, status="sending").count() == 10

    later = timezone.now() + timezone.timedelta(seconds=delivery.LEASE_SECONDS + 1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    delivery.send_batches(issue.pk)

    assert len(mail.outbox) == 35  # that one batch twice, no one skipped
    assert len(set(recipients())) == 25
    progress = selectors.progress(issue.pk)
    assert (progress.sent, progress.sent_more_than_once, progress.left) == (25, 10, 0)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT


@pytest.mark.postgres
def test_two_workers_share_an_issue_without_sending_a_copy_twice(monkeypatch):

    newsletter = NewsletterFactory()
    readers(newsletter, 600)
    monkeypatch.setattr(transport, "PER_MESSAGE_BATCH", 50)
    issue = draft(newsletter)
    monkeypatch.setattr(services, "hand_to_workers", lambda issue_id: None)
    services.send_now(issue_id=issue.pk, actor="test")
    errors = workers_at_once(issue.pk)

    assert not errors
    assert len(mail.outbox) == 600
    assert len(set(recipients())) == 600
    assert selectors.progress(issue.pk).sent_more_than_once == 0


@pytest.mark.parametrize("language", ["", "uk"])
def test_a_readers_links_are_exactly_what_reverse_makes(language):
    from django.utils import translation

    from subscriptions import languages
    from subscriptions.mail import messages
    from subscriptions.tokens import preferences_token

    newsletter = NewsletterFactory()
    (subscription,) = readers(newsletter, 1)
    issue = draft(newsletter)
    reader = copies.Reader(
        1, subscription.subscriber_id, "a@example.org", language, subscription.pk
    )

    made = copies.links(issue, reader)

    with translation.override(languages.of_subscriber(language)):
        unsubscribe = messages.reader_url(
            "subscriptions:unsubscribe", unsubscribe_token.make_token(subscription.pk)
        )
        preferences = messages.reader_url(
            "subscriptions:preferences", preferences_token.make_token(subscription.subscriber_id)
        )

    # Tokens carry the second they were signed in; the rest must be the same.
    def without_token(url: str) -> str:
        return re.sub(r"/[^/?]+/\?", "/TOKEN/?", url)

    assert without_token(made.unsubscribe) == without_token(f"{unsubscribe}&issue={issue.pk}")
    assert without_token(made.preferences) == without_token(preferences)
    assert unsubscribe_token.read_token(urlsplit(made.unsubscribe).path.split("/")[-2]) == (
        subscription.pk
    )


def test_a_batch_whose_readers_all_left_does_not_stop_the_issue(monkeypatch):
    newsletter = NewsletterFactory()
    people = readers(newsletter, 30)
    monkeypatch.setattr(transport, "PER_MESSAGE_BATCH", 10)
    issue = draft(newsletter)
    monkeypatch.setattr(services, "hand_to_workers", lambda issue_id: None)
    services.send_now(issue_id=issue.pk, actor="test")
    Subscription.objects.filter(pk__in=[p.pk for p in people[:10]]).update(status="unsubscribed")

    delivery.send_batches(issue.pk)  # one task's run, no sweep after it

    assert len(mail.outbox) == 20
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT


@pytest.mark.redis
def test_an_issues_tasks_go_to_the_issues_queue_not_the_default_one(settings):
    """So a worker of its own takes them (docker-compose.yml's sender), and the worker
    that sends confirmation emails never waits behind a million-reader issue."""
    from newsroom.celery import app as celery_app

    settings.ISSUE_QUEUE = "tests-issues-queue"
    issue = draft(NewsletterFactory())
    celery_app.conf.task_always_eager = False
    with celery_app.connection_for_write() as connection:
        client = connection.default_channel.client
        client.delete(settings.ISSUE_QUEUE)
        default_before = client.llen(celery_app.conf.task_default_queue)

        services.hand_to_workers(issue.pk)

        queued = [json.loads(m) for m in client.lrange(settings.ISSUE_QUEUE, 0, -1)]
        default_after = client.llen(celery_app.conf.task_default_queue)
        client.delete(settings.ISSUE_QUEUE)
    assert [m["headers"]["task"] for m in queued] == ["subscriptions.tasks.send_issue"] * 2
    assert [m["headers"]["argsrepr"] for m in queued] == [f"({issue.pk},)"] * 2
    assert default_after == default_before
