"""A public newsletter's sent issues are public pages and an Atom feed; nothing of any
reader is in them, and a private newsletter has neither."""

import feedparser
import pytest
from django.core import mail
from django.urls import reverse

from subscriptions.issues import services
from subscriptions.models import DeliveryEvent, Issue
from tests.factories import NewsletterFactory
from tests.issue_support import draft, readers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sent_issue():
    newsletter = NewsletterFactory(name="Explaining Ukraine", slug="explaining-ukraine")
    readers(newsletter, 3)
    issue = draft(newsletter, subject="Thursday's letter", body="The **front line**, explained.")
    services.send_now(issue_id=issue.pk, actor="t")
    issue.refresh_from_db()
    return issue


def test_the_archive_lists_sent_issues_and_not_drafts(client, sent_issue):
    draft(sent_issue.newsletter, subject="Not yet written")

    response = client.get(reverse("subscriptions:issue_archive", args=["explaining-ukraine"]))

    assert response.status_code == 200
    assert b"Thursday&#x27;s letter" in response.content
    assert b"Not yet written" not in response.content


def test_an_issue_page_shows_the_body_and_nothing_of_any_reader(client, sent_issue):
    response = client.get(
        reverse("subscriptions:issue", args=["explaining-ukraine", sent_issue.pk])
    )

    content = response.content.decode()
    assert response.status_code == 200
    assert "<strong>front line</strong>" in content
    assert "/unsubscribe/" not in content and "/preferences/" not in content
    assert "@example.org" not in content


def test_the_view_in_browser_link_in_each_copy_opens_the_issue_page(client, sent_issue):
    link = reverse("subscriptions:issue", args=["explaining-ukraine", sent_issue.pk])

    assert f"https://news.example.org{link}" in mail.outbox[0].body
    assert client.get(link).status_code == 200


def test_the_feed_is_valid_atom_that_a_feed_reader_parses(client, sent_issue):
    response = client.get(reverse("subscriptions:issue_feed", args=["explaining-ukraine"]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/atom+xml")
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.feed.title == "Explaining Ukraine"
    assert [entry.title for entry in feed.entries] == ["Thursday's letter"]
    assert feed.entries[0].link.endswith(
        f"/newsletters/explaining-ukraine/archive/{sent_issue.pk}/"
    )
    assert "front line" in feed.entries[0].summary


def test_a_private_newsletter_has_no_archive_page_or_feed(client):
    private = NewsletterFactory(slug="editors-only", is_public=False)
    readers(private, 1)
    issue = draft(private)
    services.send_now(issue_id=issue.pk, actor="t")

    assert (
        client.get(reverse("subscriptions:issue_archive", args=["editors-only"])).status_code == 404
    )
    assert (
        client.get(reverse("subscriptions:issue", args=["editors-only", issue.pk])).status_code
        == 404
    )
    assert client.get(reverse("subscriptions:issue_feed", args=["editors-only"])).status_code == 404
    assert "View in your browser" not in mail.outbox[0].body


def test_an_unsent_or_unknown_issue_is_not_found(client, sent_issue):
    unsent = draft(sent_issue.newsletter)

    assert (
        client.get(
            reverse("subscriptions:issue", args=["explaining-ukraine", unsent.pk])
        ).status_code
        == 404
    )
    assert (
        client.get(reverse("subscriptions:issue", args=["explaining-ukraine", 99999])).status_code
        == 404
    )


def test_tracking_events_count_toward_the_issue_they_came_from(sent_issue):
    from subscriptions.deliverability.delivery_events import record_delivery_event
    from subscriptions.issues import selectors

    copy = mail.outbox[0]
    for n, kind in enumerate(["delivered", "delivered", "hard_bounce", "complained"]):
        record_delivery_event(
            esp="postmark",
            kind=kind,
            event_id=f"event-{n}",
            recipient=copy.to[0],
            occurred_at=None,
            message_id=None,
            metadata=copy.metadata,
        )

    report = selectors.report(sent_issue.pk)
    assert (report.delivered, report.bounced, report.complained) == (2, 1, 1)
    assert DeliveryEvent.objects.filter(issue=sent_issue).count() == 4
    assert Issue.objects.get(pk=sent_issue.pk).status == Issue.Status.SENT
