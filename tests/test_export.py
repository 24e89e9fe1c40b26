"""Exporting subscribers: a CSV row per subscription with its proof of consent, streamed
from the database (never the whole list in memory), that imports back as it was."""

import csv
import io
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from subscriptions.lists import exports
from subscriptions.lists.exports_copy import copy_chunks
from subscriptions.lists.imports import jobs
from subscriptions.models import ConsentRecord, Subscriber, Subscription
from subscriptions.signup import services
from subscriptions.tokens import confirmation_token
from tests.factories import NewsletterFactory

pytestmark = pytest.mark.django_db
Status = Subscription.Status
SUBSCRIBERS = reverse("admin:subscriptions_subscriber_changelist")


@pytest.fixture(autouse=True)
def _import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"


def sign_up_and_confirm(client, email: str, newsletter) -> None:
    result = services.subscribe(
        email=email,
        newsletters=[newsletter],
        source="form",
        consent=services.ConsentContext(ip_address="203.0.113.7", page_url="https://x/a"),
    )
    token = confirmation_token.make_token(result.pending_ids)
    client.post(reverse("subscriptions:confirm", args=[token]), REMOTE_ADDR="198.51.100.9")


def read(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_export_has_status_and_the_consent_record_of_each_subscription(client) -> None:
    newsletter = NewsletterFactory(slug="daily-digest")
    sign_up_and_confirm(client, "ann@example.org", newsletter)
    services.subscribe(
        email="bob@example.org",
        newsletters=[newsletter],
        source="api",
        consent=services.ConsentContext(ip_address="192.0.2.4"),
    )

    response = exports.csv_response(Subscription.objects.all(), "x.csv")
    header, ann, bob = read(response)

    record = dict(zip(header, ann, strict=True))
    assert header == exports.COLUMNS
    assert (record["email"], record["status"], record["signup_ip"]) == (
        "ann@example.org",
        "active",
        "203.0.113.7",
    )
    assert record["confirmation_ip"] == "198.51.100.9"
    assert record["signed_up_at"] and record["confirmed_at"]
    assert "unsubscribe" in record["consent_text"]
    assert dict(zip(header, bob, strict=True))["confirmed_at"] == ""


def test_an_export_imports_back_as_it_was(client, tmp_path) -> None:
    source = NewsletterFactory(slug="daily-digest")
    target = NewsletterFactory(slug="weekend")
    sign_up_and_confirm(client, "ann@example.org", source)
    services.subscribe(
        email="bob@example.org",
        newsletters=[source],
        source="form",
        consent=services.ConsentContext(),
    )
    left = services.subscribe(
        email="cara@example.org",
        newsletters=[source],
        source="form",
        consent=services.ConsentContext(),
    )
    services.unsubscribe(subscription_id=left.pending_ids[0], actor="reader", via="page")
    exported = tmp_path / "export.csv"
    call_command(
        "export_subscribers", newsletter="daily-digest", output=exported, stderr=io.StringIO()
    )

    job = jobs.start_import(
        newsletter=target,
        target_status="active",
        consent_basis="moved",
        file_path=exported,
        original_name="export.csv",
        actor="t",
        enqueue=False,
    )
    job = jobs.run_import(job.pk)

    statuses = dict(
        Subscription.objects.filter(newsletter=target).values_list("subscriber__email", "status")
    )
    assert statuses == {"ann@example.org": Status.ACTIVE, "bob@example.org": Status.PENDING}
    assert (job.left_alone, job.invalid) == (1, 0)  # cara: marked unsubscribed in the file
    ann = Subscription.objects.get(newsletter=target, subscriber__email="ann@example.org")
    original = Subscription.objects.get(newsletter=source, subscriber__email="ann@example.org")
    consent = ann.consent_records.get()
    assert consent.ip_address == "203.0.113.7"
    assert consent.at == original.consent_records.order_by("at").first().at
    assert "unsubscribe" in consent.consent_text


def test_the_command_filters_by_status_and_refuses_an_unknown_newsletter(tmp_path) -> None:
    newsletter = NewsletterFactory(slug="daily-digest")
    for email, status in [("a@example.org", Status.ACTIVE), ("b@example.org", Status.PENDING)]:
        Subscription.objects.create(
            subscriber=Subscriber.objects.create(email=email),
            newsletter=newsletter,
            status=status,
        )
    out = tmp_path / "active.csv"

    call_command(
        "export_subscribers",
        newsletter="daily-digest",
        status="active",
        output=out,
        stderr=io.StringIO(),
    )

    rows = list(csv.reader(io.StringIO(Path(out).read_text())))
    assert [row[0] for row in rows[1:]] == ["a@example.org"]
    with pytest.raises(CommandError, match="no newsletter"):
        call_command("export_subscribers", newsletter="nope", stderr=io.StringIO())


def test_the_subscription_list_exports_what_is_selected(admin_client) -> None:
    newsletter = NewsletterFactory()
    chosen = Subscription.objects.create(
        subscriber=Subscriber.objects.create(email="a@example.org"), newsletter=newsletter
    )
    Subscription.objects.create(
        subscriber=Subscriber.objects.create(email="b@example.org"), newsletter=newsletter
    )

    response = admin_client.post(
        reverse("admin:subscriptions_subscription_changelist"),
        {"action": "export_csv", "_selected_action": [chosen.pk], "index": "0"},
    )

    assert [row[0] for row in read(response)[1:]] == ["a@example.org"]


def add_subscriptions(newsletter, count: int, *, start: int = 0) -> None:
    """Many subscriptions, fast: two INSERTs."""
    subscribers = Subscriber.objects.bulk_create(
        Subscriber(email=f"bulk{n}@example.org") for n in range(start, start + count)
    )
    Subscription.objects.bulk_create(
        Subscription(subscriber=subscriber, newsletter=newsletter, status=Status.ACTIVE)
        for subscriber in subscribers
    )


def export_all(client, filters: dict | None = None):
    """The subscriber list's "Export selected as CSV" with "Select all" (across every
    page of the filtered list), as an editor runs it."""
    first = Subscriber.objects.order_by("-pk").values_list("pk", flat=True).first()
    return client.post(
        f"{SUBSCRIBERS}?{urlencode(filters or {})}",
        {"action": "export_csv", "select_across": "1", "_selected_action": [first], "index": "0"},
    )


def peak_memory_of_an_export(client) -> tuple[int, int]:
    """Lines exported and Python's peak memory while the admin builds the response and
    it is read to the end (as a server sends it)."""
    tracemalloc.start()
    try:
        response = export_all(client)
        assert response.streaming
        lines = sum(piece.count(b"\n") for piece in response.streaming_content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return lines, peak


def test_the_admin_export_streams_in_constant_memory_whatever_the_list_size(
    admin_client, monkeypatch
) -> None:
    # Python's path reads the database in chunks of this many rows; PostgreSQL's
    # streams COPY's output row by row.
    monkeypatch.setattr(exports, "_CHUNK", 500)
    newsletter = NewsletterFactory()
    rows = 4_000
    add_subscriptions(newsletter, rows)
    peak_memory_of_an_export(admin_client)  # the first admin request loads what others reuse
    lines, small = peak_memory_of_an_export(admin_client)
    add_subscriptions(newsletter, 2 * rows, start=rows)

    more_lines, large = peak_memory_of_an_export(admin_client)

    assert (lines, more_lines) == (rows + 1, 3 * rows + 1)
    # Three times the rows, about the same memory: nothing held the whole list.
    assert large < 1.5 * small, (small, large)


def test_a_list_filtered_by_newsletter_or_status_exports_only_those_subscriptions(
    admin_client,
) -> None:
    digest, weekly = NewsletterFactory(slug="digest"), NewsletterFactory(slug="weekly")
    for email, newsletter, status in [
        ("ann@example.org", digest, Status.ACTIVE),
        ("ann@example.org", weekly, Status.ACTIVE),
        ("bob@example.org", digest, Status.PENDING),
        ("bob@example.org", weekly, Status.UNSUBSCRIBED),
        ("cara@example.org", weekly, Status.ACTIVE),
    ]:
        Subscription.objects.create(
            subscriber=Subscriber.objects.get_or_create(email=email)[0],
            newsletter=newsletter,
            status=status,
        )

    def exported(filters: dict) -> list[tuple[str, str, str]]:
        return [(row[0], row[2], row[3]) for row in read(export_all(admin_client, filters))[1:]]

    assert exported({"newsletter": digest.pk}) == [
        ("ann@example.org", "digest", "active"),
        ("bob@example.org", "digest", "pending"),
    ]
    assert exported({"newsletter": digest.pk, "status": "active"}) == [
        ("ann@example.org", "digest", "active")
    ]
    assert exported({"status": "active"}) == [
        ("ann@example.org", "digest", "active"),
        ("ann@example.org", "weekly", "active"),
        ("cara@example.org", "weekly", "active"),
    ]
    assert len(exported({})) == 5


@pytest.mark.postgres
def test_postgresql_writes_the_same_cells_as_python(client) -> None:
    digest, weekly = NewsletterFactory(slug="digest"), NewsletterFactory(slug="weekly")
    sign_up_and_confirm(client, "ann@example.org", digest)
    services.subscribe(
        email="+bob@example.org",
        newsletters=[digest, weekly],
        source="api",
        consent=services.ConsentContext(ip_address="2001:db8::7"),
    )
    Subscriber.objects.filter(email="+bob@example.org").update(name="=HYPERLINK(1)")
    # A whole second, a consent text that opens like a formula, no consent record at all.
    whole_second = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    Subscription.objects.filter(newsletter=weekly).update(
        status=Status.UNSUBSCRIBED, unsubscribed_at=whole_second
    )
    ConsentRecord.objects.filter(subscription__newsletter=weekly).update(
        at=whole_second, consent_text="-1 sign-up, said yes"
    )
    Subscription.objects.create(
        subscriber=Subscriber.objects.create(email="cara@example.org"), newsletter=weekly
    )
    chosen = exports.subscriptions_of(Subscriber.objects.all(), newsletter_id=weekly.pk)

    python = list(exports.export_rows(chosen))
    database = list(csv.reader(io.StringIO(b"".join(copy_chunks(chosen)).decode())))

    assert len(python) == 3
    assert database == python


def test_an_export_of_a_list_filtered_by_newsletter_asks_for_no_distinct_rows(
    admin_client,
) -> None:
    newsletter = NewsletterFactory()
    add_subscriptions(newsletter, 3)
    changelist = admin_client.get(SUBSCRIBERS, {"newsletter": newsletter.pk}).context["cl"]
    assert changelist.queryset.count() == 3  # each person once
    assert "DISTINCT" not in str(changelist.queryset.query).upper()

    exported = exports.subscriptions_of(changelist.queryset, newsletter_id=newsletter.pk)

    # On PostgreSQL that DISTINCT inside the IN took five minutes at a million subscribers.
    assert "DISTINCT" not in str(exported.query).upper()
    assert exported.count() == 3
