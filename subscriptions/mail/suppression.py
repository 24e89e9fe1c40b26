"""The suppression list: addresses that get no mail at all, confirmations included.

Checked when an email is queued and again when the worker is about to send it, so an
address suppressed in between still gets nothing.
"""

import hashlib
from collections.abc import Iterable

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Lower
from django.utils import timezone

from subscriptions.models import DeliveryEvent, OutboundEmail, SuppressedAddress


def address_hash(email: str) -> str:
    """What an erased address leaves behind: the SHA-256 of its lower-cased form.

    Pseudonymous, not anonymous (a guessed address can be checked against it), which is
    what it is for: recognising the same address again without storing it.
    """
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def in_force_keys() -> tuple[set[str], set[str]]:
    """Every suppressed address (lower-cased), and every erased one's hash: for an
    import, which checks a million addresses against the list at once."""
    in_force = SuppressedAddress.objects.filter(lifted_at__isnull=True)
    plain = in_force.exclude(email="").values_list("email", flat=True)
    hashed = in_force.exclude(email_hash="").values_list("email_hash", flat=True)
    return {email.lower() for email in plain}, set(hashed)


def _in_force(email: str) -> Q:
    return Q(email_ci=Lower(Value(email)), lifted_at__isnull=True)


Reason = SuppressedAddress.Reason
Kind = OutboundEmail.Kind
EVERY_REASON = frozenset(Reason.values)
# The address's mail server refuses our mail: nothing gets through, whatever it is.
UNDELIVERABLE = frozenset({Reason.HARD_BOUNCE, Reason.SOFT_BOUNCES, Reason.REJECTED})
# Entries a reader's own confirmation after a bounce or complaint lifts (an editor's own
# entry, and an erasure, are not the address's mail server's word).
LIFTED_BY_REACTIVATION = UNDELIVERABLE | {Reason.COMPLAINT}

_STOPPED_BY: dict[str, frozenset[str]] = {
    # A confirmation the reader asked for by signing up again: an erasure keeps imports
    # and editors from re-adding a person silently, but the person may come back by
    # themselves (double opt-in is their consent; confirming lifts the erasure's entry,
    # `lift_erasure`). A bounce or a complaint still blocks even that.
    Kind.CONFIRMATION: EVERY_REASON - {Reason.ERASED},
    # Asked for from the preferences page after a bounce or a complaint, to start again:
    # only an editor's own stop holds it back.
    Kind.REACTIVATION: frozenset({Reason.MANUAL}),
    # A reader's request about their own data, or for a fresh link to their preferences,
    # is answered even to an address that complained or that an editor stopped; only a
    # server that refuses our mail stops it (and the page says so).
    Kind.PRIVACY_EXPORT: UNDELIVERABLE,
    Kind.PRIVACY_ERASURE: UNDELIVERABLE,
    Kind.PREFERENCES_LINK: UNDELIVERABLE,
}


def reasons_that_stop(kind: str) -> frozenset[str]:
    """The entries that stop an email of this kind: the rule's one home. Newsletters,
    welcome emails and editors' notices stop for any entry. The worker's one-statement
    claim (sending.py) is built from this; tests/test_sending.py holds them equal."""
    return _STOPPED_BY.get(kind, EVERY_REASON)


def stopping_kinds() -> dict[str, frozenset[str]]:
    """Every kind with a rule of its own, for the statement built from them."""
    return dict(_STOPPED_BY)


def is_suppressed(email: str, *, kind: str = Kind.WELCOME) -> bool:
    """Whether the list stops an email of `kind` to the address: as itself, or erased
    (`reasons_that_stop`)."""
    return _entries_in_force(email).filter(reason__in=reasons_that_stop(kind)).exists()


def suppressed_among(emails: Iterable[str], *, kind: str = Kind.WELCOME) -> set[str]:
    """Which of `emails` the list stops an email of `kind` to (as given): a batch of
    readers asked about in one query, with `is_suppressed`'s rule."""
    emails = list(emails)
    # PostgreSQL's LOWER() and Python's lower() agree on ASCII; anything else is asked
    # about one by one, the way `is_suppressed` asks.
    ascii_by_lower = {email.lower(): email for email in emails if email.isascii()}
    by_hash = {address_hash(email): email for email in ascii_by_lower.values()}
    entries = (
        SuppressedAddress.objects.alias(email_ci=Lower("email"))
        .filter(lifted_at__isnull=True, reason__in=reasons_that_stop(kind))
        .filter(Q(email_ci__in=list(ascii_by_lower)) | Q(email_hash__in=list(by_hash)))
        .values_list("email", "email_hash")
    )
    stopped = set()
    for email, email_hash in entries:
        if email and email.lower() in ascii_by_lower:
            stopped.add(ascii_by_lower[email.lower()])
        if email_hash in by_hash:
            stopped.add(by_hash[email_hash])
    stopped.update(
        email for email in emails if not email.isascii() and is_suppressed(email, kind=kind)
    )
    return stopped


