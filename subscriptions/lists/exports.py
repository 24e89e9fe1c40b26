"""Exports: one CSV row per subscription, with its proof of consent, streamed from the
database in chunks so memory stays flat whatever the list's size.

The columns follow the way Mailchimp exports a list (address, status, opt-in time and
IP, confirmation time and IP), in our names; the file imports back as it is: the
import reads `email`, `name`, `status`, `signed_up_at`, `signup_ip` and `consent_text`
(as the consent basis) and ignores the rest.
"""

import csv
from collections.abc import Iterator
from datetime import datetime

from django.db import connection
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import StreamingHttpResponse

from subscriptions.lists.csv_cells import EchoBuffer, csv_safe
from subscriptions.lists.exports_copy import copy_chunks
from subscriptions.models import ConsentRecord, Subscriber, Subscription

COLUMNS = [
    "email",
    "name",
    "newsletter",
    "status",
    "source",
    "signed_up_at",
    "signup_ip",
    "consent_text",
    "confirmed_at",
    "confirmation_ip",
    "unsubscribed_at",
]
_CHUNK = 5_000


def subscriptions_of(
    subscribers: QuerySet[Subscriber],
    *,
    newsletter_id: int | str | None = None,
    status: str | None = None,
) -> QuerySet[Subscription]:
    """What exporting these people means: their subscriptions, only those to the given
    newsletter and in the given status when the list was filtered by them (a list of
    one newsletter's readers exports that newsletter, not everything they read)."""
    chosen = subscribers.order_by().values("pk")
    # The list's newsletter filter asks for distinct people; an IN needs no DISTINCT, and
    # PostgreSQL's hash of one over a third of a million ids (underestimated) spilled
    # into 300,000 batches: five minutes before the first row, against half a second.
    chosen.query.distinct, chosen.query.distinct_fields = False, ()
    subscriptions = Subscription.objects.filter(subscriber__in=chosen)
    if newsletter_id:
        subscriptions = subscriptions.filter(newsletter_id=newsletter_id)
    if status:
        subscriptions = subscriptions.filter(status=status)
    return subscriptions


def export_rows(subscriptions: QuerySet[Subscription]) -> Iterator[list[str]]:
    """The header, then a row per subscription; nothing is read until iterated."""
    yield COLUMNS
    signup = (
        ConsentRecord.objects.filter(subscription=OuterRef("pk"))
        .exclude(kind=ConsentRecord.Kind.CONFIRMATION)
        .order_by("at", "pk")
    )
    confirmation = ConsentRecord.objects.filter(
        subscription=OuterRef("pk"), kind=ConsentRecord.Kind.CONFIRMATION
    ).order_by("-at", "-pk")
    rows = (
        subscriptions.annotate(
            signup_at=Subquery(signup.values("at")[:1]),
            signup_ip=Subquery(signup.values("ip_address")[:1]),
            signup_text=Subquery(signup.values("consent_text")[:1]),
            confirmation_ip=Subquery(confirmation.values("ip_address")[:1]),
        )
        .order_by("pk")
        .values_list(
            "subscriber__email",
            "subscriber__name",
            "newsletter__slug",
            "status",
            "source",
            "signup_at",
            "signup_ip",
            "signup_text",
            "confirmed_at",
            "confirmation_ip",
            "unsubscribed_at",
        )
    )
    for email, name, slug, status, source, signed, ip, text, confirmed, cip, left in rows.iterator(
        chunk_size=_CHUNK
    ):
        yield [
            csv_safe(email),
            csv_safe(name),
            slug,
            status,
            source,
            _iso(signed),
            ip or "",
            csv_safe(text or ""),
            _iso(confirmed),
            cip or "",
            _iso(left),
        ]


def csv_chunks(subscriptions: QuerySet[Subscription]) -> Iterator[bytes]:
    """The CSV file in pieces, header first: written by PostgreSQL itself there (see
    `exports_copy`), by Python row by row elsewhere."""
    if connection.vendor == "postgresql":
        yield from copy_chunks(subscriptions)
        return
    writer = csv.writer(EchoBuffer())
    for row in export_rows(subscriptions):
        yield writer.writerow(row).encode()


def csv_response(subscriptions: QuerySet[Subscription], filename: str) -> StreamingHttpResponse:
    """A streamed download: each piece is sent as the database hands it over."""
    response = StreamingHttpResponse(
        csv_chunks(subscriptions), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _iso(value: datetime | None) -> str:
    # Always with microseconds, as PostgreSQL's COPY writes them (isoformat() drops a
    # zero fraction), so both paths write the same cell.
    return value.isoformat(timespec="microseconds") if value else ""
