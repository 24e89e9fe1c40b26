"""The worker takes a row to send in one statement on PostgreSQL
(subscriptions/mail/sending.py): the send lease, the claim, the subscriber, whether the address is
suppressed and the subscriptions the email is about. Each answer is the one the ORM's
functions (`leases.lease`, `outbox.claim`, `suppression.is_suppressed`) give."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from subscriptions.mail import outbox, sending, suppression
from subscriptions.models import OutboundEmail, Subscription, SuppressedAddress
from subscriptions.platform import leases
from subscriptions.platform.leases import Namespace
from subscriptions.signup import services
from tests.factories import NewsletterFactory
from tests.prepared_statements import prepared_runs, runs_since

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
Status = OutboundEmail.Status


def queued_confirmation(email: str = "ann@example.org", newsletters=None) -> OutboundEmail:
    result = services.subscribe(
        email=email,
        newsletters=newsletters or [NewsletterFactory()],
        source=Subscription.Source.FORM,
        consent=services.ConsentContext(),
    )
    return OutboundEmail.objects.get(pk=result.confirmation_email_id)


def as_left(outbound: OutboundEmail, status: str, *, task: str = "", age: int = 0) -> None:
    OutboundEmail.objects.filter(pk=outbound.pk).update(
        status=status,
        claimed_by_task=task,
        claimed_at=timezone.now() - timedelta(seconds=age) if status == Status.SENDING else None,
    )


def the_statement_claims(outbound: OutboundEmail, task: str) -> bool:
    with sending.claimed_for_sending(outbound.pk, task_id=task) as claimed:
        return claimed is not None


STALE = 10_000


@pytest.mark.parametrize(
    ("left", "task", "claimed"),
    [
        ((Status.QUEUED, "", 0), "task-1", True),
        ((Status.SENDING, "task-2", 5), "task-1", False),  # another task is sending it
        ((Status.SENDING, "task-1", 5), "task-1", True),  # redelivered: its own claim
        ((Status.SENDING, "task-2", STALE), "task-1", True),  # abandoned
        ((Status.SENDING, "", 5), "", False),  # no task id is nobody's own claim
        ((Status.SENT, "", 0), "task-1", False),
        ((Status.FAILED, "", 0), "task-1", False),
        ((Status.SUPPRESSED, "", 0), "task-1", False),
    ],
)
def test_the_statement_claims_what_outbox_claim_claims(left, task, claimed) -> None:
    status, owner, age = left
    by_statement = queued_confirmation("one@example.org")
    by_orm = queued_confirmation("two@example.org")
    for outbound in (by_statement, by_orm):
        as_left(outbound, status, task=owner, age=age)

    assert the_statement_claims(by_statement, task) == claimed
    assert (outbox.claim(by_orm.pk, task_id=task) is not None) == claimed

    by_statement.refresh_from_db()
    by_orm.refresh_from_db()
    compared = ("status", "attempts", "claimed_by_task", "next_attempt_at")
    assert [getattr(by_statement, name) for name in compared] == [
        getattr(by_orm, name) for name in compared
    ]


def test_a_row_whose_lease_another_session_holds_is_neither_claimed_nor_changed() -> None:
    outbound = queued_confirmation()
    taken, release = threading.Event(), threading.Event()

    def hold_the_lease() -> None:
        with leases.lease(Namespace.OUTBOUND_EMAIL, outbound.pk) as held:
            assert held
            taken.set()
            release.wait(timeout=10)
        connection.close()

    holder = threading.Thread(target=hold_the_lease)
    holder.start()
    try:
        assert taken.wait(timeout=10)
        assert not the_statement_claims(outbound, "task-1")
    finally:
        release.set()
        holder.join(timeout=10)

    outbound.refresh_from_db()
    assert (outbound.status, outbound.attempts) == (Status.QUEUED, 0)


def test_the_lease_is_given_up_when_the_send_is_done() -> None:
    outbound = queued_confirmation()
    with sending.claimed_for_sending(outbound.pk, task_id="task-1") as claimed:
        assert claimed is not None

    with leases.lease(Namespace.OUTBOUND_EMAIL, outbound.pk) as held:
        assert held


def erased(email: str) -> None:
    SuppressedAddress.objects.create(
        email="",
        email_hash=suppression.address_hash(email),
        reason=SuppressedAddress.Reason.ERASED,
        created_at=timezone.now(),
    )


def bounced(email: str) -> None:
    suppression.suppress(email=email.upper(), reason=SuppressedAddress.Reason.HARD_BOUNCE)


def bounce_lifted(email: str) -> None:
    bounced(email)
    SuppressedAddress.objects.update(lifted_at=timezone.now())


def listed_as(reason: str):
    def before(email: str) -> None:
        suppression.suppress(email=email.upper(), reason=reason)

    before.__name__ = reason
    return before


@pytest.mark.parametrize(
    "before",
    [
        lambda email: None,
        erased,
        bounced,
        bounce_lifted,
        *(listed_as(reason) for reason in SuppressedAddress.Reason.values if reason != "erased"),
    ],
    ids=lambda f: f.__name__,
)
@pytest.mark.parametrize("kind", OutboundEmail.Kind.values)
@pytest.mark.parametrize("email", ["Ann.Reader@example.org", "ann@xn--e1afmkfd.xn--j1amh"])
def test_the_statement_says_suppressed_when_is_suppressed_does(before, kind, email) -> None:
    """The rule of which entries stop which kind has one home
    (`suppression.reasons_that_stop`); the statement is built from it, for every kind
    and every reason."""
    outbound = queued_confirmation(email)
    OutboundEmail.objects.filter(pk=outbound.pk).update(kind=kind)
    before(email)

    with sending.claimed_for_sending(outbound.pk, task_id="t") as claimed:
        assert claimed.suppressed == suppression.is_suppressed(email, kind=kind)


def test_the_claim_carries_the_subscriber_and_the_subscriptions_by_newsletter_position() -> None:
    newsletters = [NewsletterFactory(position=3), NewsletterFactory(position=1)]
    outbound = queued_confirmation(newsletters=newsletters)
    expected = list(
        outbound.subscriptions.select_related("newsletter").order_by("newsletter__position")
    )

    with sending.claimed_for_sending(outbound.pk, task_id="t") as claimed:
        carried = claimed.subscriptions
        assert claimed.outbound.subscriber.email == "ann@example.org"

    assert [s.pk for s in carried] == [s.pk for s in expected]
    assert [s.newsletter.name for s in carried] == [s.newsletter.name for s in expected]
    cadence = carried[0].newsletter.get_cadence_display()
    assert cadence == expected[0].newsletter.get_cadence_display()


@pytest.mark.parametrize("kind", [OutboundEmail.Kind.CONFIRMATION, OutboundEmail.Kind.WELCOME])
def test_an_address_beyond_ascii_is_checked_by_is_suppressed_itself(settings, kind) -> None:
    settings.EMAIL_ALLOW_SMTPUTF8 = True
    email = "олена@example.org"
    outbound = queued_confirmation(email)
    OutboundEmail.objects.filter(pk=outbound.pk).update(kind=kind)
    erased(email)

    with sending.claimed_for_sending(outbound.pk, task_id="t") as claimed:
        # An erasure blocks everything but a confirmation the person asked for.
        assert claimed.suppressed == (kind == OutboundEmail.Kind.WELCOME)


def test_the_claim_is_a_prepared_statement_the_worker_reuses(settings) -> None:
    settings.PREPARED_STATEMENTS = True
    emails = [queued_confirmation(f"reader{n}@example.org") for n in range(3)]
    before = prepared_runs("pg_try_advisory_lock")

    for outbound in emails:
        with sending.claimed_for_sending(outbound.pk, task_id="task-1") as claimed:
            assert claimed.outbound.pk == outbound.pk

    assert runs_since(before, prepared_runs("pg_try_advisory_lock")) == [3]
