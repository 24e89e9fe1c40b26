"""The export on PostgreSQL: the database writes the CSV itself (COPY ... TO STDOUT),
far faster than building it row by row in Python (BENCHMARKS.md).

It produces the same columns and cells as `exports.export_rows`: a cell a spreadsheet
would run gets a leading apostrophe, timestamps are ISO 8601 in UTC, an IP is just
the address.
"""

from collections.abc import Iterator

from django.db import connection
from django.db.models import QuerySet

from subscriptions.models import Subscription

# The characters csv_cells.csv_safe guards against, as an SQL list.
_FORMULA_STARTS = "'=', '+', '-', '@', chr(9), chr(13)"


def _safe(column: str) -> str:
    quote = "''''"  # SQL for a string holding one apostrophe
    return (
        f"CASE WHEN left({column}, 1) IN ({_FORMULA_STARTS}) "
        f"THEN {quote} || {column} ELSE {column} END"
    )


def _iso(column: str) -> str:
    return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')"""


_SELECT = f"""
SELECT {_safe("s.email")} AS email, {_safe("s.name")} AS name, n.slug AS newsletter,
       sub.status, sub.source, {_iso("su.at")} AS signed_up_at,
       host(su.ip_address) AS signup_ip, {_safe("coalesce(su.consent_text, '')")} AS consent_text,
       {_iso("sub.confirmed_at")} AS confirmed_at, host(co.ip_address) AS confirmation_ip,
       {_iso("sub.unsubscribed_at")} AS unsubscribed_at
FROM subscriptions_subscription sub
JOIN subscriptions_subscriber s ON s.id = sub.subscriber_id
JOIN subscriptions_newsletter n ON n.id = sub.newsletter_id
LEFT JOIN LATERAL (
    SELECT c.at, c.ip_address, c.consent_text FROM subscriptions_consentrecord c
    WHERE c.subscription_id = sub.id AND c.kind <> 'confirmation'
    ORDER BY c.at, c.id LIMIT 1
) su ON true
LEFT JOIN LATERAL (
    SELECT c.ip_address FROM subscriptions_consentrecord c
    WHERE c.subscription_id = sub.id AND c.kind = 'confirmation'
    ORDER BY c.at DESC, c.id DESC LIMIT 1
) co ON true
WHERE sub.id IN ({{chosen}})
ORDER BY sub.id
"""


def copy_chunks(subscriptions: QuerySet[Subscription]) -> Iterator[bytes]:
    """The CSV, header first, in the pieces PostgreSQL sends."""
    chosen, params = subscriptions.order_by().values("pk").query.sql_with_params()
    # `chosen` is the queryset's own compiled SQL; its values stay bound parameters.
    statement = f"COPY ({_SELECT.format(chosen=chosen)}) TO STDOUT WITH (FORMAT csv, HEADER true)"
    with connection.cursor() as cursor, cursor.cursor.copy(statement, params) as copy:
        for block in copy:
            yield bytes(block)
