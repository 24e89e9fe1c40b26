"""Erasing or exporting one person on a big database reads every large table through an
index: the erasure holds the person's row lock for its whole transaction, and a
sequential scan of a million-row table there would keep it for seconds."""

import re
from collections.abc import Callable

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from subscriptions.mail import suppression
from subscriptions.models import (
    DeliveryEvent,
    GoalMilestone,
    Member,
    MembershipGoal,
    OutboundEmail,
    Subscriber,
    Subscription,
    SuppressedAddress,
)
from subscriptions.privacy import personal_data
from subscriptions.signup import services
from subscriptions.tokens import confirmation_token
from tests.factories import NewsletterFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
ROWS = 100_000
ANN = "Ann.Reader@example.org"
EDITOR = "editor@example.org"

# Every table the erasure reads or writes that grows with the readers.
BIG_TABLES = {
    "subscriptions_subscriber",
    "subscriptions_subscription",
    "subscriptions_consentrecord",
    "subscriptions_subscriptionevent",
    "subscriptions_outboundemail",
    "subscriptions_outboundemail_subscriptions",
    "subscriptions_deliveryevent",
    "subscriptions_member",
    "subscriptions_suppressedaddress",
    "subscriptions_privacyevent",
    "django_admin_log",
}

# Set-based: a row per filler reader in each table, each statement one pass. The
# fillers' addresses share a domain, so none of them is the person erased; their keys
# grow with the row, so each index is written in order.
FILL = [
    """INSERT INTO subscriptions_subscriber (email, name, attributes, language, created_at)
       SELECT 'filler' || lpad(g::text, 6, '0') || '@example.net', '', '{}', '', now()
       FROM generate_series(1, %(rows)s) g""",
    """INSERT INTO subscriptions_subscription
           (subscriber_id, newsletter_id, status, source, created_at, updated_at)
       SELECT id, %(newsletter)s, 'active', 'import', now(), now()
       FROM subscriptions_subscriber WHERE email LIKE 'filler%%'""",
    """INSERT INTO subscriptions_consentrecord
           (subscription_id, kind, at, user_agent, page_url, consent_text)
       SELECT id, 'import', now(), '', '', 'filler' FROM subscriptions_subscription
       WHERE newsletter_id = %(newsletter)s""",
    """INSERT INTO subscriptions_subscriptionevent
           (subscription_id, kind, from_status, to_status, actor, detail, at)
       SELECT id, 'activated', '', 'active', 'import', '{}', now()
       FROM subscriptions_subscription WHERE newsletter_id = %(newsletter)s""",
    """INSERT INTO subscriptions_outboundemail (kind, status, to_email, subscriber_id,
           attempts, last_error, esp_message_id, created_at, claimed_by_task)
       SELECT 'welcome', 'sent', email, id, 1, '', '', now(), ''
       FROM subscriptions_subscriber WHERE email LIKE 'filler%%'""",
    """INSERT INTO subscriptions_outboundemail_subscriptions (outboundemail_id, subscription_id)
       SELECT o.id, s.id FROM subscriptions_outboundemail o
       JOIN subscriptions_subscription s ON s.subscriber_id = o.subscriber_id
       WHERE s.newsletter_id = %(newsletter)s""",
    """INSERT INTO subscriptions_deliveryevent (esp, event_id, kind, recipient, occurred_at,
           received_at, outbound_email_id, subscription_ids, description, mta_response)
       SELECT 'Postmark', lpad(id::text, 12, '0'), 'delivered', to_email, now(), now(), id,
           '[]', '', '' FROM subscriptions_outboundemail WHERE to_email LIKE 'filler%%'""",
    """INSERT INTO subscriptions_member (email, name, status, tier, currency, source,
           external_id, created_at, updated_at)
       SELECT email, '', 'active', '', '', 'import', '', now(), now()
       FROM subscriptions_subscriber WHERE email LIKE 'filler%%'""",
    """INSERT INTO subscriptions_suppressedaddress (email, email_hash, reason, note,
           created_at, lifted_at, lifted_by, lift_reason)
       SELECT 'filler' || lpad(g::text, 6, '0') || '@example.net', '', 'hard_bounce', '', now(),
           CASE WHEN g %% 2 = 0 THEN now() END, '', ''
       FROM generate_series(1, %(rows)s) g""",
    """INSERT INTO subscriptions_privacyevent (subscriber_id, email_hash, kind, actor, at)
       SELECT id, lpad(id::text, 64, '0'), 'exported', 'reader', now()
       FROM subscriptions_subscriber WHERE email LIKE 'filler%%'""",
    """INSERT INTO django_admin_log (action_time, user_id, content_type_id, object_id,
           object_repr, action_flag, change_message)
       SELECT now(), %(editor)s, %(subscriber_type)s, subscriber_id::text, 'filler', 2, ''
       FROM subscriptions_subscription WHERE newsletter_id = %(newsletter)s AND id %% 2 = 0
       UNION ALL
       SELECT now(), %(editor)s, %(subscription_type)s, id::text, 'filler', 2, ''
       FROM subscriptions_subscription WHERE newsletter_id = %(newsletter)s AND id %% 2 = 1""",
]


