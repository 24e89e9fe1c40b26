"""What a preferences link may do, and that the page tells the truth.

- A reader whose mail we stopped (a bounce, a complaint) is told why, and ticking a
  newsletter does not pretend to start it: a reactivation email goes to the address, and
  confirming it lifts the stop.
- A link older than PREFERENCES_LINK_MAX_AGE_DAYS (or one from before links carried a
  date) may take newsletters away but not add them; the page offers a fresh link.
- The page does not show the reader's address to whoever holds the link.
- A reader may always get their own data by email, unless their mail server refuses
  our mail, and then the page says so.
"""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.core import mail, signing
from django.urls import reverse
from django.utils import timezone

from subscriptions import tokens
from subscriptions.mail import suppression
from subscriptions.models import OutboundEmail, Subscription, SuppressedAddress
from subscriptions.tokens import preferences_token
from tests.factories import NewsletterFactory, SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db
Reason = SuppressedAddress.Reason
Status = Subscription.Status


def page_path(subscriber_id: int, *, days_old: int = 0, monkeypatch=None) -> str:
    if days_old:
        issued = timezone.now() - timedelta(days=days_old)
        with pytest.MonkeyPatch.context() as clock:
            clock.setattr(tokens, "_now", lambda: issued)
            token = preferences_token.make_token(subscriber_id)
    else:
        token = preferences_token.make_token(subscriber_id)
    return reverse("subscriptions:preferences", args=[token])


def text(response) -> str:
    return unescape(response.content.decode())


def statuses(subscriber) -> dict[int, str]:
    return dict(subscriber.subscriptions.values_list("newsletter_id", "status"))


@pytest.fixture
def stopped_reader():
    """Ann's mail was stopped: her subscription bounced and her address is suppressed."""
    subscription = SubscriptionFactory(subscriber__email="ann@example.org", status=Status.BOUNCED)
    suppression.suppress(email="ann@example.org", reason=Reason.HARD_BOUNCE)
    return subscription


def confirm_link(message) -> str:
    return re.search(r"https://news\.example\.org(/confirm/\S+/)", message.body).group(1)


@pytest.mark.parametrize(
    ("reason", "status", "told"),
    [
        (Reason.HARD_BOUNCE, Status.BOUNCED, "its mail server refused our messages"),
        (Reason.COMPLAINT, Status.COMPLAINED, "one of our emails was marked as spam"),
    ],
)
def test_a_stopped_reader_is_told_why_and_ticking_asks_them_to_confirm_first(
    client, django_capture_on_commit_callbacks, reason, status, told
) -> None:
    subscription = SubscriptionFactory(subscriber__email="ann@example.org", status=status)
    suppression.suppress(email="ann@example.org", reason=reason)
    path = page_path(subscription.subscriber_id)

    assert told in client.get(path).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(path, {"newsletters": [subscription.newsletter_id]})

    # Not "active" while no mail could reach her: pending, and an email to confirm.
    subscription.refresh_from_db()
    assert subscription.status == Status.PENDING
    assert "Once you press the button in it, we'll start sending again." in text(page)
    (reactivation,) = mail.outbox
    assert reactivation.to == ["ann@example.org"]
    assert reactivation.metadata["message_type"] == "reactivation"
    assert "You asked to start again from your newsletter preferences." in reactivation.body
    assert suppression.is_suppressed("ann@example.org")

    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm_link(reactivation))

    subscription.refresh_from_db()
    assert subscription.status == Status.ACTIVE
    assert not suppression.is_suppressed("ann@example.org")
    lifted = SuppressedAddress.objects.get()
    assert (lifted.lifted_by, lifted.reason) == ("reader", reason)
    assert [m.metadata["message_type"] for m in mail.outbox] == ["reactivation", "welcome"]


def test_an_ordinary_confirmation_link_does_not_lift_a_bounce(
    client, stopped_reader, django_capture_on_commit_callbacks
) -> None:
    stale = SubscriptionFactory(subscriber=stopped_reader.subscriber, status=Status.PENDING)
    token = tokens.confirmation_token.make_token([stale.pk])

    client.post(reverse("subscriptions:confirm", args=[token]))

    assert suppression.is_suppressed("ann@example.org")


def test_an_editors_stop_holds_and_the_page_says_whom_to_write_to(client, settings) -> None:
    settings.DEFAULT_FROM_EMAIL = "The Kyiv Ledger <hello@example.org>"
    subscription = SubscriptionFactory(subscriber__email="ann@example.org", status=Status.BOUNCED)
    suppression.suppress(email="ann@example.org", reason=Reason.MANUAL)
    path = page_path(subscription.subscriber_id)

    page = client.post(path, {"newsletters": [subscription.newsletter_id]}).content.decode()

    assert "The newsroom has stopped sending to this address" in page
    assert "hello@example.org" in page
    assert statuses(subscription.subscriber) == {subscription.newsletter_id: Status.BOUNCED}
    assert mail.outbox == []


