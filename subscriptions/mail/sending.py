"""Taking an outbox row to send it: the send lease, the claim, and what the message
needs (the subscriber, whether the address is suppressed, the subscriptions it is
about), held for the duration of the send.

A worker does this for every sign-up's email, so on PostgreSQL it is one statement:
done with the ORM it took eight round trips and most of a send's time, and at a couple
of hundred sign-ups a second the worker fell behind. The rules are `outbox.claim`'s,
`leases.lease`'s and `suppression.is_suppressed`'s (tests/test_sending.py holds the
statement to them); elsewhere (SQLite) those functions do it themselves.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from subscriptions.mail import outbox, suppression
from subscriptions.models import (
    Newsletter,
    OutboundEmail,
    Subscriber,
    Subscription,
    SuppressedAddress,
)
from subscriptions.platform import leases
from subscriptions.platform.leases import Namespace
from subscriptions.platform.prepared import prepared_cursor

Status = OutboundEmail.Status


@dataclass
class Claimed:
    outbound: OutboundEmail  # with its subscriber, when it has one
    suppressed: bool
    # The subscriptions a confirmation or welcome email is about, by newsletter position.
    subscriptions: list[Subscription] = field(default_factory=list)


@contextmanager
def claimed_for_sending(outbound_email_id: int, *, task_id: str) -> Iterator[Claimed | None]:
    """The row claimed for sending under its send lease, or None when another task has
    the lease or the row is not to be sent (see `outbox.claim`). The lease is given up
    when the block ends."""
    if connection.vendor != "postgresql":
        with outbox.send_lease(outbound_email_id) as held:
            outbound = outbox.claim(outbound_email_id, task_id=task_id) if held else None
            yield None if outbound is None else _completed(outbound)
        return
    held, claimed = _claim_under_lease(outbound_email_id, task_id[:255])
    try:
        yield claimed
    finally:
        if held:
            leases.release(Namespace.OUTBOUND_EMAIL, outbound_email_id)


def _completed(outbound: OutboundEmail) -> Claimed:
    """What the statement reads along with the claim, read with the ORM."""
    return Claimed(
        outbound=outbound,
        suppressed=suppression.is_suppressed(outbound.to_email, kind=outbound.kind),
        subscriptions=list(
            outbound.subscriptions.select_related("newsletter").order_by(
                "newsletter__position", "pk"
            )
        ),
    )


def _columns(model: type[Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


_OUTBOX = _columns(OutboundEmail)
_SUBSCRIBER = _columns(Subscriber)
_SUBSCRIPTION = _columns(Subscription)
_NEWSLETTER = _columns(Newsletter)
_SUPPRESSED = SuppressedAddress._meta.db_table


def _select(alias: str, columns: list[str]) -> str:
    return ", ".join(f"{alias}.{column}" for column in columns)


# Which entries stop which kind of email: `suppression.reasons_that_stop`, written out
# as a CASE over the claimed row's kind, each list a parameter.
_STOPPING_REASONS = (
    "CASE claimed.kind "
    + " ".join(
        f"WHEN %(kind_{n})s THEN %(stopped_by_{n})s::text[]"
        for n in range(len(suppression.stopping_kinds()))
    )
    + " ELSE %(stopped_by_any)s::text[] END"
)


def _stopping_parameters() -> dict[str, Any]:
    parameters: dict[str, Any] = {"stopped_by_any": sorted(suppression.EVERY_REASON)}
    for n, (kind, reasons) in enumerate(sorted(suppression.stopping_kinds().items())):
        parameters[f"kind_{n}"] = kind
        parameters[f"stopped_by_{n}"] = sorted(reasons)
    return parameters


# One row per subscription the email covers (one row, with no subscription, for the
# others). The lease comes first and the claim only if it was free, as `lease` then
# `claim` would; the suppression test is `is_suppressed`'s, for addresses in ASCII
# (their lower-case form, whose SHA-256 an erasure leaves behind, is the same in Python
# and PostgreSQL); the caller asks `is_suppressed` itself for any other.
_CLAIM = f"""
WITH lease AS (
    SELECT pg_try_advisory_lock(%(namespace)s, %(key)s) AS held
), claimed AS (
    UPDATE {OutboundEmail._meta.db_table} SET status = %(sending)s, claimed_at = %(now)s,
        claimed_by_task = %(task)s, next_attempt_at = NULL, attempts = attempts + 1
    WHERE id = %(id)s AND (SELECT held FROM lease) AND (
        status = %(queued)s
        OR (status = %(sending)s AND claimed_at <= %(stale_before)s)
        OR (status = %(sending)s AND %(task)s <> '' AND claimed_by_task = %(task)s)
    )
    RETURNING {", ".join(_OUTBOX)}
)
SELECT lease.held,
    EXISTS (
        SELECT 1 FROM {_SUPPRESSED} entry
        WHERE entry.lifted_at IS NULL
        AND entry.reason = ANY({_STOPPING_REASONS})
        AND (
            (LOWER(entry.email) = LOWER(claimed.to_email) AND entry.email <> '')
            OR (entry.email_hash = encode(sha256(convert_to(LOWER(claimed.to_email), 'UTF8')),
                'hex') AND entry.email_hash <> '')
        )
    ),
    {_select("claimed", _OUTBOX)}, {_select("person", _SUBSCRIBER)},
    {_select("covered", _SUBSCRIPTION)}, {_select("newsletter", _NEWSLETTER)}
