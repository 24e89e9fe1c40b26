"""Deleting a newsletter must never delete the proof of consent: a newsletter anyone
ever subscribed to cannot be deleted (the ORM raises ProtectedError, the admin says why
and points to archiving), while one nobody subscribed to still can, with its snapshots."""

import datetime

import pytest
from django.db import connection
from django.db.models import ProtectedError
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from subscriptions.models import (
    ConsentRecord,
    Newsletter,
    NewsletterSnapshot,
    Subscription,
    SubscriptionEvent,
)
from tests.factories import NewsletterFactory, with_form_token

pytestmark = pytest.mark.django_db

NEWSLETTERS = reverse("admin:subscriptions_newsletter_changelist")


@pytest.fixture
def digest() -> Newsletter:
    return NewsletterFactory(slug="daily-digest", name="Daily Digest")


@pytest.fixture
def with_readers(client, digest) -> Newsletter:
    """Three sign-ups through the API, so each has its consent record and events."""
    for n in range(3):
        response = client.post(
            "/api/v1/subscriptions",
            with_form_token({"email": f"reader{n}@example.org", "newsletters": ["daily-digest"]}),
            content_type="application/json",
        )
        assert response.status_code == 202
    return digest


def history() -> list[int]:
    return [model.objects.count() for model in (Subscription, ConsentRecord, SubscriptionEvent)]


def test_deleting_a_newsletter_with_subscriptions_raises_and_keeps_the_consent(
    with_readers,
) -> None:
    before = history()
    assert before[:2] == [3, 3]

    with pytest.raises(ProtectedError):
        with_readers.delete()

    assert Newsletter.objects.filter(pk=with_readers.pk).exists()
    assert history() == before


def test_the_admin_refuses_to_delete_a_newsletter_with_subscriptions_and_says_why(
    admin_client, with_readers
) -> None:
    before = history()
    url = reverse("admin:subscriptions_newsletter_delete", args=[with_readers.pk])

    page = admin_client.get(url)
    confirmed = admin_client.post(url, {"post": "yes"})

    assert page.status_code == 200
    text = page.content.decode()
    assert "would require deleting the following protected related objects" in text
    assert "3 subscriptions, with their proof of consent and event log" in text
    assert "Archive the newsletter instead" in text
    assert confirmed.status_code == 200
    assert Newsletter.objects.filter(pk=with_readers.pk).exists()
    assert history() == before


def test_the_admin_delete_action_refuses_too(admin_client, with_readers) -> None:
    empty = NewsletterFactory(slug="never-used")
    before = history()

    response = admin_client.post(
        NEWSLETTERS,
        {
            "action": "delete_selected",
            "_selected_action": [with_readers.pk, empty.pk],
            "post": "yes",
            "index": "0",
        },
    )

    assert response.status_code == 200
    assert "3 subscriptions, with their proof of consent" in response.content.decode()
    assert Newsletter.objects.filter(pk__in=[with_readers.pk, empty.pk]).count() == 2
    assert history() == before


def test_the_delete_page_counts_the_subscriptions_instead_of_walking_through_them(
    admin_client, with_readers
) -> None:
    url = reverse("admin:subscriptions_newsletter_delete", args=[with_readers.pk])

    # A million subscribers would otherwise be loaded, with their consent records and
    # events, to be listed one by one.
    with CaptureQueriesContext(connection) as captured:
        page = admin_client.get(url).content.decode()

    read = " ".join(query["sql"] for query in captured.captured_queries)
    assert "subscriptions_consentrecord" not in read
    assert "subscriptions_subscriptionevent" not in read
    assert "reader0@example.org" not in page


def test_a_newsletter_nobody_subscribed_to_can_still_be_deleted_with_its_snapshots(
    admin_client, digest
) -> None:
    NewsletterSnapshot.objects.create(
        newsletter=digest, day=datetime.date(2026, 1, 1), taken_at=timezone.now()
    )
    url = reverse("admin:subscriptions_newsletter_delete", args=[digest.pk])

    assert "protected" not in admin_client.get(url).content.decode()
    response = admin_client.post(url, {"post": "yes"})

    assert response.status_code == 302
    assert not Newsletter.objects.filter(pk=digest.pk).exists()
    assert not NewsletterSnapshot.objects.exists()
