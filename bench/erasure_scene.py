"""The erasure benchmark's work inside Django (`bench.erasure` runs it in the bench
database's processes): build a database of a million readers, then time erasures of
people among them against its two baselines.

The people erased are made first, through the services as readers and editors make
them, so their rows lie among the oldest and coldest of each table; the other readers
follow set-based, a row per reader in every table that grows with readers.
"""

import json
import time
from collections.abc import Callable

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from subscriptions.mail import suppression
from subscriptions.models import (
    DeliveryEvent,
    GoalMilestone,
    Member,
    MembershipGoal,
    Newsletter,
    OutboundEmail,
    PrivacyEvent,
    Subscriber,
    Subscription,
    SuppressedAddress,
)
from subscriptions.privacy import personal_data
from subscriptions.signup import services
from subscriptions.signup.transitions import lock_subscribers
from subscriptions.tokens import confirmation_token

TABLES = [
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
]
# A subscription each, with its consent, its event, the welcome email and its delivery;
# a member, a suppression entry (half of them lifted) and a privacy request for one in
# ten; the admin's history of one in five. Keys that grow with the id where the app's
# would be random anyway (event ids), so the build writes its indexes in order.
FILL = [
    """INSERT INTO subscriptions_subscriber (email, name, attributes, language, created_at)
       SELECT 'reader' || g || '@example' || g %% 500 || '.org', 'Reader ' || g, '{}', '',
           now() FROM generate_series(1, %(readers)s) g""",
    """INSERT INTO subscriptions_subscription
           (subscriber_id, newsletter_id, status, source, created_at, updated_at)
       SELECT id, %(daily)s, 'active', 'import', now(), now()
       FROM subscriptions_subscriber WHERE email LIKE 'reader%%'""",
    """INSERT INTO subscriptions_consentrecord
           (subscription_id, kind, at, user_agent, page_url, consent_text)
       SELECT id, 'import', now(), '', '', 'Consented elsewhere.'
       FROM subscriptions_subscription WHERE source = 'import'""",
    """INSERT INTO subscriptions_subscriptionevent
           (subscription_id, kind, from_status, to_status, actor, detail, at)
       SELECT id, 'activated', '', 'active', 'import', '{}', now()
       FROM subscriptions_subscription WHERE source = 'import'""",
    """INSERT INTO subscriptions_outboundemail (kind, status, to_email, subscriber_id,
           attempts, last_error, esp_message_id, created_at, sent_at, claimed_by_task)
       SELECT 'welcome', 'sent', email, id, 1, '', '', now(), now(), ''
       FROM subscriptions_subscriber WHERE email LIKE 'reader%%'""",
    """INSERT INTO subscriptions_outboundemail_subscriptions (outboundemail_id, subscription_id)
       SELECT o.id, s.id FROM subscriptions_outboundemail o
       JOIN subscriptions_subscription s ON s.subscriber_id = o.subscriber_id
       WHERE o.to_email LIKE 'reader%%'""",
    """INSERT INTO subscriptions_deliveryevent (esp, event_id, kind, recipient, occurred_at,
           received_at, outbound_email_id, subscription_ids, description, mta_response,
           processed_at)
       SELECT 'Postmark', lpad(id::text, 12, '0'), 'delivered', to_email, now(), now(), id,
           '[]', '', '', now() FROM subscriptions_outboundemail WHERE to_email LIKE 'reader%%'""",
    """INSERT INTO subscriptions_member (email, name, status, tier, currency, source,
           external_id, created_at, updated_at)
       SELECT email, name, 'active', 'Supporter', 'EUR', 'stripe', 'sub_' || id, now(), now()
       FROM subscriptions_subscriber WHERE email LIKE 'reader%%' AND id %% 10 = 0""",
    """INSERT INTO subscriptions_suppressedaddress (email, email_hash, reason, note,
           created_at, lifted_at, lifted_by, lift_reason)
       SELECT email, '', 'hard_bounce', '', now(), CASE WHEN id %% 20 = 1 THEN now() END,
           '', '' FROM subscriptions_subscriber WHERE email LIKE 'reader%%' AND id %% 10 = 1""",
    """INSERT INTO subscriptions_privacyevent (subscriber_id, email_hash, kind, actor, at)
       SELECT id, encode(sha256(convert_to(lower(email), 'UTF8')), 'hex'), 'exported',
           'reader', now()
       FROM subscriptions_subscriber WHERE email LIKE 'reader%%' AND id %% 10 = 2""",
    """INSERT INTO django_admin_log (action_time, user_id, content_type_id, object_id,
           object_repr, action_flag, change_message)
       SELECT now(), %(editor)s, CASE WHEN id %% 2 = 0 THEN %(subscriber_type)s
           ELSE %(subscription_type)s END, id::text, 'edited', 2, ''
       FROM subscriptions_subscription WHERE source = 'import' AND id %% 5 = 0""",
]


