"""The one-statement claim on PostgreSQL and the ORM's claim give the same answers:
the same copies claimed in the same order (stale ones first), the same readers to send
to, and the same ones skipped with the same reasons."""

from datetime import timedelta

import pytest
from django.utils import timezone

from subscriptions.issues import delivery, services
from subscriptions.models import IssueDelivery, Subscriber, Subscription, SuppressedAddress
from tests.factories import NewsletterFactory
from tests.issue_support import draft, readers

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def scene(prefix: str):
    """An issue started to 40 readers, then: two unsubscribed, one bounced, one
    suppressed, one erased, three copies whose worker died long ago and one another
    worker holds now."""
    newsletter = NewsletterFactory()
    people = readers(newsletter, 40, prefix=prefix)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")
    Subscription.objects.filter(pk__in=[people[3].pk, people[17].pk]).update(status="unsubscribed")
    Subscription.objects.filter(pk=people[25].pk).update(status="bounced")
    SuppressedAddress.objects.create(
        email=people[30].subscriber.email, reason="complaint", created_at=timezone.now()
    )
    Subscriber.objects.filter(pk=people[33].subscriber_id).delete()
    copies = list(IssueDelivery.objects.filter(issue=issue).order_by("id"))
    long_ago = timezone.now() - timedelta(seconds=delivery.LEASE_SECONDS + 5)
    IssueDelivery.objects.filter(pk__in=[c.pk for c in copies[34:37]]).update(
        status="sending", claimed_at=long_ago, attempts=1
    )
    IssueDelivery.objects.filter(pk=copies[38].pk).update(
        status="sending", claimed_at=timezone.now(), attempts=1
    )
    return issue


def claimed_in_batches(issue, prefix: str, claim) -> list[list[tuple[str, str]]]:
    """Each batch's readers, as (address without the scene's prefix, language)."""
    batches = []
    while (batch := claim(issue)) is not None:
        batches.append([(r.email.removeprefix(prefix), r.language) for r in batch])
    return batches


def left_behind(issue, prefix: str) -> list[tuple]:
    return sorted(
        (email.removeprefix(prefix), status, error, attempts)
        for email, status, error, attempts in IssueDelivery.objects.filter(issue=issue).values_list(
            "subscriber__email", "status", "error", "attempts"
        )
    )


def test_the_statement_and_the_orm_claim_alike(monkeypatch):
    monkeypatch.setattr(services, "hand_to_workers", lambda issue_id: None)
    now = timezone.now()
    stale_before = now - timedelta(seconds=delivery.LEASE_SECONDS)
    first, second = scene("statement-"), scene("orm-")

    with_statement = claimed_in_batches(
        first, "statement-", lambda issue: delivery.claim_batch(issue, now=now, size=8)
    )
    with_orm = claimed_in_batches(
        second,
        "orm-",
        lambda issue: (
            delivery._still_reading(rows)
            if (
                rows := delivery._claim_with_the_orm(
                    issue, now=now, stale_before=stale_before, size=8
                )
            )
            else None
        ),
    )

    assert with_statement == with_orm
    assert left_behind(first, "statement-") == left_behind(second, "orm-")
    reasons = {
        error for _, status, error, _ in left_behind(first, "statement-") if status == "skipped"
    }
    assert reasons == {"unsubscribed", "bounced", "suppressed"}
    # The copies whose worker died long ago go in the first batch.
    assert {"35@example.org", "36@example.org"} <= {email for email, _ in with_statement[0]}


def test_erasing_a_person_or_deleting_an_issue_leaves_no_copy_behind(monkeypatch):
    """The copies' keys are not checked by the database; Django's collector removes
    them with what they belong to."""
    from subscriptions.models import Issue
    from subscriptions.privacy import personal_data

    monkeypatch.setattr(services, "hand_to_workers", lambda issue_id: None)
    newsletter = NewsletterFactory()
    people = readers(newsletter, 3)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")
    leaving = people[0].subscriber

    personal_data.erase_subscriber(subscriber_id=leaving.pk, actor="admin:ann")
    assert not IssueDelivery.objects.filter(subscriber_id=leaving.pk).exists()
    assert IssueDelivery.objects.filter(issue=issue).count() == 2

    Issue.objects.filter(pk=issue.pk).delete()
    assert not IssueDelivery.objects.exists()
