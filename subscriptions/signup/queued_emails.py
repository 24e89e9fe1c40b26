"""The emails a subscription's state change calls for, and the rules that hold them
back: the suppression list, and the caps on confirmation emails per mailbox. Called
by the services inside their transaction, with the subscriber's row locked."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from subscriptions.mail import outbox, suppression
from subscriptions.models import OutboundEmail, Subscriber, Subscription, SubscriptionEvent
from subscriptions.platform import leases
from subscriptions.platform.leases import Namespace
from subscriptions.signup.addresses import mailbox_key
from subscriptions.signup.transitions import log_event

Status = Subscription.Status
Event = SubscriptionEvent.Kind


def queue_confirmation_email(
    subscriber: Subscriber,
    subscriptions: list[Subscription],
    *,
    actor: str,
    now: datetime,
    kind: str = OutboundEmail.Kind.CONFIRMATION,
) -> int | None:
    """Queue one confirmation email (or, `kind`, a reactivation after a bounce or
    complaint) for every subscription of this subscriber still pending, unless the
    suppression list or a cap says no; returns the outbox id.

    Two caps: a re-submission asking only for what the latest email (sent within
    CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS) already covers sends nothing new, while a
    sign-up to another newsletter does get its email; and no address gets more than
    CONFIRMATION_EMAILS_PER_DAY to one mailbox (its address's variants included), whoever
    asks and through whichever way in (subscription bombing). Each email
    covers all that is pending, so a sign-up the daily cap held back is confirmed by
    the next email the reader gets. Called with the subscriber row locked, so the
    counts below cannot race.
    """
    if suppression.is_suppressed(subscriber.email, kind=kind):
        log_not_sent(subscriptions, Event.EMAIL_SUPPRESSED, actor, now, {"kind": kind})
        return None
    mailbox = mailbox_key(subscriber.email)
    # Other subscribers share the mailbox ("ann+1@", "a.nn@gmail"): their sign-ups
    # queue behind this one, so the count below cannot race theirs.
    leases.hold_until_commit(Namespace.CONFIRMATION_MAILBOX, int(mailbox[:8], 16))
    day = OutboundEmail.objects.filter(
        kind__in=OutboundEmail.CONFIRMATION_KINDS, created_at__gte=now - timedelta(days=1)
    )
    # Confirmations queued before the outbox kept mailboxes count for their subscriber.
    sent_last_24h = day.filter(Q(mailbox_key=mailbox) | Q(subscriber=subscriber)).count()
    latest = day.filter(subscriber=subscriber).order_by("-created_at", "-pk").first()
    min_interval = timedelta(seconds=settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS)
    asked_again_for_the_same = (
        latest is not None
        and now - latest.created_at < min_interval
        and {s.pk for s in subscriptions} <= set(latest.subscriptions.values_list("pk", flat=True))
    )
    if asked_again_for_the_same or sent_last_24h >= settings.CONFIRMATION_EMAILS_PER_DAY:
        log_not_sent(
            subscriptions, Event.CONFIRMATION_CAPPED, actor, now, {"sent_last_24h": sent_last_24h}
        )
        return None
    # Not those of a newsletter archived since: the email would ask to confirm them.
    pending = list(
        Subscription.objects.filter(
            subscriber=subscriber, status=Status.PENDING, newsletter__archived_at__isnull=True
        ).order_by("pk")
    )
    outbound = outbox.queue_email(
        kind=kind,
        subscriber=subscriber,
        subscriptions=pending,
        now=now,
        mailbox_key=mailbox,
    )
    for subscription in pending:
        log_event(
            subscription,
            Event.CONFIRMATION_QUEUED,
            subscription.status,
            subscription.status,
            actor,
            now,
            {"outbound_email_id": outbound.pk},
        )
    return outbound.pk


def log_not_sent(
    subscriptions: list[Subscription], kind: str, actor: str, now: datetime, detail: dict
) -> None:
    for subscription in subscriptions:
        log_event(subscription, kind, subscription.status, subscription.status, actor, now, detail)


def queue_welcome_email(subscription: Subscription, *, now: datetime) -> None:
    if not subscription.newsletter.send_welcome_email:
        return
    if suppression.is_suppressed(subscription.subscriber.email):
        log_not_sent([subscription], Event.EMAIL_SUPPRESSED, "system", now, {"kind": "welcome"})
        return
    outbox.queue_email(
        kind=OutboundEmail.Kind.WELCOME,
        subscriber=subscription.subscriber,
        subscriptions=[subscription],
        now=now,
    )
