"""A reader signs up from the form or the JSON API and is told the same thing whatever
state their address was in."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from subscriptions.models import (
    ConsentRecord,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.web.views import SUCCESS_MESSAGE
from tests.factories import NewsletterFactory, human_form_token, with_form_token

pytestmark = pytest.mark.django_db

API = "/api/v1/subscriptions"


def post_api(client, payload, **extra):
    return client.post(
        API, data=json.dumps(with_form_token(payload)), content_type="application/json", **extra
    )


@pytest.fixture
def newsletter():
    return NewsletterFactory(slug="explaining-ukraine", name="Explaining Ukraine")


def test_api_signup_answers_202_and_sends_one_confirmation_email(
    client, newsletter, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})

    assert response.status_code == 202
    assert response.json() == {"status": "pending", "message": SUCCESS_MESSAGE}
    subscription = Subscription.objects.get()
    assert subscription.status == Subscription.Status.PENDING
    assert subscription.source == Subscription.Source.API
    assert [m.to for m in mail.outbox] == [["ann@example.org"]]
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.SENT


def test_form_signup_redirects_to_a_thank_you_page(
    client, newsletter, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("subscriptions:signup"),
            {
                "email": "ann@example.org",
                "newsletters": newsletter.slug,
                "form_token": human_form_token(),
            },
        )

    assert response.status_code == 302
    assert response["Location"] == reverse("subscriptions:thanks")
    thanks = client.get(response["Location"])
    assert SUCCESS_MESSAGE.replace("'", "&#x27;") in thanks.content.decode()
    assert Subscription.objects.get().source == Subscription.Source.FORM
    assert len(mail.outbox) == 1


def test_one_signup_to_several_newsletters_sends_one_confirmation_email(
    client, django_capture_on_commit_callbacks
):
    slugs = [NewsletterFactory().slug for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        response = post_api(client, {"email": "ann@example.org", "newsletters": slugs})

    assert response.status_code == 202
    assert Subscription.objects.filter(status="pending").count() == 3
    assert len(mail.outbox) == 1


def test_signup_records_proof_of_consent(client, newsletter):
    post_api(
        client,
        {"email": "ann@example.org", "newsletters": [newsletter.slug], "page_url": "https://x/a"},
        HTTP_USER_AGENT="Mozilla/5.0 test",
        REMOTE_ADDR="203.0.113.9",
    )

    record = ConsentRecord.objects.get()
    assert record.kind == ConsentRecord.Kind.SIGNUP
    assert record.ip_address == "203.0.113.9"
    assert record.user_agent == "Mozilla/5.0 test"
    assert record.page_url == "https://x/a"
    assert "unsubscribe" in record.consent_text
    event = SubscriptionEvent.objects.get(kind=SubscriptionEvent.Kind.SUBSCRIBED)
    assert (event.from_status, event.to_status, event.actor) == ("", "pending", "reader")


def test_the_api_records_the_consent_text_the_calling_site_showed(client, newsletter):
    shown = "Sign up for our newsletter.\nWe never share your address."

    post_api(
        client,
        {"email": "ann@example.org", "newsletters": [newsletter.slug], "consent_text": shown},
    )

    record = ConsentRecord.objects.get()
    assert record.consent_text == "Sign up for our newsletter. We never share your address."


def test_the_html_form_records_its_own_consent_text_whatever_is_posted(client, newsletter):
    client.post(
        reverse("subscriptions:signup"),
        {
            "email": "ann@example.org",
            "newsletters": newsletter.slug,
            "form_token": human_form_token(),
            "consent_text": "I agree to nothing",
        },
    )

    assert "unsubscribe at any time" in ConsentRecord.objects.get().consent_text


def test_an_over_long_consent_text_is_a_field_error_and_stores_nothing(client, newsletter):
    response = post_api(
        client,
        {"email": "ann@example.org", "newsletters": [newsletter.slug], "consent_text": "x" * 2001},
    )

    assert response.status_code == 400
    assert response.json() == {"errors": {"consent_text": ["Send at most 2000 characters."]}}
    assert not Subscriber.objects.exists()


def test_the_server_rendered_form_carries_its_page_address_for_the_consent_record(
    client, newsletter
):
    page = client.get(f"/newsletters/{newsletter.slug}/").content.decode()

    assert (
        f'<input type="hidden" name="page_url" value="http://testserver/newsletters/'
        f'{newsletter.slug}/">' in page
    )


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        (
            {"email": "nope", "newsletters": ["explaining-ukraine"]},
            "email",
            "Please, enter correct email address",
        ),
        ({"newsletters": ["explaining-ukraine"]}, "email", "Please, enter correct email address"),
        ({"email": "ann@example.org"}, "newsletters", "Choose at least one newsletter."),
        (
            {"email": "ann@example.org", "newsletters": []},
            "newsletters",
            "Choose at least one newsletter.",
        ),
        (
            {"email": "ann@example.org", "newsletters": ["no-such-list"]},
            "newsletters",
            "Unknown newsletter: no-such-list",
        ),
        (
            {"email": "ann@example.org", "newsletters": [1, 2]},
            "newsletters",
            "Send a list of newsletter slugs.",
        ),
        (
            {"email": "ann@example.org", "newsletters": {"a": 1}},
            "newsletters",
            "Send a list of newsletter slugs.",
        ),
        (
            {"email": "ann@example.org", "newsletters": ["x"] * 51},
            "newsletters",
            "Send a list of newsletter slugs.",
        ),
    ],
    ids=[
        "bad-email",
        "no-email",
        "no-newsletters",
        "empty-newsletters",
        "unknown-slug",
        "non-string-slugs",
        "object-newsletters",
        "too-many-newsletters",
    ],
)
def test_invalid_api_input_answers_400_with_the_fields_message_and_stores_nothing(
    client, newsletter, payload, field, message
):
    response = post_api(client, payload)

    assert response.status_code == 400
    assert response.json()["errors"][field] == [message]
    assert not Subscriber.objects.exists()
    assert not OutboundEmail.objects.exists()


def test_private_newsletters_take_no_signups_from_readers(client):
    private = NewsletterFactory(is_public=False)

    response = post_api(client, {"email": "ann@example.org", "newsletters": [private.slug]})

    assert response.status_code == 400
    assert response.json()["errors"]["newsletters"] == [f"Unknown newsletter: {private.slug}"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"email=ann@example.org", "application/x-www-form-urlencoded"),
        (b"{not json", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"", "application/json"),
        (b'"just a string"', "application/json"),
    ],
    ids=["form-encoded", "broken-json", "invalid-utf8", "array", "empty", "string"],
)
def test_malformed_api_bodies_answer_400_not_500(client, newsletter, body, content_type):
    response = client.generic("POST", API, body, content_type=content_type)

    assert response.status_code == 400
    assert "__all__" in response.json()["errors"]
    assert not Subscriber.objects.exists()


def test_api_refuses_get(client):
    assert client.get(API).status_code == 405


def test_the_answer_is_the_same_for_new_pending_and_active_addresses(
    client, newsletter, django_capture_on_commit_callbacks
):
    def answer():
        with django_capture_on_commit_callbacks(execute=True):
            response = post_api(
                client, {"email": "ann@example.org", "newsletters": [newsletter.slug]}
            )
        return response.status_code, response.json()

    new = answer()
    pending = answer()
    Subscription.objects.update(status=Subscription.Status.ACTIVE)
    active = answer()

    assert new == pending == active


def test_signing_up_again_never_downgrades_an_active_subscription(
    client, newsletter, django_capture_on_commit_callbacks
):
    post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})
    Subscription.objects.update(status=Subscription.Status.ACTIVE)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        post_api(client, {"email": "ANN@example.org", "newsletters": [newsletter.slug]})

    assert Subscription.objects.get().status == Subscription.Status.ACTIVE
    assert mail.outbox == []


def test_a_pending_address_gets_a_fresh_confirmation_after_the_min_interval(
    client, newsletter, settings, django_capture_on_commit_callbacks
):
    settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})
        post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})

    assert len(mail.outbox) == 2
    assert Subscription.objects.count() == 1


def test_a_quick_resubmission_sends_nothing_new(
    client, newsletter, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})
        second = post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})

    assert second.status_code == 202
    assert len(mail.outbox) == 1
    assert SubscriptionEvent.objects.filter(
        kind=SubscriptionEvent.Kind.CONFIRMATION_CAPPED
    ).exists()


def covered_slugs(outbound: OutboundEmail) -> list[str]:
    return sorted(outbound.subscriptions.values_list("newsletter__slug", flat=True))


def test_a_sign_up_to_another_newsletter_right_after_gets_an_email_covering_both(
    client, newsletter, django_capture_on_commit_callbacks
):
    digest = NewsletterFactory(slug="daily-digest")
    with django_capture_on_commit_callbacks(execute=True):
        post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})
        post_api(client, {"email": "ann@example.org", "newsletters": [digest.slug]})

    assert len(mail.outbox) == 2
    first, second = OutboundEmail.objects.order_by("pk")
    assert covered_slugs(first) == ["explaining-ukraine"]
    assert covered_slugs(second) == ["daily-digest", "explaining-ukraine"]


def test_a_sign_up_the_daily_cap_held_back_is_covered_by_the_next_email(
    client, newsletter, settings, django_capture_on_commit_callbacks
):
    settings.CONFIRMATION_EMAILS_PER_DAY = 1
    digest = NewsletterFactory(slug="daily-digest")
    picks = NewsletterFactory(slug="editors-picks")
    with django_capture_on_commit_callbacks(execute=True):
        post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})
        post_api(client, {"email": "ann@example.org", "newsletters": [digest.slug]})
    assert len(mail.outbox) == 1
    assert SubscriptionEvent.objects.filter(
        kind=SubscriptionEvent.Kind.CONFIRMATION_CAPPED, subscription__newsletter=digest
    ).exists()

    OutboundEmail.objects.update(created_at=timezone.now() - timedelta(hours=25))
    with django_capture_on_commit_callbacks(execute=True):
        post_api(client, {"email": "ann@example.org", "newsletters": [picks.slug]})

    assert len(mail.outbox) == 2
    latest = OutboundEmail.objects.order_by("-pk").first()
    assert covered_slugs(latest) == ["daily-digest", "editors-picks", "explaining-ukraine"]


def test_confirmation_emails_per_address_are_capped_per_day(
    client, newsletter, settings, django_capture_on_commit_callbacks
):
    settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS = 0
    settings.CONFIRMATION_EMAILS_PER_DAY = 3
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(6):
            response = post_api(
                client, {"email": "ann@example.org", "newsletters": [newsletter.slug]}
            )
            assert response.status_code == 202

    assert len(mail.outbox) == 3


def test_the_honeypot_answers_success_and_stores_nothing(client, newsletter):
    response = post_api(
        client,
        {"email": "ann@example.org", "newsletters": [newsletter.slug], "website": "http://spam"},
    )

    assert response.status_code == 202
    assert not Subscriber.objects.exists()


def test_single_opt_in_newsletters_activate_at_once_and_send_the_welcome_email(
    client, django_capture_on_commit_callbacks
):
    newsletter = NewsletterFactory(double_opt_in=False, send_welcome_email=True)

    with django_capture_on_commit_callbacks(execute=True):
        post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})

    assert Subscription.objects.get().status == Subscription.Status.ACTIVE
    (welcome,) = mail.outbox
    assert welcome.metadata["message_type"] == "welcome"
    assert "List-Unsubscribe" in welcome.extra_headers


def test_an_unsubscribed_reader_signing_up_again_is_pending_again(
    client, newsletter, settings, django_capture_on_commit_callbacks
):
    settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS = 0
    post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})
    Subscription.objects.update(status=Subscription.Status.UNSUBSCRIBED)

    with django_capture_on_commit_callbacks(execute=True):
        post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})

    subscription = Subscription.objects.get()
    assert subscription.status == Subscription.Status.PENDING
    assert len(mail.outbox) == 1


def test_an_invalid_form_post_shows_the_error_and_keeps_what_was_typed(client, newsletter):
    response = client.post(
        reverse("subscriptions:signup"),
        {
            "email": "ann@@example",
            "newsletters": newsletter.slug,
            "form_token": human_form_token(),
        },
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "Please, enter correct email address" in page
    assert "ann@@example" in page
    assert not Subscriber.objects.exists()


def test_the_form_requires_a_csrf_token(newsletter):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    response = client.post(
        reverse("subscriptions:signup"),
        {
            "email": "ann@example.org",
            "newsletters": newsletter.slug,
            "form_token": human_form_token(),
        },
    )

    assert response.status_code == 403
    assert not Subscriber.objects.exists()


def test_the_api_needs_no_cookies_or_csrf_token(newsletter):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    response = post_api(client, {"email": "ann@example.org", "newsletters": [newsletter.slug]})

    assert response.status_code == 202
