"""The daily cap on confirmation emails counts per mailbox, not per stored address:
"victim+1@" to "victim+12@", Gmail's dots and googlemail.com share one budget, whichever
way in asked (the form, the embed, the JSON API), and concurrent sign-ups of variants
cannot slip past it."""

import re
import threading
import time

import pytest
from django.core import mail
from django.db import connections
from django.urls import reverse

from subscriptions.abuse import bot_traps
from subscriptions.models import OutboundEmail, Subscriber, Subscription, SubscriptionEvent
from subscriptions.signup import services
from subscriptions.web.views import SUCCESS_MESSAGE
from tests.factories import NewsletterFactory, human_form_token, with_form_token

THANKS = reverse("subscriptions:thanks")


@pytest.fixture
def newsletter():
    return NewsletterFactory(slug="the-briefing", name="The Briefing")


@pytest.fixture(autouse=True)
def _no_interval(settings):
    # The minimum interval is another rule, per address; this file is about the daily cap.
    settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS = 0
    assert settings.CONFIRMATION_EMAILS_PER_DAY == 3


def by_api(client, email: str):
    response = client.post(
        "/api/v1/subscriptions",
        with_form_token({"email": email, "newsletters": ["the-briefing"]}),
        content_type="application/json",
    )
    assert response.status_code == 202
    assert response.json() == {"status": "pending", "message": SUCCESS_MESSAGE}


def by_form(client, email: str):
    response = client.post(
        "/subscribe/",
        {"email": email, "newsletters": "the-briefing", "form_token": human_form_token()},
    )
    assert response["Location"] == THANKS


def by_embed(client, email: str, monkeypatch):
    """The plain-HTML embed: posted from another site, confirmed on our page."""
    page = client.post("/subscribe/embed/", {"email": email, "newsletters": "the-briefing"})
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.content.decode()))
    later = time.time() + 5
    with monkeypatch.context() as clock:
        clock.setattr(bot_traps, "_now", lambda: later)
        response = client.post("/subscribe/", fields)
    assert response["Location"] == THANKS


def confirmations_to(*addresses: str) -> int:
    return sum(1 for message in mail.outbox if message.to[0] in addresses)


@pytest.mark.django_db
def test_tag_variants_of_one_mailbox_share_one_budget_across_form_embed_and_api(
    client, newsletter, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    variants = [f"victim+{n}@example.org" for n in range(1, 13)]
    with django_capture_on_commit_callbacks(execute=True):
        for n, email in enumerate(variants):
            if n % 3 == 0:
                by_api(client, email)
            elif n % 3 == 1:
                by_form(client, email)
            else:
                by_embed(client, email, monkeypatch)

    # Every answer was the normal one, every address is kept as typed, pending...
    assert Subscriber.objects.count() == 12
    assert set(Subscription.objects.values_list("status", flat=True)) == {"pending"}
    # ...and one inbox got three confirmation emails, not twelve.
    assert len(mail.outbox) == 3
    assert OutboundEmail.objects.filter(kind=OutboundEmail.Kind.CONFIRMATION).count() == 3
    assert (
        SubscriptionEvent.objects.filter(kind=SubscriptionEvent.Kind.CONFIRMATION_CAPPED).count()
        == 9
    )


@pytest.mark.django_db
def test_gmails_dots_and_googlemail_are_one_mailbox(
    client, newsletter, django_capture_on_commit_callbacks
) -> None:
    variants = [
        "victim@gmail.com",
        "v.ictim@gmail.com",
        "vic.tim+news@googlemail.com",
        "V.I.C.T.I.M@gmail.com",
        "victim+x@googlemail.com",
    ]
    with django_capture_on_commit_callbacks(execute=True):
        for email in variants:
            by_api(client, email)

    assert len(mail.outbox) == 3


@pytest.mark.django_db
def test_another_mailbox_has_a_budget_of_its_own(
    client, newsletter, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(5):
            by_api(client, f"victim+{n}@example.org")
        by_api(client, "victim@example.net")
        by_api(client, "ann+1@example.org")

    assert confirmations_to(*(f"victim+{n}@example.org" for n in range(5))) == 3
    assert confirmations_to("victim@example.net") == 1
    assert confirmations_to("ann+1@example.org") == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_signups_of_variants_cannot_slip_past_the_cap(newsletter) -> None:
    """Twenty variants of one mailbox at the same moment, each a new address (so each may
    take the one-statement path): still three emails at most."""
    threads = 20
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def sign_up(n: int) -> None:
        try:
            start.wait(timeout=30)
            services.subscribe(
                email=f"victim+{n}@example.org",
                newsletters=[newsletter],
                source=Subscription.Source.API,
                consent=services.ConsentContext(),
            )
        except BaseException as error:  # noqa: BLE001 - asserted below
            errors.append(error)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=sign_up, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)

    assert errors == []
    assert Subscriber.objects.count() == threads
    assert OutboundEmail.objects.filter(kind=OutboundEmail.Kind.CONFIRMATION).count() == 3


@pytest.mark.django_db
def test_a_pending_import_counts_in_the_same_daily_budget_per_mailbox(
    client, newsletter, tmp_path
) -> None:
    """Both ways: an import sends nothing to a mailbox whose budget sign-ups of a variant
    spent, and a sign-up after an import counts the import's confirmation."""
    from tests.imports_support import import_file

    for n in range(3):
        by_api(client, f"victim+{n}@example.org")
    listed = tmp_path / "list.csv"
    listed.write_text("email\nVictim+9@Example.org\nother@example.org\n")
    import_file(listed, newsletter, status=Subscription.Status.PENDING)

    confirmations = OutboundEmail.objects.filter(kind=OutboundEmail.Kind.CONFIRMATION)
    assert sorted(confirmations.values_list("to_email", flat=True)) == [
        "other@example.org",
        "victim+0@example.org",
        "victim+1@example.org",
        "victim+2@example.org",
    ]

    for n in range(3):
        by_api(client, f"other+{n}@example.org")  # the import's counts: two more, not three
    assert confirmations.filter(to_email__startswith="other").count() == 3
