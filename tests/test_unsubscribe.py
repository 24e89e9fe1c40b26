"""Leaving is one click from any email (RFC 8058), and the preferences page toggles each
newsletter. Unsubscribe links never expire and survive a SECRET_KEY rotation."""

from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from subscriptions.models import Subscription, SubscriptionEvent
from subscriptions.signup import deferred_unsubscribes
from subscriptions.tokens import confirmation_token, preferences_token, unsubscribe_token
from tests.factories import NewsletterFactory, SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def active():
    return SubscriptionFactory(status=Subscription.Status.ACTIVE)


def unsubscribe_path(subscription):
    return reverse(
        "subscriptions:unsubscribe", args=[unsubscribe_token.make_token(subscription.pk)]
    )


def test_one_click_post_unsubscribes_without_cookies_or_csrf_and_answers_200(active):
    client = Client(enforce_csrf_checks=True)

    response = client.post(
        unsubscribe_path(active),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 200
    active.refresh_from_db()
    assert active.status == Subscription.Status.UNSUBSCRIBED
    assert active.unsubscribed_at is not None
    event = SubscriptionEvent.objects.get(kind=SubscriptionEvent.Kind.UNSUBSCRIBED)
    assert event.detail == {"via": "one-click"}
    assert not response.cookies


def test_get_on_the_unsubscribe_link_changes_nothing(client, active):
    response = client.get(unsubscribe_path(active))

    assert response.status_code == 200
    assert b"Unsubscribe" in response.content
    active.refresh_from_db()
    assert active.status == Subscription.Status.ACTIVE


def test_the_button_on_the_page_unsubscribes(client, active):
    response = client.post(unsubscribe_path(active))

    assert response.status_code == 200
    active.refresh_from_db()
    assert active.status == Subscription.Status.UNSUBSCRIBED


def test_unsubscribing_twice_is_harmless(client, active):
    client.post(unsubscribe_path(active))
    response = client.post(unsubscribe_path(active))

    assert response.status_code == 200
    assert SubscriptionEvent.objects.filter(kind="unsubscribed").count() == 1


def test_unsubscribing_keeps_a_bounced_status(client):
    bounced = SubscriptionFactory(status=Subscription.Status.BOUNCED)

    client.post(unsubscribe_path(bounced))

    bounced.refresh_from_db()
    assert bounced.status == Subscription.Status.BOUNCED


@pytest.mark.parametrize(
    "token",
    [
        lambda s: unsubscribe_token.make_token(s.pk) + "x",
        lambda s: confirmation_token.make_token([s.pk]),
        lambda s: preferences_token.make_token(s.subscriber_id),
        lambda s: "nonsense",
    ],
    ids=["tampered", "confirm-token", "preferences-token", "garbage"],
)
def test_bad_unsubscribe_tokens_change_nothing(client, active, token):
    response = client.post(reverse("subscriptions:unsubscribe", args=[token(active)]))

    assert response.status_code == 400
    active.refresh_from_db()
    assert active.status == Subscription.Status.ACTIVE


def test_unsubscribe_links_survive_a_secret_key_rotation(client, active, settings):
    path = unsubscribe_path(active)
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-secret-key-after-rotation"
    settings.SECRET_KEY_FALLBACKS = [old_key]

    client.post(path)

    active.refresh_from_db()
    assert active.status == Subscription.Status.UNSUBSCRIBED


def test_unsubscribe_links_die_when_the_old_key_is_dropped(client, active, settings):
    path = unsubscribe_path(active)
    settings.SECRET_KEY = "a-brand-new-secret-key-after-rotation"
    settings.SECRET_KEY_FALLBACKS = []

    assert client.post(path).status_code == 400


def test_the_preferences_page_toggles_each_newsletter(client, django_capture_on_commit_callbacks):
    subscriber = SubscriberFactory()
    kept = SubscriptionFactory(subscriber=subscriber, status=Subscription.Status.ACTIVE)
    dropped = SubscriptionFactory(subscriber=subscriber, status=Subscription.Status.ACTIVE)
    added = NewsletterFactory()
    path = reverse("subscriptions:preferences", args=[preferences_token.make_token(subscriber.pk)])

    page = client.get(path)
    assert page.status_code == 200
    assert added.name.encode() in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(path, {"newsletters": [kept.newsletter_id, added.pk]})

    assert response.status_code == 200
    statuses = dict(subscriber.subscriptions.values_list("newsletter_id", "status"))
    assert statuses == {
        kept.newsletter_id: "active",
        dropped.newsletter_id: "unsubscribed",
        added.pk: "active",
    }
    assert [m.metadata["message_type"] for m in mail.outbox] == ["welcome"]


def test_the_preferences_page_refuses_a_newsletter_it_did_not_offer(client):
    subscriber = SubscriberFactory()
    private = NewsletterFactory(is_public=False)
    path = reverse("subscriptions:preferences", args=[preferences_token.make_token(subscriber.pk)])

    client.post(path, {"newsletters": [private.pk]})

    assert not subscriber.subscriptions.exists()


def test_the_preferences_page_refuses_a_bad_token(client):
    subscriber = SubscriberFactory()
    token = unsubscribe_token.make_token(subscriber.pk)

    assert client.get(reverse("subscriptions:preferences", args=[token])).status_code == 400


# --- kept in Redis while the database was down (tests/test_database_outage.py) ----------


@pytest.fixture
def kept_in(settings, spare_redis):
    """The Redis that keeps unsubscribes: a server of the test's own."""
    settings.REDIS_URL = spare_redis.url
    return spare_redis


def test_a_kept_unsubscribe_is_applied_once_and_then_forgotten(kept_in, active):
    assert deferred_unsubscribes.record(subscription_id=active.pk, via="one-click")
    assert deferred_unsubscribes.record(subscription_id=active.pk, via="page")  # kept once

    assert deferred_unsubscribes.apply_recorded() == 1
    assert deferred_unsubscribes.apply_recorded() == 0

    active.refresh_from_db()
    assert active.status == Subscription.Status.UNSUBSCRIBED
    event = SubscriptionEvent.objects.get(kind=SubscriptionEvent.Kind.UNSUBSCRIBED)
    assert (event.actor, event.detail) == ("reader", {"via": "one-click"})


def test_a_kept_unsubscribe_does_not_undo_a_sign_up_made_after_it(kept_in, active):
    asked_at = timezone.now() - timedelta(minutes=5)
    deferred_unsubscribes.record(subscription_id=active.pk, via="one-click", now=asked_at)
    Subscription.objects.filter(pk=active.pk).update(confirmed_at=timezone.now())

    assert deferred_unsubscribes.apply_recorded() == 1

    active.refresh_from_db()
    assert active.status == Subscription.Status.ACTIVE


def test_a_kept_unsubscribe_of_a_subscription_gone_since_is_dropped(kept_in, active):
    deferred_unsubscribes.record(subscription_id=active.pk, via="one-click")
    active.subscriber.delete()

    assert deferred_unsubscribes.apply_recorded() == 1
    assert deferred_unsubscribes.apply_recorded() == 0


def test_without_redis_nothing_can_be_kept(settings, active):
    settings.REDIS_URL = ""

    assert not deferred_unsubscribes.record(subscription_id=active.pk, via="one-click")


def test_with_redis_down_nothing_is_kept(kept_in, active):
    kept_in.stop()

    assert not deferred_unsubscribes.record(subscription_id=active.pk, via="one-click")


def test_the_beat_schedule_applies_the_kept_unsubscribes(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["apply-deferred-unsubscribes"]

    assert entry["task"] == "subscriptions.tasks.apply_deferred_unsubscribes"
    assert entry["schedule"] == settings.OUTBOX_SWEEP_INTERVAL
