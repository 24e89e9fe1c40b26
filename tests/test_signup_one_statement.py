"""A new address's sign-up is one SQL statement on PostgreSQL (subscriptions/
fast_path.py), and it writes exactly what the general path writes: the subscriber,
each subscription with its event and proof of consent, one confirmation email covering
them all and its event per subscription. Anything but a new, unsuppressed address
takes the general path."""

from datetime import timedelta

import pytest
from django.utils import timezone

from subscriptions.mail import suppression
from subscriptions.models import (
    ConsentRecord,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from subscriptions.signup import fast_path, services
from tests.factories import NewsletterFactory, SubscriberFactory
from tests.prepared_statements import prepared_runs, runs_since

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CONSENTS = {
    "plain": services.ConsentContext(),
    "everything": services.ConsentContext(
        ip_address="2001:db8::7",
        user_agent="Mozilla/5.0 (X11; Linux x86_64)",
        page_url="https://news.example.org/2026/12/kyiv-winter?utm=x",
        consent_text="Я погоджуюся отримувати листи. I agree.",
    ),
}


def written_for(address: str) -> dict:
    """What a sign-up left for one address, in terms that do not depend on row ids or
    the clock."""
    subscriber = Subscriber.objects.get(email=address)
    subscriptions = list(subscriber.subscriptions.order_by("pk"))
    position = {s.pk: n for n, s in enumerate(subscriptions)}
    emails = list(subscriber.outbound_emails.order_by("pk"))
    email_position = {e.pk: n for n, e in enumerate(emails)}
    created = subscriber.created_at

    def since(moment):
        # To the second: the general path's auto_now fields take the clock a little
        # after the service's `now`; the statement writes `now` everywhere.
        return None if moment is None else round((moment - created).total_seconds())

    return {
        "subscriber": (subscriber.name, subscriber.attributes, subscriber.language),
        "subscriptions": [
            (
                s.newsletter.slug,
                s.status,
                s.source,
                since(s.created_at),
                since(s.pending_since),
                s.confirmed_at,
                since(s.updated_at),
            )
            for s in subscriptions
        ],
        "events": [
            (
                position[e.subscription_id],
                e.kind,
                e.from_status,
                e.to_status,
                e.actor,
                {
                    key: email_position[value] if key == "outbound_email_id" else value
                    for key, value in e.detail.items()
                },
                since(e.at),
            )
            for e in SubscriptionEvent.objects.filter(subscription__in=subscriptions).order_by("pk")
        ],
        "consent": [
            (
                position[c.subscription_id],
                c.kind,
                since(c.at),
                c.ip_address,
                c.user_agent,
                c.page_url,
                c.consent_text,
            )
            for c in ConsentRecord.objects.filter(subscription__in=subscriptions).order_by("pk")
        ],
        "emails": [
            (
                e.kind,
                e.status,
                e.to_email == subscriber.email,
                e.attempts,
                e.last_error,
                e.esp_message_id,
                e.claimed_by_task,
                e.next_attempt_at,
                e.milestone_id,
                since(e.created_at),
                sorted(position[s.pk] for s in e.subscriptions.all()),
            )
            for e in emails
        ],
    }


def sign_up(address: str, newsletters, consent, language: str = "") -> services.SignupResult:
    return services.subscribe(
        email=address,
        newsletters=newsletters,
        source=Subscription.Source.API,
        consent=consent,
        language=language,
    )


@pytest.mark.parametrize("consent", list(CONSENTS), ids=list(CONSENTS))
@pytest.mark.parametrize("count", [1, 3])
def test_one_statement_writes_what_the_general_path_writes(
    monkeypatch, django_capture_on_commit_callbacks, count: int, consent: str
) -> None:
    newsletters = [NewsletterFactory() for _ in range(count)][::-1]  # not in id order

    with django_capture_on_commit_callbacks() as fast_callbacks:
        fast = sign_up("Ann.Fast@Example.org", newsletters, CONSENTS[consent], "uk")
    monkeypatch.setattr(fast_path, "insert_new_address", lambda **kwargs: None)
    with django_capture_on_commit_callbacks() as general_callbacks:
        general = sign_up("Ann.General@Example.org", newsletters, CONSENTS[consent], "uk")

    assert written_for("Ann.Fast@example.org") == written_for("Ann.General@example.org")
    assert len(fast.pending_ids) == len(general.pending_ids) == count
    assert fast.confirmation_email_id is not None
    assert len(fast_callbacks) == len(general_callbacks) == 1  # the email's task, after commit


def test_an_editors_pending_add_writes_what_the_general_path_writes(monkeypatch) -> None:
    newsletters = [NewsletterFactory(), NewsletterFactory()]

    def add(address: str) -> None:
        services.add_by_editor(
            email=address,
            newsletters=newsletters,
            actor="admin:ann",
            consent_basis="Asked at the Kyiv book fair",
            activate=False,
        )

    add("ann.fast@example.org")
    monkeypatch.setattr(fast_path, "insert_new_address", lambda **kwargs: None)
    add("ann.general@example.org")

    fast = written_for("ann.fast@example.org")
    assert fast == written_for("ann.general@example.org")
    assert {kind for _, kind, *_ in fast["consent"]} == {ConsentRecord.Kind.ADMIN}


def test_a_new_address_signs_up_in_one_query(django_assert_num_queries) -> None:
    newsletters = [NewsletterFactory(), NewsletterFactory()]

    with django_assert_num_queries(1):
        result = sign_up("new@example.org", newsletters, CONSENTS["everything"])

    assert OutboundEmail.objects.get().subscriptions.count() == 2
    assert sorted(result.pending_ids) == sorted(Subscription.objects.values_list("pk", flat=True))


INSERTS_A_SUBSCRIBER = f"INSERT INTO {Subscriber._meta.db_table} "


def test_the_statement_is_prepared_once_per_connection_and_reused(settings) -> None:
    settings.PREPARED_STATEMENTS = True
    newsletter = NewsletterFactory()
    before = prepared_runs(INSERTS_A_SUBSCRIBER)

    for n in range(7):
        sign_up(f"reader{n}@example.org", [newsletter], CONSENTS["everything"])

    # One prepared statement ran all seven.
    assert runs_since(before, prepared_runs(INSERTS_A_SUBSCRIBER)) == [7]
    assert Subscriber.objects.count() == 7


def test_preparing_can_be_turned_off_for_a_connection_pooler(settings) -> None:
    settings.PREPARED_STATEMENTS = False
    newsletter = NewsletterFactory()
    before = prepared_runs(INSERTS_A_SUBSCRIBER)

    for n in range(7):
        sign_up(f"pooled{n}@example.org", [newsletter], CONSENTS["plain"])

    assert prepared_runs(INSERTS_A_SUBSCRIBER) == before
    assert Subscriber.objects.count() == 7


def suppress_as_bounced(address: str) -> None:
    suppression.suppress(email=address, reason=SuppressedAddress.Reason.HARD_BOUNCE)


def erase(address: str) -> None:
    SuppressedAddress.objects.create(
        email="",
        email_hash=suppression.address_hash(address),
        reason=SuppressedAddress.Reason.ERASED,
        created_at=timezone.now(),
    )


def lifted_bounce(address: str) -> None:
    suppression.suppress(email=address, reason=SuppressedAddress.Reason.HARD_BOUNCE)
    SuppressedAddress.objects.update(lifted_at=timezone.now() - timedelta(days=1))


@pytest.mark.parametrize(
    ("before", "takes_one_statement"),
    [
        (lambda address: None, True),
        (lambda address: SubscriberFactory(email=address.upper()), False),
        (suppress_as_bounced, False),
        (erase, False),
        (lifted_bounce, True),
    ],
    ids=["new", "known-in-another-case", "bounced", "erased", "bounce-lifted"],
)
def test_only_a_new_unsuppressed_address_takes_the_one_statement(
    before, takes_one_statement: bool
) -> None:
    address = "ann@example.org"
    before(address)

    written = fast_path.insert_new_address(
        address=address,
        newsletter_ids=[NewsletterFactory().pk],
        source=Subscription.Source.FORM,
        actor="reader",
        consent=CONSENTS["plain"],
        consent_kind=ConsentRecord.Kind.SIGNUP,
        language="",
        now=timezone.now(),
    )

    assert (written is not None) == takes_one_statement
    if not takes_one_statement:
        assert not Subscription.objects.exists() and not OutboundEmail.objects.exists()


def test_a_newsletter_without_double_opt_in_takes_the_general_path(monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(fast_path, "insert_new_address", lambda **kwargs: calls.append(kwargs))
    newsletters = [NewsletterFactory(), NewsletterFactory(double_opt_in=False)]

    sign_up("ann@example.org", newsletters, CONSENTS["plain"])

    assert calls == []
    assert sorted(Subscription.objects.values_list("status", flat=True)) == [
        Subscription.Status.ACTIVE,
        Subscription.Status.PENDING,
    ]
