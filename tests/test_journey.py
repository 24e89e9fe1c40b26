"""The reader's whole journey through the pages, the way a newcomer walks it: find a
newsletter, sign up without JavaScript, confirm from the email, leave from the welcome
email, and come back through the preferences page."""

import re

import pytest
from django.core import mail
from django.test import Client

from subscriptions.models import Subscription, SubscriptionEvent
from tests.factories import NewsletterFactory, human_form_token

pytestmark = pytest.mark.django_db

ORIGIN = "https://news.example.org"


def links_in(message) -> list[str]:
    return [url.removeprefix(ORIGIN) for url in re.findall(rf"{ORIGIN}/\S+/", message.body)]


def test_a_reader_signs_up_confirms_unsubscribes_and_resubscribes(
    django_capture_on_commit_callbacks,
):
    newsletter = NewsletterFactory(
        name="Explaining Ukraine", host_line="Explaining Ukraine with Kate Tsurkan"
    )
    reader = Client()

    home = reader.get("/")
    assert home.status_code == 200
    assert "Explaining Ukraine with Kate Tsurkan" in home.content.decode()
    assert "* indicates required" in home.content.decode()
    listing = reader.get("/newsletters/")
    assert newsletter.name in listing.content.decode()
    assert reader.get(f"/newsletters/{newsletter.slug}/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = reader.post(
            "/subscribe/",
            {
                "email": "kate.reader@example.org",
                "newsletters": newsletter.slug,
                "form_token": human_form_token(),
            },
            follow=True,
        )
    assert "We&#x27;ve sent you a confirmation email." in response.content.decode()

    (confirmation,) = mail.outbox
    (confirm_link,) = links_in(confirmation)
    assert "Confirm" in reader.get(confirm_link).content.decode()
    assert Subscription.objects.get().status == Subscription.Status.PENDING
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = reader.post(confirm_link)
    assert confirmed.status_code == 200
    assert Subscription.objects.get().status == Subscription.Status.ACTIVE

    welcome = mail.outbox[1]
    unsubscribe_link, preferences_link = links_in(welcome)[-2:]
    assert "/unsubscribe/" in unsubscribe_link
    assert "/preferences/" in preferences_link
    left = reader.post(unsubscribe_link)
    assert left.status_code == 200
    assert newsletter.name in left.content.decode()
    assert Subscription.objects.get().status == Subscription.Status.UNSUBSCRIBED

    with django_capture_on_commit_callbacks(execute=True):
        reader.post(preferences_link, {"newsletters": [newsletter.pk]})
    assert Subscription.objects.get().status == Subscription.Status.ACTIVE

    kinds = list(SubscriptionEvent.objects.order_by("at", "pk").values_list("kind", flat=True))
    assert kinds == [
        "subscribed",
        "confirmation_queued",
        "confirmed",
        "unsubscribed",
        "activated",
    ]


def test_unknown_newsletter_pages_answer_404(client):
    assert client.get("/newsletters/no-such-thing/").status_code == 404


def test_private_newsletters_are_not_listed(client):
    private = NewsletterFactory(is_public=False, name="Staff Bulletin")

    assert private.name not in client.get("/newsletters/").content.decode()
    assert client.get(f"/newsletters/{private.slug}/").status_code == 404


def test_unknown_addresses_get_the_sites_own_404_page(client):
    response = client.get("/no/such/page/")

    assert response.status_code == 404
    assert "find that page" in response.content.decode()
