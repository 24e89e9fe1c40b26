"""Double opt-in: a signed, expiring link; GET changes nothing, POST confirms, twice is
harmless, and a stale, tampered or borrowed token confirms nothing."""

import re
from datetime import timedelta

import pytest
from django.core import mail, signing
from django.urls import reverse
from django.utils import timezone

from subscriptions import tokens
from subscriptions.models import ConsentRecord, OutboundEmail, Subscription, SubscriptionEvent
from subscriptions.signup import services
from subscriptions.tokens import confirmation_token, preferences_token, unsubscribe_token
from tests.factories import NewsletterFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db


def signup(email="ann@example.org", newsletters=None):
    newsletters = newsletters or [NewsletterFactory()]
    return services.subscribe(
        email=email,
        newsletters=newsletters,
        source=Subscription.Source.FORM,
        consent=services.ConsentContext(ip_address="192.0.2.1"),
    )


def confirm_path(subscription_ids):
    return reverse("subscriptions:confirm", args=[confirmation_token.make_token(subscription_ids)])


def test_the_confirmation_email_carries_a_link_that_confirms(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        result = signup()
    (message,) = mail.outbox
    link = re.search(r"https://news\.example\.org(/confirm/[^/\s]+/)", message.body).group(1)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(link)

    assert response.status_code == 200
    subscription = Subscription.objects.get(pk=result.pending_ids[0])
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.confirmed_at is not None
    assert ConsentRecord.objects.filter(kind=ConsentRecord.Kind.CONFIRMATION).count() == 1


def test_the_confirmation_records_the_words_the_confirm_page_showed(client) -> None:
    ukraine = NewsletterFactory(name="Explaining Ukraine")
    digest = NewsletterFactory(name="Daily Digest")
    result = signup(newsletters=[ukraine, digest])
    path = confirm_path(result.pending_ids)

    page = client.get(path).content.decode()
    client.post(path, HTTP_USER_AGENT="Mozilla/5.0 test", REMOTE_ADDR="198.51.100.7")

    shown = "Confirm your subscription to: Explaining Ukraine, Daily Digest"
    assert shown in page
    records = ConsentRecord.objects.filter(kind=ConsentRecord.Kind.CONFIRMATION)
    assert {(r.consent_text, r.ip_address, r.user_agent) for r in records} == {
        (shown, "198.51.100.7", "Mozilla/5.0 test")
    }
    assert records.count() == 2


def test_confirmation_emails_carry_no_unsubscribe_headers_but_metadata_and_tags(
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        result = signup()
    (message,) = mail.outbox

    assert "List-Unsubscribe" not in message.extra_headers
    assert "List-Unsubscribe-Post" not in message.extra_headers
    assert message.tags == ["confirmation"]
    assert message.metadata["message_type"] == "confirmation"
    assert message.metadata["subscription_ids"] == str(result.pending_ids[0])
    assert message.alternatives and message.alternatives[0][1] == "text/html"


def test_get_on_the_confirm_link_changes_nothing(client):
    result = signup()

    response = client.get(confirm_path(result.pending_ids))

    assert response.status_code == 200
    assert b"Confirm" in response.content
    assert Subscription.objects.get().status == Subscription.Status.PENDING


def test_confirming_twice_is_harmless_and_sends_one_welcome(
    client, django_capture_on_commit_callbacks
):
    result = signup()
    path = confirm_path(result.pending_ids)

    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(path)
        second = client.post(path)

    assert first.status_code == second.status_code == 200
    assert Subscription.objects.get().status == Subscription.Status.ACTIVE
    assert OutboundEmail.objects.filter(kind="welcome").count() == 1
    assert SubscriptionEvent.objects.filter(kind="confirmed").count() == 1


def test_confirming_sends_the_welcome_email_with_one_click_unsubscribe(
    client, django_capture_on_commit_callbacks
):
    result = signup()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm_path(result.pending_ids))

    (welcome,) = mail.outbox
    assert welcome.metadata["message_type"] == "welcome"
    assert welcome.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert welcome.extra_headers["List-Unsubscribe"].startswith("<https://news.example.org/")
    assert "List-Id" in welcome.extra_headers


def test_confirmations_come_from_the_transactional_sender_and_welcomes_from_the_newsletter_one(
    client, settings, django_capture_on_commit_callbacks
):
    settings.DEFAULT_FROM_EMAIL = "The Kyiv Ledger <hello@news.example.org>"
    settings.NEWSLETTER_FROM_EMAIL = "Explaining Ukraine <letters@lists.example.org>"
    with django_capture_on_commit_callbacks(execute=True):
        result = signup()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm_path(result.pending_ids))

    confirmation, welcome = mail.outbox
    assert confirmation.metadata["message_type"] == "confirmation"
    assert confirmation.from_email == "The Kyiv Ledger <hello@news.example.org>"
    assert welcome.metadata["message_type"] == "welcome"
    assert welcome.from_email == "Explaining Ukraine <letters@lists.example.org>"


