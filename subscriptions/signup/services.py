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
from datetime import datetime
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from subscriptions import languages
from subscriptions.exceptions import AddressErased, UnknownNewsletter
from subscriptions.mail import outbox, suppression
from subscriptions.models import (
    ConsentRecord,
    Newsletter,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.signup import archiving, fast_path, lookups, queued_emails
from subscriptions.signup.addresses import normalize_email
from subscriptions.signup.transitions import (
    ConsentContext,
    change_status,
    lock_or_create_subscriber,
    lock_subscribers,
    record_consent,
    start_subscription,
)
from subscriptions.tokens import ConfirmationClaim

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
    lookups.py), having stored nothing; this process forgets its copy."""
    try:
        return _write_sign_up(newsletters=newsletters, **details)
    except UnknownNewsletter:
        lookups.forget_all()
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
        inserted = fast_path.insert_new_address(
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
            subscription = start_subscription(
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
                    queued_emails.queue_welcome_email(subscription, now=now)
        if to_confirm:
            result.confirmation_email_id = queued_emails.queue_confirmation_email(
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
                if claim.reactivation:
                    # The reactivation email reached them and they pressed the button:
                    # the address takes our mail again.
                    suppression.lift_after_reactivation(subscription.subscriber.email)
                queued_emails.queue_welcome_email(subscription, now=now)
                result.confirmed.append(subscription)
            else:
                result.stale.append(subscription)
    return result


def resend_confirmation(*, subscription_ids: Iterable[int], actor: str) -> int | None:
    """Queue a new confirmation email for those of the subscriptions still pending.

    Returns the outbox id, or None when nothing is pending or the cap said no.
    """
    now = timezone.now()
    # Read once: a generator would be empty the second time.
    wanted = list(subscription_ids)
    with transaction.atomic():
        subscriber_ids = set(
            Subscription.objects.filter(pk__in=wanted).values_list("subscriber_id", flat=True)
        )
        lock_subscribers(subscriber_ids)
        pending = list(
            Subscription.objects.select_related("subscriber").filter(
                pk__in=wanted,
                status=Status.PENDING,
                newsletter__archived_at__isnull=True,
            )
        )
        if not pending or len(subscriber_ids) != 1:
            return None
        return queued_emails.queue_confirmation_email(
            pending[0].subscriber, pending, actor=actor, now=now
        )


def unsubscribe(*, subscription_id: int, actor: str, via: str, issue_id: int | None = None) -> bool:
    """End a subscription; returns whether anything changed (a repeat changes nothing).
    `issue_id`: the issue whose link the reader followed, for that issue's report.

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
        detail: dict[str, object] = {"via": via}
        if issue_id is not None:
            detail["issue"] = issue_id
        change_status(
            subscription, Status.UNSUBSCRIBED, Event.UNSUBSCRIBED, actor, now, detail=detail
        )
        return True


# --- internals ---------------------------------------------------------------------------


def _issued_after_pending(issued_at: datetime, pending_since: datetime | None) -> bool:
    # Tokens carry whole seconds, so compare at that precision.
    return pending_since is not None and pending_since.replace(microsecond=0) <= issued_at
