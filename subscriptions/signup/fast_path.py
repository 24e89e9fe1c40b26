"""A new address's sign-up in one SQL statement (PostgreSQL).

Most sign-ups come from an address we have never seen, and for those the general path
(`services._sign_up`: lock the subscriber, read its subscriptions and its recent
confirmation emails, then write) knows the answer before it asks: no subscription,
nothing sent, nothing to cap. So the whole write is one statement of chained inserts:
the subscriber, a pending subscription per newsletter with its event and proof of
consent, and the confirmation email in the outbox with its event per subscription,
exactly the rows the general path writes. One round trip instead of about twenty, and
the slowest part of a sign-up is gone.

The statement inserts nothing unless the address is new, on no suppression list of any
kind, and its mailbox has had no confirmation email for a day (another variant of it,
"ann+1@" for "ann@", may have: then the daily cap per mailbox has counting to do): its
subscriber insert is `ON CONFLICT DO NOTHING` on the address's unique index, so a
second sign-up of the same new address waits for the first to commit and then finds it
taken (as the general path's row lock would make it wait); and it takes the mailbox's
lock without waiting (a sign-up of another variant holding it sends this one to the
general path, which waits for it and counts). Nor unless every newsletter is still
there and not archived; it holds them so until commit, as `archiving.hold_open` does, so
an archive waits for this sign-up. When nothing was inserted the caller takes the
general path, which handles everything else (and refuses a newsletter deleted or
archived meanwhile).
"""

from datetime import datetime, timedelta