@pytest.mark.parametrize(
    ("name", "list_id"),
    [
        ("Explaining Ukraine", '"Explaining Ukraine" <explaining-ukraine.news.example.org>'),
        # A double quote would end the phrase early (RFC 5322 quoted-string).
        (
            'The "Frontline" Brief',
            "\"The 'Frontline' Brief\" <explaining-ukraine.news.example.org>",
        ),
    ],
)
def test_the_welcome_email_names_its_list_under_the_sites_domain(
    name, list_id, client, settings, django_capture_on_commit_callbacks
):
    # RFC 2919: a label unique to the list, under a domain the sender controls.
    settings.SITE_URL = "https://news.example.org"
    newsletter = NewsletterFactory(name=name, slug="explaining-ukraine")
    result = signup(newsletters=[newsletter])
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm_path(result.pending_ids))

    (welcome,) = mail.outbox
    assert welcome.extra_headers["List-Id"] == list_id


def test_no_welcome_email_when_the_newsletter_has_none(client, django_capture_on_commit_callbacks):
    result = signup(newsletters=[NewsletterFactory(send_welcome_email=False)])
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm_path(result.pending_ids))

    assert mail.outbox == []
    assert Subscription.objects.get().status == Subscription.Status.ACTIVE


def test_an_expired_link_shows_a_page_offering_a_new_email(
    client, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS = 0
    result = signup()
    path = confirm_path(result.pending_ids)
    later = timezone.now() + timedelta(days=8)
    monkeypatch.setattr(tokens, "_now", lambda: later)

    response = client.post(path)

    assert response.status_code == 410
    assert b"expired" in response.content
    assert Subscription.objects.get().status == Subscription.Status.PENDING
    with django_capture_on_commit_callbacks(execute=True):
        resend = client.post(path.rstrip("/") + "/resend/")
    assert resend.status_code == 200
    assert len(mail.outbox) == 1


def test_a_link_just_inside_its_lifetime_still_confirms(client, monkeypatch):
    result = signup()
    path = confirm_path(result.pending_ids)
    later = timezone.now() + timedelta(days=6, hours=23)
    monkeypatch.setattr(tokens, "_now", lambda: later)

    client.post(path)

    assert Subscription.objects.get().status == Subscription.Status.ACTIVE


@pytest.mark.parametrize(
    "make_token",
    [
        lambda ids: confirmation_token.make_token(ids)[:-2] + "xx",
        lambda ids: confirmation_token.make_token(ids).replace(":", "", 1),
        lambda ids: unsubscribe_token.make_token(ids[0]),
        lambda ids: preferences_token.make_token(ids[0]),
        lambda ids: signing.dumps({"s": ids, "t": 0}, salt="another.purpose"),
        lambda ids: "garbage",
    ],
    ids=[
        "tampered-signature",
        "mangled",
        "unsubscribe-token",
        "preferences-token",
        "other-salt",
        "garbage",
    ],
)
def test_tampered_and_cross_purpose_tokens_confirm_nothing(client, make_token):
    result = signup()

    for method in (client.get, client.post):
        response = method(reverse("subscriptions:confirm", args=[make_token(result.pending_ids)]))
        assert response.status_code == 400
        assert b"not valid" in response.content
    assert Subscription.objects.get().status == Subscription.Status.PENDING


def test_an_old_link_does_not_revive_a_subscription_the_reader_ended(client):
    result = signup()
    path = confirm_path(result.pending_ids)
    services.unsubscribe(subscription_id=result.pending_ids[0], actor="reader", via="page")

    client.post(path)

    assert Subscription.objects.get().status == Subscription.Status.UNSUBSCRIBED


def test_an_old_link_does_not_confirm_a_later_signup(client):
    subscription = SubscriptionFactory(
        status=Subscription.Status.PENDING, pending_since=timezone.now() + timedelta(minutes=5)
    )

    client.post(confirm_path([subscription.pk]))

    subscription.refresh_from_db()
    assert subscription.status == Subscription.Status.PENDING


def test_a_token_for_a_deleted_subscription_is_refused(client):
    assert client.get(confirm_path([987654])).status_code == 400


def test_resending_to_ids_given_as_a_generator_queues_the_email(settings):
    """The ids were read twice: a generator (any one-pass iterable) was empty the second
    time, and the resend silently did nothing."""
    settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS = 0
    pending = SubscriptionFactory(status=Subscription.Status.PENDING)

    outbound_id = services.resend_confirmation(
        subscription_ids=(pk for pk in [pending.pk]), actor="reader"
    )

    assert outbound_id is not None
    assert OutboundEmail.objects.get(pk=outbound_id).subscriptions.get() == pending