def test_a_link_older_than_thirty_days_may_take_away_but_not_add(
    client, settings, django_capture_on_commit_callbacks
) -> None:
    assert settings.PREFERENCES_LINK_MAX_AGE_DAYS == 30
    subscriber = SubscriberFactory()
    kept = SubscriptionFactory(subscriber=subscriber, status=Status.ACTIVE)
    dropped = SubscriptionFactory(subscriber=subscriber, status=Status.ACTIVE)
    other = NewsletterFactory()
    path = page_path(subscriber.pk, days_old=31)

    shown = client.get(path).content.decode()
    assert f'value="{kept.newsletter_id}"' in shown
    assert f'value="{other.pk}"' not in shown  # nothing to tick for what is off
    assert "Email me a fresh link" in shown
    with django_capture_on_commit_callbacks(execute=True):
        page = client.post(path, {"newsletters": [kept.newsletter_id, other.pk]})

    assert statuses(subscriber) == {
        kept.newsletter_id: Status.ACTIVE,
        dropped.newsletter_id: Status.UNSUBSCRIBED,
    }
    assert "this link is too old to add newsletters" in page.content.decode()
    assert mail.outbox == []


def test_a_link_from_before_links_carried_a_date_still_opens_the_page_to_take_away(
    client,
) -> None:
    subscription = SubscriptionFactory(status=Status.ACTIVE)
    other = NewsletterFactory()
    legacy = signing.dumps(subscription.subscriber_id, salt=preferences_token.key_salt)
    path = reverse("subscriptions:preferences", args=[legacy])

    assert client.get(path).status_code == 200
    client.post(path, {"newsletters": [other.pk]})

    assert statuses(subscription.subscriber) == {subscription.newsletter_id: Status.UNSUBSCRIBED}


def test_the_page_mails_a_fresh_link_that_may_add(
    client, django_capture_on_commit_callbacks
) -> None:
    subscriber = SubscriberFactory(email="ann@example.org")
    newsletter = NewsletterFactory()
    old = page_path(subscriber.pk, days_old=45)

    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(old, {"action": "fresh_link"})

    assert "We've sent a fresh link to your address." in text(answer)
    (message,) = mail.outbox
    assert message.to == ["ann@example.org"]
    assert message.metadata["message_type"] == "preferences_link"
    fresh = re.search(r"https://news\.example\.org(/preferences/\S+/)", message.body).group(1)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(fresh, {"newsletters": [newsletter.pk]})
    assert statuses(subscriber) == {newsletter.pk: Status.ACTIVE}


def test_fresh_links_are_capped_at_three_a_day(client, django_capture_on_commit_callbacks):
    subscriber = SubscriberFactory()
    old = page_path(subscriber.pk, days_old=45)

    with django_capture_on_commit_callbacks(execute=True):
        answers = [client.post(old, {"action": "fresh_link"}) for _ in range(4)]

    assert len(mail.outbox) == 3
    assert "fresh links today already" in answers[-1].content.decode()


def test_the_page_does_not_show_the_address_to_whoever_holds_the_link(client) -> None:
    subscriber = SubscriberFactory(email="ann.reader@example.org")

    page = client.get(page_path(subscriber.pk)).content.decode()

    assert "ann.reader@example.org" not in page
    assert "a***@example.org" in page


@pytest.mark.parametrize("reason", [Reason.COMPLAINT, Reason.MANUAL])
def test_a_reader_whose_mail_is_stopped_still_gets_their_own_data_by_email(
    client, django_capture_on_commit_callbacks, reason
) -> None:
    subscriber = SubscriberFactory(email="ann@example.org")
    suppression.suppress(email="ann@example.org", reason=reason)
    token = preferences_token.make_token(subscriber.pk)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("subscriptions:privacy_request", args=[token]), {"action": "export"}
        )

    assert response["Location"].endswith("?privacy=sent")
    (message,) = mail.outbox
    assert message.to == ["ann@example.org"]
    assert OutboundEmail.objects.get().status == OutboundEmail.Status.SENT


def test_a_privacy_request_to_an_address_that_bounces_says_so_instead_of_pretending(
    client, stopped_reader, django_capture_on_commit_callbacks, settings
) -> None:
    settings.DEFAULT_FROM_EMAIL = "The Kyiv Ledger <hello@example.org>"
    token = preferences_token.make_token(stopped_reader.subscriber_id)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("subscriptions:privacy_request", args=[token]), {"action": "erase"}, follow=True
        )

    page = text(response)
    assert "We can't email this address to confirm it is you" in page
    assert "hello@example.org" in page
    assert not OutboundEmail.objects.exists()
    assert mail.outbox == []