def reason_in_force(email: str) -> str | None:
    """Why the address is on the list, if it is (the strongest reason first): what the
    reader's pages tell them."""
    reasons = set(_entries_in_force(email).values_list("reason", flat=True))
    for reason in (Reason.MANUAL, Reason.COMPLAINT, *UNDELIVERABLE, Reason.ERASED):
        if reason in reasons:
            return reason
    return None


def _entries_in_force(email: str) -> QuerySet[SuppressedAddress]:
    return SuppressedAddress.objects.alias(email_ci=Lower("email")).filter(
        _in_force(email) | Q(email_hash=address_hash(email), lifted_at__isnull=True)
    )


def lift_after_reactivation(email: str) -> int:
    """The reader confirmed their address again after a bounce or a complaint (a
    reactivation email reached them and they pressed the button): lift those entries."""
    return (
        _entries_in_force(email)
        .filter(reason__in=LIFTED_BY_REACTIVATION)
        .update(
            lifted_at=timezone.now(),
            lifted_by="reader",
            lift_reason="Confirmed the address again from the preferences page.",
        )
    )


def is_erased(email: str) -> bool:
    """Whether the person behind this address asked for their data to be erased: only
    an erasure leaves an entry that holds the hash alone."""
    return SuppressedAddress.objects.filter(
        email="", email_hash=address_hash(email), lifted_at__isnull=True
    ).exists()


def lift_erasure(email: str) -> int:
    """The person confirmed a new sign-up: their erasure no longer blocks mail."""
    return SuppressedAddress.objects.filter(
        email_hash=address_hash(email),
        reason=SuppressedAddress.Reason.ERASED,
        lifted_at__isnull=True,
    ).update(
        lifted_at=timezone.now(),
        lifted_by="reader",
        lift_reason="Signed up and confirmed again after an erasure.",
    )


def suppress(
    *,
    email: str,
    reason: str,
    source_event: DeliveryEvent | None = None,
    note: str = "",
) -> SuppressedAddress:
    """Put an address on the list; if it is there already, return the entry in force."""
    existing = (
        SuppressedAddress.objects.alias(email_ci=Lower("email"))
        .filter(_in_force(email) | Q(email_hash=address_hash(email), lifted_at__isnull=True))
        .first()
    )
    if existing is not None:
        return existing
    try:
        # A concurrent webhook may insert the same address; the partial unique index
        # lets exactly one win and the savepoint lets the other read the winner.
        with transaction.atomic():
            return SuppressedAddress.objects.create(
                email=email,
                reason=reason,
                source_event=source_event,
                note=note,
                created_at=timezone.now(),
            )
    except IntegrityError:
        return SuppressedAddress.objects.alias(email_ci=Lower("email")).get(_in_force(email))


def lift(*, entry_ids: Iterable[int], reason: str, actor: str) -> int:
    """Lift entries with a recorded reason; returns how many were in force."""
    if not reason.strip():
        raise ValueError("Lifting a suppression needs a reason.")
    return SuppressedAddress.objects.filter(pk__in=list(entry_ids), lifted_at__isnull=True).update(
        lifted_at=timezone.now(), lifted_by=actor[:200], lift_reason=reason.strip()
    )


def replace_address_with_hash(email: str, *, actor: str) -> None:
    """Replace every entry for the address with its hash, and keep one in force.

    Called inside the erasure's transaction: afterwards the list no longer holds the
    address, yet mail to it and a re-import of it are still refused.
    """
    digest = address_hash(email)
    now = timezone.now()
    entries = SuppressedAddress.objects.alias(email_ci=Lower("email")).filter(
        email_ci=Lower(Value(email))
    )
    entries.update(email="", email_hash=digest, note="")
    in_force = SuppressedAddress.objects.filter(email_hash=digest, lifted_at__isnull=True)
    if not in_force.exists():
        SuppressedAddress.objects.create(
            email="",
            email_hash=digest,
            reason=SuppressedAddress.Reason.ERASED,
            note=f"erased by {actor}"[:200],
            created_at=now,
        )
