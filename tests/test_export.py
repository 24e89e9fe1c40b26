"""Exporting subscribers: a CSV row per subscription with its proof of consent, streamed
from the database (never the whole list in memory), that imports back as it was."""

import csv
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.http import StreamingHttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from subscriptions import exports, services
from subscriptions.imports import jobs
from subscriptions.models import Subscriber, Subscription
from subscriptions.tokens import confirmation_token
from tests.factories import NewsletterFactory

pytestmark = pytest.mark.django_db
Status = Subscription.Status


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


def test_the_export_streams_and_reads_the_database_only_as_it_goes() -> None:
    newsletter = NewsletterFactory()
    for n in range(12):
        Subscription.objects.create(
            subscriber=Subscriber.objects.create(email=f"r{n}@example.org"),
            newsletter=newsletter,
        )

    with CaptureQueriesContext(connection) as queries:
        response = exports.csv_response(Subscription.objects.all(), "x.csv")
        before = len(queries)
        lines = iter(response.streaming_content)
        header = next(lines)

    assert isinstance(response, StreamingHttpResponse)
    assert before == 0  # building the response runs no query: nothing is materialised
    assert header.startswith(b"email,name,newsletter")
    assert len(list(lines)) == 12


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
