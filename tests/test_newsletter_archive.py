"""A newsletter an editor archives disappears for readers (home page, list, its page,
the embeds, the preferences page, the API) and takes no sign-ups, while every
subscription, proof of consent and event stays; an old unsubscribe link still works,
and unarchiving brings the newsletter back as it was."""

import json

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from subscriptions.models import (
    ConsentRecord,
    Newsletter,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.tokens import preferences_token, unsubscribe_token
from tests.factories import NewsletterFactory, SubscriberFactory, human_form_token, with_form_token

pytestmark = pytest.mark.django_db

Status = Subscription.Status
NEWSLETTERS = reverse("admin:subscriptions_newsletter_changelist")
API = "/api/v1/subscriptions"


def run_newsletter_action(admin_client: Client, action: str, *newsletters: Newsletter):
    response = admin_client.post(
        NEWSLETTERS,
        {"action": action, "_selected_action": [n.pk for n in newsletters], "index": "0"},
    )
    assert response.status_code == 302
    return response


def archive(admin_client: Client, *newsletters: Newsletter) -> None:
    run_newsletter_action(admin_client, "archive_newsletters", *newsletters)


def unarchive(admin_client: Client, *newsletters: Newsletter) -> None:
    run_newsletter_action(admin_client, "unarchive_newsletters", *newsletters)


@pytest.fixture
def digest() -> Newsletter:
    return NewsletterFactory(slug="daily-digest", name="Daily Digest", position=0)


@pytest.fixture
def weekly() -> Newsletter:
    return NewsletterFactory(slug="weekly-letter", name="Weekly Letter", position=1)


def api_sign_up(email: str, *slugs: str):
    return Client().post(
        API,
        json.dumps(with_form_token({"email": email, "newsletters": list(slugs)})),
        content_type="application/json",
    )


def stored() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Subscriber, Subscription, ConsentRecord, SubscriptionEvent, OutboundEmail)
    }


def test_an_archived_newsletter_leaves_the_home_page_and_the_list(
    admin_client, client, digest, weekly
) -> None:
    for url in ("/", reverse("subscriptions:newsletter_list")):
        assert "Daily Digest" in client.get(url).content.decode()

    archive(admin_client, digest)

    for url in ("/", reverse("subscriptions:newsletter_list")):
        page = client.get(url).content.decode()
        assert "Daily Digest" not in page
        assert "daily-digest" not in page
        assert "Weekly Letter" in page


def test_an_archived_newsletters_page_is_not_found(admin_client, client, digest) -> None:
    url = reverse("subscriptions:newsletter_detail", args=["daily-digest"])
    assert client.get(url).status_code == 200

    archive(admin_client, digest)

    assert client.get(url).status_code == 404


def test_the_api_refuses_an_archived_newsletter_by_name_and_stores_nothing(
    admin_client, digest, weekly
) -> None:
    archive(admin_client, digest)
    before = stored()

    response = api_sign_up("ann@example.org", "weekly-letter", "daily-digest")

    assert response.status_code == 400
    assert response.json() == {"errors": {"newsletters": ["Unknown newsletter: daily-digest"]}}
    assert stored() == before


def test_the_form_refuses_an_archived_newsletter_by_name_and_stores_nothing(
    admin_client, client, digest
) -> None:
    archive(admin_client, digest)
    before = stored()

    response = client.post(
        reverse("subscriptions:signup"),
        {
            "email": "ann@example.org",
            "newsletters": "daily-digest",
            "form_token": human_form_token(),
        },
    )

    assert response.status_code == 400
    assert "Unknown newsletter: daily-digest" in response.content.decode()
    assert stored() == before


def test_the_embeds_no_longer_offer_an_archived_newsletter(
    admin_client, client, digest, weekly
) -> None:
    fragment = "/embed/signup/?newsletters=daily-digest"
    assert client.get(fragment).status_code == 200

    archive(admin_client, digest)

    assert client.get(fragment).status_code == 404
    both = client.get("/embed/signup/?newsletters=daily-digest&newsletters=weekly-letter")
    assert both.status_code == 200
    assert 'value="daily-digest"' not in both.content.decode()
    embeds_page = admin_client.get(reverse("admin:subscriptions_embeds")).content.decode()
    assert "weekly-letter" in embeds_page
    assert "daily-digest" not in embeds_page


def test_the_preferences_page_stops_offering_an_archived_newsletter_and_leaves_it_alone(
    admin_client, client, digest, weekly
) -> None:
    subscriber = SubscriberFactory(email="ann@example.org")
    for newsletter in (digest, weekly):
        Subscription.objects.create(
            subscriber=subscriber, newsletter=newsletter, status=Status.ACTIVE
        )
    path = reverse("subscriptions:preferences", args=[preferences_token.make_token(subscriber.pk)])
    assert "Daily Digest" in client.get(path).content.decode()

    archive(admin_client, digest)
    page = client.get(path).content.decode()
    # Saving with the archived newsletter's id forged in changes nothing about it.
    client.post(path, {"newsletters": [digest.pk]})

    assert "Daily Digest" not in page
    assert f'value="{digest.pk}"' not in page
    assert "Weekly Letter" in page
    statuses = dict(subscriber.subscriptions.values_list("newsletter__slug", "status"))
    assert statuses == {"daily-digest": Status.ACTIVE, "weekly-letter": Status.ACTIVE}


def test_an_old_unsubscribe_link_still_works_for_an_archived_newsletter(
    admin_client, client, digest
) -> None:
    subscription = Subscription.objects.create(
        subscriber=SubscriberFactory(), newsletter=digest, status=Status.ACTIVE
    )
    archive(admin_client, digest)
    path = reverse(
        "subscriptions:unsubscribe", args=[unsubscribe_token.make_token(subscription.pk)]
    )

    assert client.get(path).status_code == 200
    response = client.post(path, {"List-Unsubscribe": "One-Click"})

    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.status == Status.UNSUBSCRIBED


def test_archiving_keeps_every_subscription_consent_record_and_event(admin_client, digest) -> None:
    assert api_sign_up("ann@example.org", "daily-digest").status_code == 202
    assert api_sign_up("bob@example.org", "daily-digest").status_code == 202
    Subscription.objects.filter(subscriber__email="bob@example.org").update(status=Status.ACTIVE)
    before = stored()
    statuses = dict(Subscription.objects.values_list("subscriber__email", "status"))

    archive(admin_client, digest)

    assert stored() == before
    assert dict(Subscription.objects.values_list("subscriber__email", "status")) == statuses
    assert ConsentRecord.objects.filter(subscription__newsletter=digest).count() == 2
    digest.refresh_from_db()
    assert digest.archived_at is not None


def test_unarchiving_brings_it_back_to_readers_and_sign_ups(admin_client, client, digest) -> None:
    archive(admin_client, digest)
    assert api_sign_up("ann@example.org", "daily-digest").status_code == 400

    response = run_newsletter_action(admin_client, "unarchive_newsletters", digest)

    assert "Daily Digest" in client.get("/").content.decode()
    detail = reverse("subscriptions:newsletter_detail", args=["daily-digest"])
    assert client.get(detail).status_code == 200
    assert client.get("/embed/signup/?newsletters=daily-digest").status_code == 200
    assert api_sign_up("ann@example.org", "daily-digest").status_code == 202
    digest.refresh_from_db()
    assert digest.archived_at is None
    assert [str(m) for m in get_messages(response.wsgi_request)][-1] == (
        "Unarchived 1 newsletter: Daily Digest. It is back as before, subscribers and all."
    )
