"""Every state change of a member: from the payment platform, from an editor, from an
import.

The rule that keeps the goal counter exact: each status change updates the
`MemberCount` row in the same transaction, under that row's lock, with a version that
grows by one per change. After commit the new (count, version) is copied to Redis by
a version-checked write, so a late or repeated write can never move the copy
backwards or count a change twice. A change that makes the count land on a milestone
asks for the milestone to be recorded, once, after commit.
"""

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import Q, Value
from django.db.models.functions import Lower
from django.utils import timezone

from subscriptions.membership import goal_counter
from subscriptions.models import GoalMilestone, Member, MemberCount, MemberEvent, StripeEvent
from subscriptions.platform.task_queue import send_to_worker

logger = logging.getLogger(__name__)
MILESTONES_TASK = "subscriptions.tasks.record_goal_milestones"
Status = Member.Status


@dataclass(frozen=True)
class PaymentChange:
    """One payment-platform event, normalised at the edge (see `stripe_webhook`)."""

    event_id: str
    event_type: str
    occurred_at: datetime
    external_id: str
    # None: the event says nothing about the member's status (a checkout whose payment
    # has not arrived), so it only records the member and the reader's details.
    status: str | None = None
    email: str = ""
    name: str = ""
    tier: str = ""
    amount: Decimal | None = None
    currency: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None


class PaymentOutcome:
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    # Kept (the member, the details), no status claimed: a new member waits as past
    # due, not counted, and an existing one keeps its status.
    RECORDED = "recorded"


def apply_payment_change(change: PaymentChange) -> str:
    """Apply one payment-platform event, once; returns a `PaymentOutcome`.

    Replays are recognised by the event id. Events arrive in any order: a status from
    an event older than the newest one applied is ignored, and a cancelled platform
    subscription stays cancelled (the platform cannot revive one), so a cancel that
    arrives before its create still leaves the member cancelled. A change with no status
    never moves one, whenever it arrives, so an unpaid checkout cannot undo a payment.
    """
    now = timezone.now()
    actor = f"stripe:{change.event_id}"
    with transaction.atomic():
        try:
            with transaction.atomic():
                StripeEvent.objects.create(
                    event_id=change.event_id,
                    type=change.event_type,
                    created_at=change.occurred_at,
                    received_at=now,
                )
        except IntegrityError:
            return PaymentOutcome.DUPLICATE
        member = _lock_or_create_by_external_id(change, actor=actor, now=now)
        _fill_details(member, change)
        if change.status is None:
            outcome = PaymentOutcome.RECORDED
        elif _is_newest(member, change.occurred_at):
            if not _cancelled_for_good(member):
                _set_status(member, change.status, actor=actor, now=now)
            member.last_event_at = change.occurred_at
            outcome = PaymentOutcome.APPLIED
        else:
            outcome = PaymentOutcome.STALE
        member.save(update_fields=_DETAIL_FIELDS + ["status", "last_event_at", "updated_at"])
    return outcome


def add_member(
    *,
    email: str,
    actor: str,
    source: str = Member.Source.ADMIN,
    name: str = "",
    tier: str = "",
    amount: Decimal | None = None,
    currency: str = "",
    status: str = Status.ACTIVE,
    external_id: str = "",
    started_at: datetime | None = None,
) -> Member:
    """An editor or an import adds a member; an existing one with this address (or
    external id) is updated instead of duplicated."""
    now = timezone.now()
    with transaction.atomic():
        member = _lock_existing(email=email, external_id=external_id)
        if member is None:
            member = _create(
                Member(
                    email=email,
                    source=source,
                    status=status,
                    external_id=external_id,
                    started_at=started_at or now,
                ),
                actor=actor,
                now=now,
            )
        else:
            _set_status(member, status, actor=actor, now=now)
        member.email = member.email or email
        member.name = name or member.name
        member.tier = tier or member.tier
        member.amount = amount if amount is not None else member.amount
        member.currency = (currency or member.currency).upper()
        member.started_at = member.started_at or started_at or now
        member.save(update_fields=_DETAIL_FIELDS + ["status", "updated_at"])
    return member


def cancel_members(*, member_ids: list[int], actor: str) -> int:
    """End memberships (an editor's action); returns how many changed."""
    now = timezone.now()
    changed = 0
    with transaction.atomic():
        members = Member.objects.select_for_update().filter(pk__in=member_ids).order_by("pk")
        for member in members:
            if member.status != Status.CANCELLED:
                _set_status(member, Status.CANCELLED, actor=actor, now=now)
                member.save(update_fields=["status", "ended_at", "updated_at"])
                changed += 1
    return changed


