"""The reader's preferences page: what a link to it may change, and the changes.

A preferences link is mailed to the address, so while it is fresh
(PREFERENCES_LINK_MAX_AGE_DAYS) it stands for the reader: ticking a newsletter starts it
with no further email. Older, or from before links carried a date, it may only take
away: leaving stays one click for good (RFC 8058), while adding asks for a fresh link,
mailed to the address, so a newsletter forwarded long ago cannot turn every newsletter on
for its reader.

While the address's mail is stopped by a bounce or a complaint, a tick cannot simply
make a subscription active: nothing would arrive. The ticked newsletters wait as pending
and a reactivation email (a confirmation the suppression list lets through) goes to the
address; confirming it lifts the stop. An editor's own stop holds; the page says so.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from django.db import transaction
from django.utils import timezone

from subscriptions.mail import outbox, suppression
from subscriptions.models import (
    ConsentRecord,
    Newsletter,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.signup import archiving, queued_emails
from subscriptions.signup.transitions import (
    ConsentContext,
    change_status,
    lock_subscribers,
    log_event,
    record_consent,
    start_subscription,
)

Status = Subscription.Status
Event = SubscriptionEvent.Kind
Reason = suppression.Reason

# Fresh links a reader may have mailed a day: enough for a lost email or two.
FRESH_LINKS_PER_DAY = 3


class MailStopped(Enum):
    """Why no mail reaches the address now, as the page tells the reader."""

    REFUSED = "refused"  # the mail server refused our messages
    COMPLAINED = "complained"  # an email of ours was marked as spam
    BY_EDITOR = "by_editor"  # the newsroom stopped it


def mail_stopped(subscriber: Subscriber) -> MailStopped | None:
    reason = suppression.reason_in_force(subscriber.email)
    if reason == Reason.MANUAL:
        return MailStopped.BY_EDITOR
    if reason == Reason.COMPLAINT:
        return MailStopped.COMPLAINED
    if reason in suppression.UNDELIVERABLE:
        return MailStopped.REFUSED
    return None


@dataclass
class PreferencesOutcome:
    activated: list[int] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)
    # Waiting for the reactivation email to be confirmed.
    awaiting_confirmation: list[int] = field(default_factory=list)
    reactivation_email_id: int | None = None
    # Ticks the link could not act on: it is too old, or an editor stopped the mail.
    not_added: list[int] = field(default_factory=list)


def update_preferences(
    *,
    subscriber_id: int,
    wanted_newsletter_ids: set[int],
    offered_newsletters: Sequence[Newsletter],
    consent: ConsentContext,
    may_add: bool,
) -> PreferencesOutcome:
    """Apply the page: end what is unticked; start what is ticked, if the link `may_add`
    (see the module's docstring for how, while the address's mail is stopped)."""
    now = timezone.now()
    outcome = PreferencesOutcome()
    with transaction.atomic():
        (subscriber,) = lock_subscribers({subscriber_id})
        stopped = mail_stopped(subscriber)
        existing = {s.newsletter_id: s for s in Subscription.objects.filter(subscriber=subscriber)}
        # Leaving is always allowed; a newsletter archived since the page was read takes
        # no one new (see `archiving`).
        open_ids = archiving.hold_open({n.pk for n in offered_newsletters})
        for newsletter in offered_newsletters:
            subscription = existing.get(newsletter.pk)
            status = subscription.status if subscription is not None else None
            wanted = newsletter.pk in wanted_newsletter_ids
            if (
                subscription is not None
                and not wanted
                and status in (Status.ACTIVE, Status.PENDING)
            ):
                change_status(
                    subscription,
                    Status.UNSUBSCRIBED,
                    Event.UNSUBSCRIBED,
                    "reader",
                    now,
                    detail={"via": "preferences"},
                )
                outcome.removed.append(subscription.pk)
            elif not wanted or status == Status.ACTIVE or newsletter.pk not in open_ids:
                continue
            elif not may_add or stopped is MailStopped.BY_EDITOR:
                outcome.not_added.append(newsletter.pk)
            elif stopped is not None:
                subscription = _await_reactivation(subscriber, newsletter, subscription, now)
                record_consent(subscription, ConsentRecord.Kind.SIGNUP, consent, now)
                outcome.awaiting_confirmation.append(subscription.pk)
            else:
                subscription = start_subscription(
                    subscriber,
                    newsletter,
                    subscription,
                    source=Subscription.Source.PREFERENCES,
                    actor="reader",
                    now=now,
                    verified=True,
                )
                record_consent(subscription, ConsentRecord.Kind.SIGNUP, consent, now)
                queued_emails.queue_welcome_email(subscription, now=now)
                outcome.activated.append(subscription.pk)
        if outcome.awaiting_confirmation:
            pending = list(Subscription.objects.filter(pk__in=outcome.awaiting_confirmation))
            outcome.reactivation_email_id = queued_emails.queue_confirmation_email(
                subscriber,
                pending,
                actor="reader",
                now=now,
                kind=OutboundEmail.Kind.REACTIVATION,
            )
    return outcome


def _await_reactivation(
    subscriber: Subscriber,
    newsletter: Newsletter,
    subscription: Subscription | None,
    now: datetime,
) -> Subscription:
    """Pending until the reactivation email is confirmed, whatever the newsletter's own
    opt-in: the address must show it takes our mail again."""
    detail = {"source": Subscription.Source.PREFERENCES, "reactivation": True}
    if subscription is None:
        subscription = Subscription.objects.create(
            subscriber=subscriber,
            newsletter=newsletter,
            status=Status.PENDING,
            source=Subscription.Source.PREFERENCES,
            pending_since=now,
        )
        log_event(subscription, Event.SUBSCRIBED, "", Status.PENDING, "reader", now, detail)
    elif subscription.status != Status.PENDING:
        subscription.source = Subscription.Source.PREFERENCES
        change_status(subscription, Status.PENDING, Event.SUBSCRIBED, "reader", now, detail)
    return subscription


class FreshLink(Enum):
    SENT = "sent"
    # Today's share went out already; the reader is told to look for those.
    CAPPED = "capped"
    # The address's mail server refuses our mail: no link can reach it.
    UNDELIVERABLE = "undeliverable"


def send_fresh_link(*, subscriber_id: int) -> FreshLink:
    """Mail a fresh preferences link to the address (the page's link was too old to add
    newsletters)."""
    now = timezone.now()
    kind = OutboundEmail.Kind.PREFERENCES_LINK
    with transaction.atomic():
        (subscriber,) = lock_subscribers({subscriber_id})
        if suppression.is_suppressed(subscriber.email, kind=kind):
            return FreshLink.UNDELIVERABLE
        sent_today = OutboundEmail.objects.filter(
            subscriber=subscriber, kind=kind, created_at__gte=now - timedelta(days=1)
        ).count()
        if sent_today >= FRESH_LINKS_PER_DAY:
            return FreshLink.CAPPED
        outbox.queue_email(kind=kind, subscriber=subscriber, subscriptions=[], now=now)
    return FreshLink.SENT