FROM lease
LEFT JOIN claimed ON true
LEFT JOIN {Subscriber._meta.db_table} person ON person.id = claimed.subscriber_id
LEFT JOIN {OutboundEmail.subscriptions.through._meta.db_table} link
    ON link.outboundemail_id = claimed.id
LEFT JOIN {Subscription._meta.db_table} covered ON covered.id = link.subscription_id
LEFT JOIN {Newsletter._meta.db_table} newsletter ON newsletter.id = covered.newsletter_id
ORDER BY newsletter.position, covered.id
"""  # noqa: S608 - table and column names from the models; values are parameters


def _claim_under_lease(outbound_email_id: int, task_id: str) -> tuple[bool, Claimed | None]:
    """(whether the lease was taken, the claim or None)."""
    now = timezone.now()
    with prepared_cursor() as cursor:
        cursor.execute(
            _CLAIM,
            {
                "namespace": Namespace.OUTBOUND_EMAIL,
                "key": leases.folded_key(outbound_email_id),
                "id": outbound_email_id,
                "task": task_id,
                "now": now,
                "stale_before": now - timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS),
                "queued": Status.QUEUED,
                "sending": Status.SENDING,
                **_stopping_parameters(),
            },
        )
        rows = cursor.fetchall()
    held, suppressed = rows[0][0], rows[0][1]
    values = _Values(rows[0], start=2)
    outbound_values = values.take(_OUTBOX)
    if not held or outbound_values[0] is None:
        return held, None
    # PostgreSQL hands back what the fields hold (jsonb as parsed JSON included).
    outbound = OutboundEmail.from_db(connection.alias, _OUTBOX, outbound_values)
    subscriber_values = values.take(_SUBSCRIBER)
    if subscriber_values[0] is not None:
        outbound.subscriber = Subscriber.from_db(connection.alias, _SUBSCRIBER, subscriber_values)
    if not outbound.to_email.isascii():
        suppressed = suppression.is_suppressed(outbound.to_email, kind=outbound.kind)
    return held, Claimed(outbound, suppressed, _subscriptions(rows))


def _subscriptions(rows: list[tuple]) -> list[Subscription]:
    covered = []
    for row in rows:
        values = _Values(row, start=2 + len(_OUTBOX) + len(_SUBSCRIBER))
        subscription_values = values.take(_SUBSCRIPTION)
        if subscription_values[0] is None:
            continue
        subscription = Subscription.from_db(connection.alias, _SUBSCRIPTION, subscription_values)
        subscription.newsletter = Newsletter.from_db(
            connection.alias, _NEWSLETTER, values.take(_NEWSLETTER)
        )
        covered.append(subscription)
    return covered


class _Values:
    """Consecutive slices of a row, one model's columns at a time."""

    def __init__(self, row: tuple, *, start: int) -> None:
        self._row = row
        self._at = start

    def take(self, columns: list[str]) -> tuple:
        taken = self._row[self._at : self._at + len(columns)]
        self._at += len(columns)
        return taken
