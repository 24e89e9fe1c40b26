"""A batch of an issue's copies claimed in one statement on PostgreSQL, with what
sending them needs (each reader's subscription to the newsletter, address and language).

Done with the ORM it took four round trips, two of them with lists of a thousand ids,
a fifth of a batch's time; the rows are `delivery._claim_with_the_orm`'s
(tests/test_issue_claims.py holds the two to the same answers), and who still reads is
decided from them in one place (`delivery._still_reading`).
"""

from datetime import datetime
from typing import NamedTuple

from django.db import connection

from subscriptions.models import Issue, IssueDelivery, Subscriber, Subscription

_COPIES = IssueDelivery._meta.db_table
Copy = IssueDelivery.Status


class Row(NamedTuple):
    delivery_id: int
    subscriber_id: int
    # None when the subscription (or its person) is gone.
    subscription_id: int | None
    status: str | None
    email: str | None
    language: str


# Copies whose claim is older than the lease first, then queued ones, each in id order
# (two ordered index scans), locked with SKIP LOCKED so other workers take other rows.
_CLAIM = f"""
WITH stale AS (
    SELECT id FROM {_COPIES}
    WHERE issue_id = %(issue)s AND status = %(sending)s AND claimed_at < %(stale_before)s
    ORDER BY id LIMIT %(size)s FOR UPDATE SKIP LOCKED
), queued AS (
    SELECT id FROM {_COPIES}
    WHERE issue_id = %(issue)s AND status = %(queued)s
    ORDER BY id LIMIT %(size)s FOR UPDATE SKIP LOCKED
), chosen AS (
    SELECT id FROM (
        SELECT id, 0 AS rank FROM stale UNION ALL SELECT id, 1 FROM queued
    ) candidates ORDER BY rank, id LIMIT %(size)s
), claimed AS (
    UPDATE {_COPIES} claimed_copy SET status = %(sending)s, claimed_at = %(now)s,
        attempts = claimed_copy.attempts + 1
    FROM chosen WHERE claimed_copy.id = chosen.id
    RETURNING claimed_copy.id, claimed_copy.subscriber_id
)
SELECT claimed.id, claimed.subscriber_id, subscription.id, subscription.status,
    person.email, COALESCE(person.language, '')
FROM claimed
LEFT JOIN {Subscriber._meta.db_table} person ON person.id = claimed.subscriber_id
LEFT JOIN {Subscription._meta.db_table} subscription
    ON subscription.subscriber_id = claimed.subscriber_id
    AND subscription.newsletter_id = %(newsletter)s
ORDER BY claimed.id
"""  # noqa: S608 - table names from the models; values are parameters


def claim(issue: Issue, *, now: datetime, stale_before: datetime, size: int) -> list[Row]:
    with connection.cursor() as cursor:
        cursor.execute(
            _CLAIM,
            {
                "issue": issue.pk,
                "newsletter": issue.newsletter_id,
                "now": now,
                "stale_before": stale_before,
                "size": size,
                "queued": Copy.QUEUED,
                "sending": Copy.SENDING,
            },
        )
        return [Row(*row) for row in cursor.fetchall()]


_COLUMNS = {field.attname for field in IssueDelivery._meta.concrete_fields}


def update(delivery_ids: list[int], values: dict[str, object]) -> None:
    """Set `values` on the copies with these ids, the ids as one array parameter."""
    unknown = set(values) - _COLUMNS
    if unknown:
        raise ValueError(f"not columns of {_COPIES}: {sorted(unknown)}")
    assignments = ", ".join(f"{column} = %s" for column in values)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_COPIES} SET {assignments} WHERE id = ANY(%s)",  # noqa: S608 - checked names
            [*values.values(), delivery_ids],  # type: ignore[list-item]
        )