def build(readers: int, people: int, bare: int) -> None:
    """`people` people with something in every table an erasure touches, `bare`
    subscribers with nothing else (the floor's), then `readers` others."""
    editor = get_user_model().objects.create_user(username="editor", email="ed@example.org")
    daily = Newsletter.objects.create(name="Daily", slug="daily")
    weekly = Newsletter.objects.create(name="Weekly", slug="weekly")
    milestone = GoalMilestone.objects.create(goal=MembershipGoal.objects.create(), threshold=1)
    for n in range(people):
        _make_person(person(n), [daily, weekly], editor.pk, milestone)
    Subscriber.objects.bulk_create(Subscriber(email=f"bare{n}@example.com") for n in range(bare))
    with transaction.atomic(), connection.cursor() as cursor:
        # The rows are consistent by construction; replica mode skips their foreign-key
        # checks (triggers), which would take longer than the rest of the build.
        cursor.execute("SET LOCAL session_replication_role = replica")
        for statement in FILL:
            cursor.execute(
                statement,
                {
                    "readers": readers,
                    "daily": daily.pk,
                    "editor": editor.pk,
                    "subscriber_type": ContentType.objects.get_for_model(Subscriber).pk,
                    "subscription_type": ContentType.objects.get_for_model(Subscription).pk,
                },
            )
    with connection.cursor() as cursor:
        # What autovacuum would have done by now on a database that grew to this size.
        for table in TABLES:
            cursor.execute(f"ANALYZE {table}")
        cursor.execute(f"SELECT {', '.join(f'(SELECT count(*) FROM {t})' for t in TABLES)}")
        print(json.dumps(dict(zip(TABLES, cursor.fetchone(), strict=True))))


def person(n: int) -> str:
    # The domain as the normaliser stores it; the local part as typed, in mixed case.
    return f"Person{n}.Reader@example.org"


def _make_person(
    email: str, newsletters: list[Newsletter], editor_id: int, milestone: GoalMilestone
) -> None:
    result = services.subscribe(
        email=email,
        newsletters=newsletters,
        source="form",
        consent=services.ConsentContext(ip_address="203.0.113.7", user_agent="Bench/1.0"),
    )
    claim = confirmation_token.read_token(confirmation_token.make_token(result.pending_ids))
    services.confirm_subscriptions(claim=claim, consent=services.ConsentContext())
    subscriber = Subscriber.objects.get(pk=result.subscriber_id)
    now = timezone.now()
    for n, outbound in enumerate(OutboundEmail.objects.filter(subscriber=subscriber)):
        DeliveryEvent.objects.create(
            esp="Postmark",
            event_id=f"{email}-{n}",
            kind=DeliveryEvent.Kind.DELIVERED,
            recipient=email.lower(),
            occurred_at=now,
            received_at=now,
            outbound_email=outbound,
        )
    Member.objects.create(email=email, name="A Person", status="active", source="stripe")
    suppression.suppress(email=email, reason=SuppressedAddress.Reason.MANUAL, note="asked")
    LogEntry.objects.log_actions(editor_id, [subscriber], CHANGE, change_message="edited")
    # A milestone notice to an editor who reads under the same address.
    OutboundEmail.objects.create(
        kind=OutboundEmail.Kind.MILESTONE, to_email=email, milestone=milestone, created_at=now
    )


