"""Every state change of a subscription: sign up, confirm, unsubscribe, preferences.

Each service is one transaction that starts by locking the subscriber's row. That lock
is the rule that makes concurrent requests for one address safe: they queue behind
each other, so fifty simultaneous sign-ups still create one subscriber, one
subscription per newsletter and at most one confirmation email. Each service writes the
event log and, for every email it calls for, an outbox row whose task is enqueued only
after commit.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from subscriptions import archiving, first_signup, languages, outbox, signup_lookups, suppression
from subscriptions.exceptions import AddressErased, UnknownNewsletter
from subscriptions.models import (
    ConsentRecord,
    Newsletter,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.tokens import ConfirmationClaim
from subscriptions.transitions import (
    ConsentContext,
    change_status,
    lock_or_create_subscriber,
    lock_subscribers,
    log_event,
    record_consent,
)
from subscriptions.validation import normalize_email

Status = Subscription.Status
Event = SubscriptionEvent.Kind


@dataclass
class SignupResult:
    subscriber_id: int
    pending_ids: list[int] = field(default_factory=list)
    activated_ids: list[int] = field(default_factory=list)
    confirmation_email_id: int | None = None


@dataclass
class ConfirmResult:
    confirmed: list[Subscription] = field(default_factory=list)
    already_active: list[Subscription] = field(default_factory=list)
    stale: list[Subscription] = field(default_factory=list)


def subscribe(
    *,
    email: str,
    newsletters: Sequence[Newsletter],
    source: str,
    consent: ConsentContext,
    actor: str = "reader",
    language: str = "",
) -> SignupResult:
    """Sign an address up to newsletters; the caller answers the same whatever happened.

    Never downgrades an active subscription. A pending one gets a fresh confirmation
    email unless the per-address cap says no. `language` (one of LANGUAGES) becomes the
    subscriber's: the reader's latest sign-up says which language they read.
    """
    return _sign_up(
        email=email,
        newsletters=newsletters,
        source=source,
        actor=actor,
        consent=consent,
        consent_kind=ConsentRecord.Kind.SIGNUP,
        verified=False,
        language=languages.supported(language) or "",
    )


def add_by_editor(
    *,
    email: str,
    newsletters: Sequence[Newsletter],
    actor: str,
    consent_basis: str,
    activate: bool,
) -> SignupResult:
    """An editor adds an address. Pending sends the usual confirmation email; active
    skips it, records the editor's stated consent basis as the proof, and sends no
    welcome email (such lists usually move over from another system).

    Raises `AddressErased` for a person who asked to be erased: they may come back by
    signing up themselves, but nobody adds them for them.
    """
    if suppression.is_erased(normalize_email(email)):
        raise AddressErased
    return _sign_up(
        email=email,
        newsletters=newsletters,
        source=Subscription.Source.ADMIN,
        actor=actor,
        consent=ConsentContext(consent_text=consent_basis),
        consent_kind=ConsentRecord.Kind.ADMIN,
        verified=activate,
        send_welcome=not activate,
    )


def _sign_up(*, newsletters: Sequence[Newsletter], **details: Any) -> SignupResult:
    """Raises `UnknownNewsletter` for a newsletter deleted or archived since the caller
    looked it up (each process remembers the newsletters for a second,
    signup_lookups.py), having stored nothing; this process forgets its copy."""
    try:
        return _write_sign_up(newsletters=newsletters, **details)
    except UnknownNewsletter:
        signup_lookups.forget_all()
        raise


def _write_sign_up(
    *,
    email: str,
    newsletters: Sequence[Newsletter],
    source: str,
    actor: str,
    consent: ConsentContext,
    consent_kind: str,
    verified: bool,
    send_welcome: bool = True,
    language: str = "",
) -> SignupResult:
    address = normalize_email(email)
    now = timezone.now()
    if (
        connection.vendor == "postgresql"
        and not verified
        and newsletters
        and all(newsletter.double_opt_in for newsletter in newsletters)
    ):
        # A new address (most sign-ups) in one statement; anything else below.
        inserted = first_signup.insert_new_address(
            address=address,
            newsletter_ids=[newsletter.pk for newsletter in newsletters],
            source=source,
            actor=actor,
            consent=consent,
            consent_kind=consent_kind,
            language=language,
            now=now,
        )
        if inserted is not None:
            subscriber_id, outbound_id, pending_ids = inserted
            transaction.on_commit(partial(outbox.enqueue, outbound_id), robust=True)
            return SignupResult(
                subscriber_id=subscriber_id,
                pending_ids=pending_ids,
                confirmation_email_id=outbound_id,
            )
    with transaction.atomic():
        archiving.hold_open_or_refuse(newsletters)
        subscriber = lock_or_create_subscriber(address, language=language)
        if language and subscriber.language != language:
            subscriber.language = language
            subscriber.save(update_fields=["language"])
        existing = {
            s.newsletter_id: s
            for s in Subscription.objects.filter(subscriber=subscriber, newsletter__in=newsletters)
        }
        result = SignupResult(subscriber_id=subscriber.pk)
        to_confirm: list[Subscription] = []
        for newsletter in newsletters:
            subscription = existing.get(newsletter.pk)
            if subscription is not None and subscription.status == Status.ACTIVE:
                continue
            subscription = _start_subscription(
                subscriber,
                newsletter,
                subscription,
                source=source,
                actor=actor,
                now=now,
                verified=verified,
            )
            record_consent(subscription, consent_kind, consent, now)
            if subscription.status == Status.PENDING:
                to_confirm.append(subscription)
                result.pending_ids.append(subscription.pk)
            else:
                result.activated_ids.append(subscription.pk)
                if send_welcome:
                    _queue_welcome_email(subscription, now=now)
        if to_confirm:
            result.confirmation_email_id = _queue_confirmation_email(
                subscriber, to_confirm, actor=actor, now=now
            )
    return result


def confirm_subscriptions(*, claim: ConfirmationClaim, consent: ConsentContext) -> ConfirmResult:
    """Confirm what a confirmation link names. Confirming twice is harmless.

    A subscription confirms only if it is still pending since before the link was
    issued, so an old link cannot resurrect a subscription the reader ended.
    """
    now = timezone.now()
    result = ConfirmResult()
    with transaction.atomic():
        subscriber_ids = set(
            Subscription.objects.filter(pk__in=claim.subscription_ids).values_list(
                "subscriber_id", flat=True
            )
        )
        lock_subscribers(subscriber_ids)
        subscriptions = list(
            Subscription.objects.select_related("newsletter", "subscriber").filter(
                pk__in=claim.subscription_ids
            )
        )
        # An archived newsletter takes no new subscribers, confirmed ones included.
        open_ids = archiving.hold_open({s.newsletter_id for s in subscriptions})
        for subscription in subscriptions:
            if subscription.status == Status.ACTIVE:
                result.already_active.append(subscription)
            elif (
                subscription.status == Status.PENDING
                and subscription.newsletter_id in open_ids
                and _issued_after_pending(claim.issued_at, subscription.pending_since)
            ):
                change_status(subscription, Status.ACTIVE, Event.CONFIRMED, "reader", now)
                record_consent(subscription, ConsentRecord.Kind.CONFIRMATION, consent, now)
                suppression.lift_erasure(subscription.subscriber.email)
                _queue_welcome_email(subscription, now=now)
                result.confirmed.append(subscription)
            else:
                result.stale.append(subscription)
    return result


def resend_confirmation(*, subscription_ids: Iterable[int], actor: str) -> int | None:
    """Queue a new confirmation email for those of the subscriptions still pending.

    Returns the outbox id, or None when nothing is pending or the cap said no.
    """
    now = timezone.now()
    with transaction.atomic():
        subscriber_ids = set(
            Subscription.objects.filter(pk__in=list(subscription_ids)).values_list(
                "subscriber_id", flat=True
            )
        )
        lock_subscribers(subscriber_ids)
        pending = list(
            Subscription.objects.select_related("subscriber").filter(
                pk__in=list(subscription_ids),
                status=Status.PENDING,
                newsletter__archived_at__isnull=True,
            )
        )
        if not pending or len(subscriber_ids) != 1:
            return None
        return _queue_confirmation_email(pending[0].subscriber, pending, actor=actor, now=now)


def unsubscribe(*, subscription_id: int, actor: str, via: str) -> bool:
    """End a subscription; returns whether anything changed (a repeat changes nothing).

    Bounced and complained subscriptions keep their stronger status.
    """
    now = timezone.now()
    with transaction.atomic():
        subscriber_id = (
            Subscription.objects.filter(pk=subscription_id)
            .values_list("subscriber_id", flat=True)
            .first()
        )
        if subscriber_id is None:
            return False
        lock_subscribers({subscriber_id})
        subscription = Subscription.objects.get(pk=subscription_id)
        if subscription.status not in (Status.ACTIVE, Status.PENDING):
            return False
        change_status(
            subscription, Status.UNSUBSCRIBED, Event.UNSUBSCRIBED, actor, now, detail={"via": via}
        )
        return True


def update_preferences(
    *,
    subscriber_id: int,
    wanted_newsletter_ids: set[int],
    offered_newsletters: Sequence[Newsletter],
    consent: ConsentContext,
) -> None:
    """Apply the preferences page: start what is ticked, end what is not.

    The page is reached through a link mailed to the address, so ticking a newsletter
    there needs no further confirmation email.
    """
    now = timezone.now()
    with transaction.atomic():
        (subscriber,) = lock_subscribers({subscriber_id})
        existing = {s.newsletter_id: s for s in Subscription.objects.filter(subscriber=subscriber)}
        open_ids = archiving.hold_open({n.pk for n in offered_newsletters})
        for newsletter in offered_newsletters:
            if newsletter.pk not in open_ids:
                continue  # archived since the page was read: left as it was
            subscription = existing.get(newsletter.pk)
            wanted = newsletter.pk in wanted_newsletter_ids
            is_on = subscription is not None and subscription.status in (
                Status.ACTIVE,
                Status.PENDING,
            )
            if wanted and (subscription is None or subscription.status != Status.ACTIVE):
                subscription = _start_subscription(
                    subscriber,
                    newsletter,
                    subscription,
                    source=Subscription.Source.PREFERENCES,
                    actor="reader",
                    now=now,
                    verified=True,
                )
                record_consent(subscription, ConsentRecord.Kind.SIGNUP, consent, now)
                _queue_welcome_email(subscription, now=now)
            elif not wanted and is_on:
                change_status(
                    subscription,
                    Status.UNSUBSCRIBED,
                    Event.UNSUBSCRIBED,
                    "reader",
                    now,
                    detail={"via": "preferences"},
                )


# --- internals ---------------------------------------------------------------------------


def _start_subscription(
    subscriber: Subscriber,
    newsletter: Newsletter,
    subscription: Subscription | None,
    *,
    source: str,
    actor: str,
    now: datetime,
    verified: bool = False,
) -> Subscription:
    needs_confirmation = newsletter.double_opt_in and not verified
    target = Status.PENDING if needs_confirmation else Status.ACTIVE
    if subscription is None:
        subscription = Subscription.objects.create(
            subscriber=subscriber,
            newsletter=newsletter,
            status=target,
            source=source,
            pending_since=now if target == Status.PENDING else None,
            confirmed_at=now if target == Status.ACTIVE else None,
        )
        kind = Event.SUBSCRIBED if target == Status.PENDING else Event.ACTIVATED
        log_event(subscription, kind, "", target, actor, now, {"source": source})
        return subscription
    if subscription.status == Status.PENDING and target == Status.PENDING:
        log_event(subscription, Event.RESUBMITTED, Status.PENDING, Status.PENDING, actor, now)
        return subscription
    subscription.source = source
    kind = Event.SUBSCRIBED if target == Status.PENDING else Event.ACTIVATED
    change_status(subscription, target, kind, actor, now, detail={"source": source})
    return subscription


def _issued_after_pending(issued_at: datetime, pending_since: datetime | None) -> bool:
    # Tokens carry whole seconds, so compare at that precision.
    return pending_since is not None and pending_since.replace(microsecond=0) <= issued_at


def _queue_confirmation_email(
    subscriber: Subscriber, subscriptions: list[Subscription], *, actor: str, now: datetime
) -> int | None:
    """Queue one confirmation email for every subscription of this subscriber still
    pending, unless a cap says no.

    Two caps: a re-submission asking only for what the latest email (sent within
    CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS) already covers sends nothing new, while a
    sign-up to another newsletter does get its email; and no address gets more than
    CONFIRMATION_EMAILS_PER_DAY, whoever asks (subscription bombing). Each email
    covers all that is pending, so a sign-up the daily cap held back is confirmed by
    the next email the reader gets. Called with the subscriber row locked, so the
    counts below cannot race.
    """
    if suppression.is_suppressed(subscriber.email, confirmation=True):
        _log_not_sent(subscriptions, Event.EMAIL_SUPPRESSED, actor, now, {"kind": "confirmation"})
        return None
    recent = OutboundEmail.objects.filter(
        subscriber=subscriber,
        kind=OutboundEmail.Kind.CONFIRMATION,
        created_at__gte=now - timedelta(days=1),
    ).order_by("-created_at", "-pk")
    sent_last_24h = recent.count()
    latest = recent.first()
    min_interval = timedelta(seconds=settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS)
    asked_again_for_the_same = (
        latest is not None
        and now - latest.created_at < min_interval
        and {s.pk for s in subscriptions} <= set(latest.subscriptions.values_list("pk", flat=True))
    )
    if asked_again_for_the_same or sent_last_24h >= settings.CONFIRMATION_EMAILS_PER_DAY:
        _log_not_sent(
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
        kind=OutboundEmail.Kind.CONFIRMATION,
        subscriber=subscriber,
        subscriptions=pending,
        now=now,
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


def _log_not_sent(
    subscriptions: list[Subscription], kind: str, actor: str, now: datetime, detail: dict
) -> None:
    for subscription in subscriptions:
        log_event(subscription, kind, subscription.status, subscription.status, actor, now, detail)


def _queue_welcome_email(subscription: Subscription, *, now: datetime) -> None:
    if not subscription.newsletter.send_welcome_email:
        return
    if suppression.is_suppressed(subscription.subscriber.email):
        _log_not_sent([subscription], Event.EMAIL_SUPPRESSED, "system", now, {"kind": "welcome"})
        return
    outbox.queue_email(
        kind=OutboundEmail.Kind.WELCOME,
        subscriber=subscription.subscriber,
        subscriptions=[subscription],
        now=now,
    )