@pytest.fixture
def ann(django_user_model) -> Subscriber:
    """The person, with a row in every table an erasure touches, among 100,000 others."""
    editor = django_user_model.objects.create_user(username="ed", email=EDITOR)
    newsletter = NewsletterFactory()
    with connection.cursor() as cursor:
        # The fillers are consistent by construction: their foreign keys go unchecked
        # (replica mode fires no triggers), else the deferred checks of a million rows
        # would take longer than the test. Django's own rows below are checked.
        cursor.execute("SET LOCAL session_replication_role = replica")
        for statement in FILL:
            cursor.execute(
                statement,
                {
                    "rows": ROWS,
                    "newsletter": newsletter.pk,
                    "editor": editor.pk,
                    "subscriber_type": ContentType.objects.get_for_model(Subscriber).pk,
                    "subscription_type": ContentType.objects.get_for_model(Subscription).pk,
                },
            )
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
    subscriber = sign_up(ANN, [newsletter, NewsletterFactory()])
    outbound = OutboundEmail.objects.filter(subscriber=subscriber).first()
    DeliveryEvent.objects.create(
        esp="Postmark",
        event_id="ann",
        kind=DeliveryEvent.Kind.SOFT_BOUNCE,
        recipient=ANN.lower(),
        occurred_at=timezone.now(),
        received_at=timezone.now(),
        outbound_email=outbound,
    )
    Member.objects.create(email=ANN, name="Ann Reader", status="active", source="admin")
    suppression.suppress(email=ANN, reason=SuppressedAddress.Reason.MANUAL)
    LogEntry.objects.log_actions(editor.pk, [subscriber], CHANGE, change_message="edited")
    # A milestone notice to an editor who reads under the same address: no subscriber.
    milestone = GoalMilestone.objects.create(goal=MembershipGoal.objects.create(), threshold=1)
    OutboundEmail.objects.create(
        kind=OutboundEmail.Kind.MILESTONE,
        to_email=ANN,
        milestone=milestone,
        created_at=timezone.now(),
    )
    with connection.cursor() as cursor:
        # A smaller sample than the default: enough to tell one address from 100,000.
        cursor.execute("SET LOCAL default_statistics_target = 10")
        for table in sorted(BIG_TABLES):
            cursor.execute(f"ANALYZE {table}")
    return subscriber


def sign_up(email: str, newsletters) -> Subscriber:
    result = services.subscribe(
        email=email,
        newsletters=newsletters,
        source="form",
        consent=services.ConsentContext(ip_address="203.0.113.77", user_agent="Test/1.0"),
    )
    claim = confirmation_token.read_token(confirmation_token.make_token(result.pending_ids))
    services.confirm_subscriptions(claim=claim, consent=services.ConsentContext())
    return Subscriber.objects.get(pk=result.subscriber_id)


def sequential_scans(run: Callable[[], object]) -> str:
    """Run `run`, then EXPLAIN every read, update and delete it sent: each plan that reads
    a big table in full, with its statement ("" when there is none)."""
    with CaptureQueriesContext(connection) as captured:
        run()
    statements = [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))
    ]
    assert statements
    found = []
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            if set(re.findall(r"Seq Scan on (\w+)", plan)) & BIG_TABLES:
                found.append(f"{sql}\n{plan}")
    return "\n\n".join(found)


def test_an_export_and_an_erasure_read_no_big_table_in_full(ann) -> None:
    scans = sequential_scans(
        lambda: personal_data.export_data(subscriber_id=ann.pk, actor="admin:ed")
    )
    assert not scans, scans

    # The list's other lookups by address (every send asks), lifted entries among them.
    scans = sequential_scans(lambda: suppression.is_suppressed(ANN))
    assert not scans, scans

    scans = sequential_scans(
        lambda: personal_data.erase_subscriber(subscriber_id=ann.pk, actor="admin:ed")
    )
    assert not scans, scans

    # And it still erased the person everywhere.
    assert not Subscriber.objects.filter(pk=ann.pk).exists()
    assert not Subscription.objects.filter(subscriber_id=ann.pk).exists()
    assert not OutboundEmail.objects.filter(to_email__iexact=ANN).exists()
    assert not DeliveryEvent.objects.filter(recipient__iexact=ANN).exists()
    assert not Member.objects.filter(email__iexact=ANN).exists()
    assert not SuppressedAddress.objects.filter(email__iexact=ANN).exists()
    assert suppression.is_erased(ANN)
    assert not LogEntry.objects.filter(object_repr__iexact=ANN).exists()
    assert Subscriber.objects.count() == ROWS
    assert OutboundEmail.objects.count() == ROWS