def erase_with_iexact(*, subscriber_id: int, actor: str) -> None:
    """The erasure as it looked the person up before issue 15, the baseline: Django's
    `__iexact`, which is UPPER() = UPPER() on PostgreSQL and no index serves. (It skips
    keeping an entry in force on the list, two indexed statements either way.)"""
    with transaction.atomic():
        (subscriber,) = lock_subscribers({subscriber_id})
        email = subscriber.email
        digest = suppression.address_hash(email)
        SuppressedAddress.objects.filter(email__iexact=email).update(
            email="", email_hash=digest, note=""
        )
        DeliveryEvent.objects.filter(recipient__iexact=email).delete()
        OutboundEmail.objects.filter(to_email__iexact=email).delete()
        Member.objects.filter(email__iexact=email).update(email="", name="")
        personal_data._forget_admin_history(subscriber)
        PrivacyEvent.objects.create(
            email_hash=digest, kind=PrivacyEvent.Kind.ERASED, actor=actor, at=timezone.now()
        )
        subscriber.delete()


def delete_by_primary_key(*, subscriber_id: int, actor: str) -> None:
    """The floor: one subscriber row with nothing else, deleted by primary key through
    the ORM (which still asks every related table for its rows) in a transaction."""
    with transaction.atomic():
        Subscriber.objects.filter(pk=subscriber_id).delete()


def measure(runs: int, before_runs: int) -> None:
    """Time `runs` erasures and floor deletions, alternating, and `before_runs` of the
    erasure before issue 15 among them; print the milliseconds of each, what was left
    behind and the subscribers left, as JSON."""
    ids = dict(Subscriber.objects.filter(email__startswith="Person").values_list("email", "pk"))
    people = iter(ids[person(n)] for n in range(len(ids)))
    floor_ids = iter(
        Subscriber.objects.filter(email__startswith="bare").values_list("pk", flat=True)
    )
    timings: dict[str, list[float]] = {"floor": [], "erasure": [], "before": []}

    def timed(name: str, erase: Callable[..., object], subscriber_id: int) -> None:
        started = time.perf_counter()
        erase(subscriber_id=subscriber_id, actor="bench")
        timings[name].append((time.perf_counter() - started) * 1000)

    # One of each first, untimed: the connection's first statements and caches.
    personal_data.erase_subscriber(subscriber_id=next(people), actor="bench")
    delete_by_primary_key(subscriber_id=next(floor_ids), actor="bench")
    for n in range(runs):
        timed("floor", delete_by_primary_key, next(floor_ids))
        timed("erasure", personal_data.erase_subscriber, next(people))
        if n % max(1, runs // before_runs) == 0 and len(timings["before"]) < before_runs:
            timed("before", erase_with_iexact, next(people))
    left = Subscriber.objects.count()
    print(json.dumps({"timings": timings, "problems": _left_behind(list(ids)), "left": left}))


def _left_behind(addresses: list[str]) -> list[str]:
    """What the erasures should have removed and did not (all were erased)."""
    lowered = [address.lower() for address in addresses]
    problems = [f"{a} is not erased on the list" for a in addresses if not suppression.is_erased(a)]
    for model, field in [
        (Subscriber, "email"),
        (OutboundEmail, "to_email"),
        (DeliveryEvent, "recipient"),
        (Member, "email"),
        (SuppressedAddress, "email"),
    ]:
        # One pass over each table for all the addresses.
        found = model._default_manager.alias(address=Lower(field)).filter(address__in=lowered)
        if count := found.count():
            problems.append(f"{model.__name__}.{field} still holds {count} of them")
    return problems
