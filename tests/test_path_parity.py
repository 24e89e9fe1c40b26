"""One rule, three ways in: a sign-up's general path (`services._write_sign_up`), its
one-statement fast path (`signup/fast_path.py`) and the import's set-based SQL
(`lists/imports/writing.py`). The same scenarios go through each on PostgreSQL, and
the rows each leaves behind are compared: statuses, event kinds and their order, the
consent record, the confirmation email (its mailbox key, which the cap counts by) and
what the suppression list holds. A rule changed in one path alone fails here.

The import differs by design, and only as `BY_DESIGN` declares: it records the editor's
consent basis, logs its own source, holds its confirmation until due (paced), logs no
`confirmation_queued`, and never touches an address it finds pending, ended,
suppressed or erased (a sign-up is the reader's own act; an import is not).
"""

import csv
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import transaction
from django.utils import timezone

from subscriptions.mail import suppression
from subscriptions.models import (
    ConsentRecord,
    Newsletter,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from subscriptions.privacy import personal_data
from subscriptions.signup import fast_path, services, transitions
from subscriptions.signup.addresses import mailbox_key
from tests.factories import NewsletterFactory
from tests.imports_support import import_file

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ADDRESS = "ann@example.org"
Status = Subscription.Status
Event = SubscriptionEvent.Kind
CONSENT = services.ConsentContext(
    ip_address="203.0.113.9", user_agent="Firefox", page_url="https://news.example.org/a"
)


# --- the world before: one address, one double opt-in newsletter ------------------------


def _signed_up(newsletter: Newsletter) -> Subscription:
    services.subscribe(
        email=ADDRESS, newsletters=[newsletter], source=Subscription.Source.FORM, consent=CONSENT
    )
    return Subscription.objects.get(subscriber__email=ADDRESS)


def _active(newsletter: Newsletter) -> Subscription:
    services.add_by_editor(
        email=ADDRESS, newsletters=[newsletter], actor="admin:ed", consent_basis="x", activate=True
    )
    return Subscription.objects.get(subscriber__email=ADDRESS)


def _ended(status: str, reason: str | None) -> Callable[[Newsletter], None]:
    def scene(newsletter: Newsletter) -> None:
        subscription = _active(newsletter)
        kind = {Status.UNSUBSCRIBED: Event.UNSUBSCRIBED, Status.BOUNCED: Event.BOUNCED}[status]
        transitions.change_status(subscription, status, kind, "system", timezone.now())
        if reason:
            suppression.suppress(email=ADDRESS, reason=reason)

    return scene


def _suppressed(newsletter: Newsletter) -> None:
    Subscriber.objects.create(email=ADDRESS)
    suppression.suppress(email=ADDRESS, reason=SuppressedAddress.Reason.MANUAL)


def _erased(newsletter: Newsletter) -> None:
    subscription = _signed_up(newsletter)
    personal_data.erase_subscriber(subscriber_id=subscription.subscriber_id, actor="reader")


SCENARIOS: dict[str, Callable[[Newsletter], object]] = {
    "new address": lambda newsletter: None,
    "known, pending": _signed_up,
    "active": _active,
    "unsubscribed": _ended(Status.UNSUBSCRIBED, None),
    "bounced": _ended(Status.BOUNCED, SuppressedAddress.Reason.HARD_BOUNCE),
    "suppressed": _suppressed,
    "erased": _erased,
}


# --- the paths ---------------------------------------------------------------------------


def sign_up_fast(newsletter: Newsletter, tmp_path: Path, monkeypatch) -> None:
    services.subscribe(
        email=ADDRESS, newsletters=[newsletter], source=Subscription.Source.FORM, consent=CONSENT
    )


def sign_up_general(newsletter: Newsletter, tmp_path: Path, monkeypatch) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(fast_path, "insert_new_address", lambda **kwargs: None)
        sign_up_fast(newsletter, tmp_path, monkeypatch)


def pending_import(newsletter: Newsletter, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "list.csv"
    with path.open("w", newline="") as file:
        csv.writer(file).writerows([["email"], [ADDRESS]])
    import_file(path, newsletter, status=Status.PENDING, basis="Our old list, opted in")


PATHS = {"sign-up, one statement": sign_up_fast, "sign-up, general": sign_up_general}


# --- what a path left behind, free of ids and the clock ------------------------------------


def left_behind(since_pk: dict[str, int]) -> dict:
    """The rows written after `since_pk` (each table's last id before the path ran),
    and the state of the address's subscription and suppression entries."""
    subscriber = Subscriber.objects.filter(email=ADDRESS).first()
    subscriptions = list(Subscription.objects.filter(subscriber=subscriber).order_by("pk"))
    emails = OutboundEmail.objects.filter(pk__gt=since_pk["email"]).order_by("pk")
    email_position = {e.pk: n for n, e in enumerate(emails)}
    return {
        "subscriber": None if subscriber is None else subscriber.email,
        "subscriptions": [
            (s.status, s.source, s.pending_since is not None, s.confirmed_at is not None)
            for s in subscriptions
        ],
        "events": [
            (
                e.kind,
                e.from_status,
                e.to_status,
                e.actor,
                {
                    key: email_position.get(value) if key == "outbound_email_id" else value
                    for key, value in e.detail.items()
                },
            )
            for e in SubscriptionEvent.objects.filter(pk__gt=since_pk["event"]).order_by("pk")
        ],
        "consent": [
            (c.kind, c.ip_address, c.user_agent, c.page_url, c.consent_text)
            for c in ConsentRecord.objects.filter(pk__gt=since_pk["consent"]).order_by("pk")
        ],
        "emails": [
            (
                e.kind,
                e.status,
                e.to_email,
                e.mailbox_key == mailbox_key(ADDRESS),
                e.next_attempt_at is not None,  # held back until due
                e.subscriptions.count(),
            )
            for e in emails
        ],
        "suppressed": sorted(
            (s.reason, bool(s.email), bool(s.email_hash))
            for s in SuppressedAddress.objects.filter(lifted_at__isnull=True)
        ),
    }


def last_ids() -> dict[str, int]:
    def last(model) -> int:
        return model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    return {
        "email": last(OutboundEmail),
        "event": last(SubscriptionEvent),
        "consent": last(ConsentRecord),
    }


class _Undo(Exception):
    pass


def through(path, scenario: str, tmp_path: Path, monkeypatch, settings) -> dict:
    """Set the scene, run the path, and read what it left; then undo all of it."""
    result: dict = {}
    try:
        with transaction.atomic():
            newsletter = NewsletterFactory(slug="digest", double_opt_in=True)
            SCENARIOS[scenario](newsletter)
            before = last_ids()
            path(newsletter, tmp_path, monkeypatch)
            result = left_behind(before)
            raise _Undo
    except _Undo:
        pass
    return result


# --- the import's declared differences ------------------------------------------------------

# An import never touches an address it finds in these states: it reports the row.
IMPORT_LEAVES_ALONE = {"known, pending", "unsubscribed", "bounced", "suppressed", "erased"}


def as_the_import_writes(signed_up: dict, unchanged: dict, scenario: str) -> dict:
    """What a pending import must leave, given what a sign-up left (`signed_up`) and the
    world as the scene left it (`unchanged`, when the import writes nothing)."""
    if scenario in IMPORT_LEAVES_ALONE or signed_up == unchanged:
        return unchanged
    expected = {**signed_up}
    expected["subscriptions"] = [
        (status, Subscription.Source.IMPORT, pending, confirmed)
        for status, _source, pending, confirmed in signed_up["subscriptions"]
    ]
    expected["events"] = [
        (kind, before, after, "import:<id>", {"source": "import", "import_id": "<id>"})
        for kind, before, after, _actor, _detail in signed_up["events"]
        if kind != Event.CONFIRMATION_QUEUED
    ]
    expected["consent"] = [
        (ConsentRecord.Kind.IMPORT, None, "", "import:<id>", "Our old list, opted in")
        for _ in signed_up["consent"]
    ]
    expected["emails"] = [
        (kind, status, to, keyed, True, covers)
        for kind, status, to, keyed, _held, covers in signed_up["emails"]
    ]
    return expected


def with_import_ids_masked(written: dict) -> dict:
    def masked(value: str) -> str:
        return "import:<id>" if value.startswith("import:") else value

    events = [
        (
            kind,
            before,
            after,
            masked(actor),
            {**detail, "import_id": "<id>"} if "import_id" in detail else detail,
        )
        for kind, before, after, actor, detail in written["events"]
    ]
    consent = [
        (kind, ip, agent, masked(page), text) for kind, ip, agent, page, text in written["consent"]
    ]
    return {**written, "events": events, "consent": consent}


def nothing_done(newsletter: Newsletter, tmp_path: Path, monkeypatch) -> None:
    pass


# --- the tests ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_interval(settings):
    # A re-submission right after the scene's own sign-up counts as a new ask.
    settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS = 0


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_both_sign_up_paths_leave_the_same_rows(scenario, tmp_path, monkeypatch, settings):
    written = {
        name: through(path, scenario, tmp_path, monkeypatch, settings)
        for name, path in PATHS.items()
    }

    assert written["sign-up, one statement"] == written["sign-up, general"]


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_an_import_leaves_what_a_sign_up_leaves_but_for_the_declared_differences(
    scenario, tmp_path, monkeypatch, settings
):
    signed_up = through(sign_up_general, scenario, tmp_path, monkeypatch, settings)
    unchanged = through(nothing_done, scenario, tmp_path, monkeypatch, settings)
    imported = through(pending_import, scenario, tmp_path, monkeypatch, settings)

    assert with_import_ids_masked(imported) == as_the_import_writes(signed_up, unchanged, scenario)


def test_the_scenes_are_what_they_say(tmp_path, monkeypatch, settings) -> None:
    """Each scene leaves the address in the state it is named after (so the paths above
    are driven through every one)."""
    seen = {
        scenario: through(nothing_done, scenario, tmp_path, monkeypatch, settings)
        for scenario in SCENARIOS
    }
    states = {scenario: [s[0] for s in left["subscriptions"]] for scenario, left in seen.items()}
    reasons = {scenario: [r[0] for r in left["suppressed"]] for scenario, left in seen.items()}

    assert states == {
        "new address": [],
        "known, pending": [Status.PENDING],
        "active": [Status.ACTIVE],
        "unsubscribed": [Status.UNSUBSCRIBED],
        "bounced": [Status.BOUNCED],
        "suppressed": [],
        "erased": [],
    }
    assert reasons["bounced"] == [SuppressedAddress.Reason.HARD_BOUNCE]
    assert reasons["suppressed"] == [SuppressedAddress.Reason.MANUAL]
    assert reasons["erased"] == [SuppressedAddress.Reason.ERASED]
    assert seen["erased"]["subscriber"] is None