# --- internals ---------------------------------------------------------------------------


# Every field a status change or an event may touch besides the status itself.
_DETAIL_FIELDS = ["email", "name", "tier", "amount", "currency", "started_at", "ended_at"]


def _set_status(member: Member, target: str, *, actor: str, now: datetime) -> None:
    """Change a saved member's status, and the count with it, in the caller's
    transaction; the caller saves the member."""
    previous = member.status
    if previous == target:
        return
    member.status = target
    _record_status_change(member, previous, actor=actor, now=now)


def _create(member: Member, *, actor: str, now: datetime) -> Member:
    """Insert a new member (its status set) and count it."""
    member.save()
    _record_status_change(member, "", actor=actor, now=now)
    return member


def _record_status_change(member: Member, previous: str, *, actor: str, now: datetime) -> None:
    if member.status == Status.CANCELLED:
        member.ended_at = member.ended_at or now
    elif member.status == Status.ACTIVE:
        member.ended_at = None
    MemberEvent.objects.create(
        member=member, from_status=previous, to_status=member.status, actor=actor[:200], at=now
    )
    delta = (member.status == Status.ACTIVE) - (previous == Status.ACTIVE)
    if delta:
        _change_count(delta)


def _change_count(delta: int) -> None:
    # The row lock serialises every change of the count, so versions are gapless and
    # each transaction sees the count its own change produced.
    count, _ = MemberCount.objects.select_for_update().get_or_create(pk=1)
    count.active += delta
    count.version += 1
    count.save(update_fields=["active", "version", "updated_at"])
    transaction.on_commit(
        partial(goal_counter.publish_count, active=count.active, version=count.version),
        robust=True,
    )
    if (
        delta > 0
        and GoalMilestone.objects.filter(
            goal__is_active=True, threshold=count.active, reached_at__isnull=True
        ).exists()
    ):
        transaction.on_commit(_ask_for_milestones, robust=True)


def _ask_for_milestones() -> None:
    try:
        send_to_worker(MILESTONES_TASK)
    except Exception:  # noqa: BLE001 - any broker failure; the reconcile task catches up
        logger.warning("could not enqueue the milestone check; reconcile will run it")


def _lock_or_create_by_external_id(change: PaymentChange, *, actor: str, now: datetime) -> Member:
    """The member this platform subscription belongs to, row-locked; a new one takes the
    event's status at once (or past due, counted as not active, until one says)."""
    member = Member.objects.select_for_update().filter(external_id=change.external_id).first()
    if member is not None:
        return member
    try:
        # The savepoint lets a lost insert race fall back to the winner's row.
        with transaction.atomic():
            member = Member(
                external_id=change.external_id,
                source=Member.Source.STRIPE,
                status=change.status or Status.PAST_DUE,
                started_at=change.started_at or change.occurred_at,
                last_event_at=None,
            )
            member.save()
    except IntegrityError:
        return Member.objects.select_for_update().get(external_id=change.external_id)
    _record_status_change(member, "", actor=actor, now=now)
    return member


def _lock_existing(*, email: str, external_id: str) -> Member | None:
    query = Member.objects.select_for_update()
    if external_id:
        found = query.filter(external_id=external_id).first()
        if found is not None:
            return found
    if not email:
        return None
    return (
        query.alias(email_ci=Lower("email"))
        .filter(Q(email_ci=Lower(Value(email))))
        .order_by("pk")
        .first()
    )


def _fill_details(member: Member, change: PaymentChange) -> None:
    member.email = member.email or change.email
    member.name = member.name or change.name
    member.tier = change.tier or member.tier
    if change.amount is not None:
        member.amount = change.amount
    member.currency = (change.currency or member.currency).upper()
    if change.started_at and (member.started_at is None or change.started_at < member.started_at):
        member.started_at = change.started_at
    if change.ended_at:
        member.ended_at = change.ended_at


def _is_newest(member: Member, occurred_at: datetime) -> bool:
    # Ties apply: Stripe stamps events in whole seconds, and two of one second are
    # better applied in arrival order than dropped.
    return member.last_event_at is None or occurred_at >= member.last_event_at


def _cancelled_for_good(member: Member) -> bool:
    """A platform subscription, once cancelled, is never active again: a new
    membership is a new subscription with its own id."""
    return member.status == Status.CANCELLED and member.source == Member.Source.STRIPE