from subscriptions.mail.suppression import address_hash
from subscriptions.models import (
    ConsentRecord,
    Newsletter,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from subscriptions.platform.leases import Namespace, folded_key
from subscriptions.platform.prepared import prepared_cursor
from subscriptions.signup.addresses import mailbox_key
from subscriptions.signup.transitions import ConsentContext

Status = Subscription.Status
Event = SubscriptionEvent.Kind

_STATEMENT = f"""
WITH mailbox AS (
    -- First, and without waiting: see the module's docstring.
    SELECT pg_try_advisory_xact_lock(%(mailbox_lock)s, %(mailbox_lock_key)s) AS free
), open_newsletter AS (
    SELECT id FROM {Newsletter._meta.db_table}
    WHERE id = ANY(%(newsletter_ids)s::bigint[]) AND archived_at IS NULL
    ORDER BY id
    FOR KEY SHARE
), subscriber AS (
    INSERT INTO {Subscriber._meta.db_table} (email, name, attributes, language, created_at)
    SELECT %(email)s::text, '', '{{}}'::jsonb, %(language)s::text, %(now)s::timestamptz
    -- Each test in the words of its partial unique index, so that index answers it.
    WHERE NOT EXISTS (
        SELECT 1 FROM {SuppressedAddress._meta.db_table}
        WHERE LOWER(email) = LOWER(%(email)s::text) AND email <> '' AND lifted_at IS NULL
    ) AND NOT EXISTS (
        SELECT 1 FROM {SuppressedAddress._meta.db_table}
        WHERE email_hash = %(hash)s::text AND email_hash <> '' AND lifted_at IS NULL
    ) AND NOT EXISTS (
        -- In the words of the mailbox index's condition, so that index answers it.
        SELECT 1 FROM {OutboundEmail._meta.db_table}
        WHERE kind IN ({", ".join(f"'{kind}'" for kind in OutboundEmail.CONFIRMATION_KINDS)})
        AND mailbox_key <> '' AND mailbox_key = %(mailbox)s::text
        AND created_at >= %(day_ago)s::timestamptz
    ) AND NOT EXISTS (
        SELECT 1 FROM unnest(%(newsletter_ids)s::bigint[]) AS wanted(id)
        WHERE wanted.id NOT IN (SELECT id FROM open_newsletter)
    ) AND (SELECT free FROM mailbox)
    ON CONFLICT (LOWER(email)) DO NOTHING
    RETURNING id
), subscription AS (
    INSERT INTO {Subscription._meta.db_table}
        (subscriber_id, newsletter_id, status, source, created_at, pending_since, updated_at)
    SELECT subscriber.id, wanted.id, '{Status.PENDING}', %(source)s::text,
        %(now)s::timestamptz, %(now)s::timestamptz, %(now)s::timestamptz
    FROM subscriber, unnest(%(newsletter_ids)s::bigint[]) WITH ORDINALITY AS wanted(id, n)
    ORDER BY wanted.n
    RETURNING id
), outbound AS (
    INSERT INTO {OutboundEmail._meta.db_table}
        (kind, status, to_email, mailbox_key, subscriber_id, attempts, last_error,
         esp_message_id, created_at, claimed_by_task)
    SELECT '{OutboundEmail.Kind.CONFIRMATION}', '{OutboundEmail.Status.QUEUED}', %(email)s::text,
        %(mailbox)s::text, id, 0, '', '', %(now)s::timestamptz, ''
    FROM subscriber
    RETURNING id
), logged AS (
    -- One insert, in the general path's order: each sign-up, then each email queued.
    INSERT INTO {SubscriptionEvent._meta.db_table}
        (subscription_id, kind, from_status, to_status, actor, detail, at)
    SELECT subscription_id, kind, from_status, '{Status.PENDING}', %(actor)s::text, detail,
        %(now)s::timestamptz
    FROM (
        SELECT 1 AS step, id AS subscription_id, '{Event.SUBSCRIBED}' AS kind,
            '' AS from_status, jsonb_build_object('source', %(source)s::text) AS detail
        FROM subscription
        UNION ALL
        SELECT 2, subscription.id, '{Event.CONFIRMATION_QUEUED}', '{Status.PENDING}',
            jsonb_build_object('outbound_email_id', outbound.id)
        FROM subscription, outbound
    ) AS entries
    ORDER BY step, subscription_id
), consent AS (
    INSERT INTO {ConsentRecord._meta.db_table}
        (subscription_id, kind, at, ip_address, user_agent, page_url, consent_text)
    SELECT id, %(consent_kind)s::text, %(now)s::timestamptz, %(ip)s::inet, %(user_agent)s::text,
        %(page_url)s::text, %(consent_text)s::text
    FROM subscription
), covered AS (
    INSERT INTO {OutboundEmail.subscriptions.through._meta.db_table}
        (outboundemail_id, subscription_id)
    SELECT outbound.id, subscription.id FROM outbound, subscription
)
SELECT subscriber.id, outbound.id, (SELECT array_agg(id ORDER BY id) FROM subscription)
FROM subscriber, outbound
"""  # noqa: S608 - table names from the models; every value is a bound parameter


def insert_new_address(
    *,
    address: str,
    newsletter_ids: list[int],
    source: str,
    actor: str,
    consent: ConsentContext,
    consent_kind: str,
    language: str,
    now: datetime,
) -> tuple[int, int, list[int]] | None:
    """Sign a new, unsuppressed address up to double opt-in newsletters in one
    statement: (subscriber id, confirmation email id, subscription ids), or None when
    the address is known or suppressed, or a newsletter is gone or archived, and
    nothing was written.

    The caller enqueues the email after commit."""
    mailbox = mailbox_key(address)
    with prepared_cursor() as cursor:
        cursor.execute(
            _STATEMENT,
            {
                "email": address,
                "hash": address_hash(address),
                "mailbox": mailbox,
                "mailbox_lock": Namespace.CONFIRMATION_MAILBOX,
                "mailbox_lock_key": folded_key(int(mailbox[:8], 16)),
                "day_ago": now - timedelta(days=1),
                "language": language,
                "now": now,
                "source": source,
                "actor": actor[:200],
                "newsletter_ids": newsletter_ids,
                "ip": consent.ip_address or None,
                "user_agent": consent.user_agent[:500],
                "page_url": consent.page_url[:2000],
                "consent_text": str(consent.consent_text),
                "consent_kind": consent_kind,
            },
        )
        row = cursor.fetchone()
    if row is None:
        return None
    subscriber_id, outbound_id, subscription_ids = row
    return subscriber_id, outbound_id, list(subscription_ids)
