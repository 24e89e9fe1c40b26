"""Importing subscribers: every row through the sign-up form's validator, repeats and
suppressed addresses skipped, active subscribers never downgraded, people who left
never re-added, each skipped row in the report with its reason, and a file that cannot
be read failing cleanly."""

import csv
import gc
import gzip
import io
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from subscriptions import tasks
from subscriptions.lists.csv_cells import csv_safe
from subscriptions.lists.imports import interpreter, jobs, reports
from subscriptions.lists.imports.reading import REPEAT, ImportFile, Rejection, RowChecker, chunks
from subscriptions.mail import outbox, suppression
from subscriptions.models import (
    ConsentRecord,
    EmailDomainRule,
    Newsletter,
    OutboundEmail,
    Subscriber,
    SubscriberImport,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from subscriptions.privacy import personal_data
from subscriptions.signup import addresses, lookups, services
from subscriptions.web.forms import SignupForm
from tests.browser_support import screenshot_of
from tests.factories import NewsletterFactory, SubscriberFactory, SubscriptionFactory
from tests.imports_support import import_file

pytestmark = pytest.mark.django_db
Status = Subscription.Status


@pytest.fixture(autouse=True)
def _import_dir(settings, tmp_path):
    settings.IMPORT_DIR = tmp_path / "imports"


@pytest.fixture
def newsletter() -> Newsletter:
    return NewsletterFactory(slug="daily-digest")


def write_csv(path: Path, rows: list[list[str]], header: tuple = ("email", "name")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def run(path: Path, newsletter: Newsletter, status: str = "active", basis: str = "old list"):
    return import_file(path, newsletter, status=status, basis=basis)


def report(job: SubscriberImport) -> list[tuple[str, str, str]]:
    with open(job.report_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "email", "reason"]
    return [tuple(row) for row in rows[1:]]


def status_of(email: str, newsletter: Newsletter) -> str:
    return Subscription.objects.get(subscriber__email__iexact=email, newsletter=newsletter).status


def test_the_import_refuses_the_domains_the_form_refuses(
    tmp_path, newsletter, settings, monkeypatch
) -> None:
    settings.BLOCK_DISPOSABLE_EMAIL_DOMAINS = True
    EmailDomainRule.objects.create(domain="spam.example", kind=EmailDomainRule.Kind.BLOCK)
    EmailDomainRule.objects.create(domain="guerrillamail.com", kind=EmailDomainRule.Kind.ALLOW)
    path = write_csv(
        tmp_path / "list.csv",
        [
            ["a@spam.example", ""],  # 2: blocked by an editor
            ["b@mail.spam.example", ""],  # 3: a subdomain of a blocked one
            ["c@mailinator.com", ""],  # 4: disposable
            ["d@guerrillamail.com", ""],  # 5: disposable, but an editor allowed it
            ["e@example.org", ""],  # 6: fine
        ],
    )

    job = run(path, newsletter)

    refused = str(addresses.REFUSED_DOMAIN_MESSAGE)
    assert report(job) == [
        ("2", "a@spam.example", refused),
        ("3", "b@mail.spam.example", refused),
        ("4", "c@mailinator.com", refused),
    ]
    assert (job.added, job.invalid) == (2, 3)
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "d@guerrillamail.com",
        "e@example.org",
    ]
    # The same answers as the sign-up form gives for those rows.
    monkeypatch.setattr(lookups, "CACHE_SECONDS", 0)
    for _line, address, reason in report(job):
        form = SignupForm({"email": address, "newsletters": [newsletter.slug]}, remote_ip=None)
        assert form.errors["email"] == [reason]


def test_a_mixed_file_gives_exactly_the_expected_statuses_and_report(tmp_path, newsletter) -> None:
    other = NewsletterFactory(slug="editors-picks")
    SubscriptionFactory(
        subscriber__email="active@example.org", newsletter=newsletter, status=Status.ACTIVE
    )
    SubscriptionFactory(subscriber__email="pending@example.org", newsletter=newsletter)
    SubscriptionFactory(
        subscriber__email="left@example.org", newsletter=newsletter, status=Status.UNSUBSCRIBED
    )
    SubscriptionFactory(
        subscriber__email="other@example.org", newsletter=other, status=Status.ACTIVE
    )
    suppression.suppress(email="bounced@example.org", reason=SuppressedAddress.Reason.HARD_BOUNCE)
    SuppressedAddress.objects.create(
        email="",
        email_hash=suppression.address_hash("erased@example.org"),
        reason=SuppressedAddress.Reason.ERASED,
        created_at=timezone.now(),
    )
    path = write_csv(
        tmp_path / "list.csv",
        [
            ["new@example.org", "New Reader"],  # 2: added
            ["not an address", ""],  # 3: invalid
            ["NEW@example.org", "Again"],  # 4: repeat
            ["active@example.org", "Already"],  # 5: already subscribed
            ["pending@example.org", ""],  # 6: pending -> active
            ["left@example.org", ""],  # 7: left alone
            ["bounced@example.org", ""],  # 8: suppressed
            ["Erased@Example.org", ""],  # 9: suppressed by the erasure hash
            ["other@example.org", "Other"],  # 10: added to this newsletter too
            ["ann@bücher.example", "IDN"],  # 11: added, domain normalised
        ],
    )

    job = run(path, newsletter)

    assert job.state == SubscriberImport.State.DONE
    assert (job.rows_read, job.added, job.upgraded, job.already_subscribed) == (10, 3, 1, 1)
    assert (job.invalid, job.duplicates, job.suppressed, job.left_alone) == (1, 1, 2, 1)
    assert report(job) == [
        ("3", "not an address", "Please, enter correct email address"),
        ("4", "NEW@example.org", "a repeat of an earlier row"),
        ("7", "left@example.org", "unsubscribed earlier: an import never re-adds it"),
        ("8", "bounced@example.org", jobs.SUPPRESSED),
        ("9", "Erased@Example.org", jobs.SUPPRESSED),
    ]
    for email, status in [
        ("new@example.org", Status.ACTIVE),
        ("active@example.org", Status.ACTIVE),
        ("pending@example.org", Status.ACTIVE),
        ("left@example.org", Status.UNSUBSCRIBED),
        ("other@example.org", Status.ACTIVE),
        ("ann@xn--bcher-kva.example", Status.ACTIVE),
    ]:
        assert status_of(email, newsletter) == status, email
    assert not Subscriber.objects.filter(email__in=["bounced@example.org"]).exists()
    assert not Subscriber.objects.filter(email__iexact="erased@example.org").exists()
    assert Subscriber.objects.get(email="new@example.org").name == "New Reader"
    # Proof of consent and the event log, for every subscription the import touched.
    touched = Subscription.objects.filter(
        subscriber__email__in=[
            "new@example.org",
            "pending@example.org",
            "other@example.org",
            "ann@xn--bcher-kva.example",
        ],
        newsletter=newsletter,
    )
    for subscription in touched:
        consent = subscription.consent_records.get(kind=ConsentRecord.Kind.IMPORT)
        assert consent.consent_text == "old list"
        event = subscription.events.get(actor=f"import:{job.pk}")
        assert event.to_status == Status.ACTIVE
    assert mail.outbox == []


def test_an_active_import_never_downgrades_and_never_adds_rows_marked_as_left(
    tmp_path, newsletter
) -> None:
    path = write_csv(
        tmp_path / "from-mailchimp.csv",
        [
            ["ann@example.org", "Ann", "subscribed"],
            ["bob@example.org", "Bob", "unsubscribed"],
            ["cara@example.org", "Cara", "pending"],
        ],
        header=("email", "name", "status"),
    )

    job = run(path, newsletter)

    assert status_of("ann@example.org", newsletter) == Status.ACTIVE
    assert status_of("cara@example.org", newsletter) == Status.PENDING
    assert not Subscriber.objects.filter(email="bob@example.org").exists()
    assert report(job) == [("3", "bob@example.org", "marked unsubscribed in the file")]


def test_a_pending_import_holds_confirmations_back_and_sends_them_at_the_set_pace(
    tmp_path, newsletter, settings, django_capture_on_commit_callbacks
) -> None:
    settings.IMPORT_CONFIRMATIONS_PER_MINUTE = 60  # one a second
    capped = SubscriberFactory(email="capped@example.org")
    for _ in range(settings.CONFIRMATION_EMAILS_PER_DAY):
        OutboundEmail.objects.create(
            kind=OutboundEmail.Kind.CONFIRMATION,
            to_email=capped.email,
            subscriber=capped,
            created_at=timezone.now(),
            status=OutboundEmail.Status.SENT,
        )
    path = write_csv(
        tmp_path / "p.csv",
        [
            ["a@example.org", ""],
            ["b@example.org", ""],
            ["c@example.org", ""],
            ["capped@example.org", ""],
        ],
    )

    job = run(path, newsletter, status="pending", basis="")

    assert (job.added, job.confirmations_queued) == (4, 3)
    queued = OutboundEmail.objects.filter(status=OutboundEmail.Status.QUEUED).order_by(
        "next_attempt_at"
    )
    due = [row.next_attempt_at for row in queued]
    assert [row.to_email for row in queued] == ["a@example.org", "b@example.org", "c@example.org"]
    assert [round((b - a).total_seconds()) for a, b in zip(due, due[1:], strict=False)] == [1, 1]
    assert all(row.subscriptions.get().newsletter == newsletter for row in queued)
    assert outbox.requeue_stale(now=due[0] - timedelta(seconds=1)) == 0 and mail.outbox == []

    # Each goes out once it is due, not the sweeper's stale wait (two minutes) later. (A
    # millisecond on: SQLite compares timestamps as text, and an import's carry "+00:00".)
    moment = timedelta(milliseconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.requeue_stale(now=due[1] + moment) == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["a@example.org", "b@example.org"]
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.requeue_stale(now=due[2] + moment) == 1
    assert sorted(m.to[0] for m in mail.outbox) == [
        "a@example.org",
        "b@example.org",
        "c@example.org",
    ]
    assert SubscriptionEvent.objects.filter(
        subscription__subscriber=capped, kind=SubscriptionEvent.Kind.SUBSCRIBED
    ).exists()


def test_cells_our_export_guarded_against_formulas_import_as_they_were(
    tmp_path, newsletter
) -> None:
    path = write_csv(
        tmp_path / "export.csv",
        [
            [csv_safe("-dash@example.org"), csv_safe("=Ann")],
            [csv_safe("+plus@example.org"), csv_safe("@ann")],
            ["'quote@example.org", "'Not a guard"],
        ],
    )

    job = run(path, newsletter)

    assert job.added == 3
    assert sorted(Subscriber.objects.values_list("email", "name")) == [
        ("'quote@example.org", "'Not a guard"),
        ("+plus@example.org", "@ann"),
        ("-dash@example.org", "=Ann"),
    ]


def test_other_columns_are_kept_with_the_subscriber_as_they_were(tmp_path, newsletter) -> None:
    path = write_csv(
        tmp_path / "list.csv",
        [
            ["ann@example.org", "Ann", 'Kyiv "центр"', "", "first", "second", "a\\b"],
            ["bob@example.org", "Bob", "", "", "", "", ""],
            ["cara@example.org", "Cara", "Lviv\tcity", "", "x", "y", "z"],
        ],
        header=("email", "name", "City", "Empty", "dup", "dup", "Back\\slash"),
    )

    run(path, newsletter)

    attributes = dict(Subscriber.objects.values_list("email", "attributes"))
    assert attributes == {
        # Column names lower-cased, the last of two same-named columns kept, blank
        # cells left out, whitespace folded.
        "ann@example.org": {"city": 'Kyiv "центр"', "dup": "second", "back\\slash": "a\\b"},
        "bob@example.org": {},
        "cara@example.org": {"city": "Lviv city", "dup": "y", "back\\slash": "z"},
    }


def test_a_gzipped_file_imports_like_a_plain_one(tmp_path, newsletter) -> None:
    plain = write_csv(tmp_path / "list.csv", [["ann@example.org", "Ann"]])
    packed = tmp_path / "list.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))

    job = run(packed, newsletter)

    assert (job.state, job.added) == (SubscriberImport.State.DONE, 1)
    assert job.percent == 100


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "the file is empty or not CSV"),
        (b"name,city\nAnn,Kyiv\n", "one of them `email`"),
        (b"\x1f\x8b\x08\x00garbage", "the file is empty or not CSV"),
    ],
    ids=["empty", "no-email-column", "broken-gzip"],
)
def test_a_file_that_cannot_be_read_fails_the_import_and_adds_nobody(
    tmp_path, newsletter, content: bytes, error: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)

    job = run(path, newsletter)

    assert job.state == SubscriberImport.State.FAILED
    assert error in job.error
    assert not Subscriber.objects.exists()


def test_unreadable_rows_are_reported_and_the_rest_imported(tmp_path, newsletter) -> None:
    path = tmp_path / "mixed.csv"
    path.write_bytes(
        b"email,name\n"
        b"ann@example.org,\xd0\x90\xd0\xbd\xd0\xbd\xd0\xb0\n"  # Anna, in Cyrillic: UTF-8
        b"bob@example.org,B\xffob\n"  # not UTF-8
        b'"cara@example.org,"Unclosed\n'
        b"dan\x00@example.org,Dan\n"
        b"fay@example.org," + b"x" * 200_000 + b"\n"  # a cell over csv's limit
        b"eve@example.org,Eve\n"
    )

    job = run(path, newsletter)

    emails = set(Subscriber.objects.values_list("email", flat=True))
    assert "ann@example.org" in emails and "bob@example.org" not in emails
    assert "eve@example.org" in emails
    assert job.state == SubscriberImport.State.DONE
    reasons = {line: reason for line, _, reason in report(job)}
    assert reasons["3"] == "the row is not valid UTF-8"
    assert reasons["6"] == "the row cannot be read as CSV"
    assert job.invalid == len(reasons)


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        ("email;name\r\nzoe@example.org;Zoë Dupré\r\n", "cp1252"),
        ("email\tname\nzoe@example.org\tZoë Dupré\n", "utf-8"),
        ("email,name\nzoe@example.org,Zoë Dupré\n", "utf-16"),
        ("\ufeffemail;name\nzoe@example.org;Zoë Dupré\n", "utf-8"),
    ],
    ids=["excel-windows-semicolons", "tabs", "utf-16", "excel-utf8-bom"],
)
def test_files_saved_by_spreadsheets_import_with_their_names_intact(
    tmp_path, newsletter, content: str, encoding: str
) -> None:
    path = tmp_path / "from-excel.csv"
    path.write_bytes(content.encode(encoding))

    job = run(path, newsletter)

    assert (job.state, job.added) == (SubscriberImport.State.DONE, 1)
    assert Subscriber.objects.get().name == "Zoë Dupré"


def test_a_known_address_the_import_changed_is_a_repeat_chunks_later_too(
    tmp_path, newsletter, settings, monkeypatch
) -> None:
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 2)
    SubscriptionFactory(subscriber__email="pending@example.org", newsletter=newsletter)
    SubscriptionFactory(
        subscriber__email="active@example.org", newsletter=newsletter, status=Status.ACTIVE
    )
    path = write_csv(
        tmp_path / "list.csv",
        [
            ["pending@example.org", ""],  # 2: upgraded to active
            ["active@example.org", ""],  # 3: already subscribed
            ["ann@example.org", ""],  # 4: added
            ["bob@example.org", ""],  # 5: added
            ["Pending@Example.org", ""],  # 6: a repeat of line 2, two chunks on
            ["active@example.org", ""],  # 7: left alone again: already subscribed
        ],
    )

    job = run(path, newsletter)

    assert (job.added, job.upgraded, job.already_subscribed, job.duplicates) == (2, 1, 2, 1)
    assert report(job) == [("6", "Pending@example.org", "a repeat of an earlier row")]


def test_the_reader_rejects_a_repeat_of_the_chunk_before_and_forgets_older_chunks(
    tmp_path,
) -> None:
    path = write_csv(
        tmp_path / "list.csv",
        [
            ["ann@example.org", ""],  # 2
            ["bob@example.org", ""],  # 3
            ["ANN@example.org", ""],  # 4: a repeat of the chunk before
            ["cat@example.org", ""],  # 5
            ["bob@example.org", ""],  # 6: two chunks on, left to the database
        ],
    )
    source = ImportFile(path)
    checker = RowChecker(
        columns=source.columns,
        target_status=Status.ACTIVE,
        consent_basis="old list",
        rules={},
        suppressed=set(),
        suppressed_hashes=set(),
    )

    read = list(chunks(source, checker, size=2))
    source.close()

    assert [[row.line for row in chunk.rows] for chunk in read] == [[2, 3], [5], [6]]
    assert [chunk.rejections for chunk in read] == [
        [],
        [Rejection(4, "ANN@example.org", REPEAT)],
        [],
    ]


def test_a_repeat_of_the_chunk_before_is_reported_as_a_repeat_like_one_in_its_own_chunk(
    tmp_path, newsletter, settings, monkeypatch
) -> None:
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 2)
    SubscriptionFactory(
        subscriber__email="active@example.org", newsletter=newsletter, status=Status.ACTIVE
    )
    path = write_csv(
        tmp_path / "list.csv",
        [
            ["ann@example.org", ""],  # 2: added
            ["active@example.org", ""],  # 3: already subscribed
            ["Ann@Example.org", ""],  # 4: a repeat of line 2
            ["active@EXAMPLE.org", ""],  # 5: a repeat of line 3
        ],
    )

    job = run(path, newsletter)

    assert (job.added, job.already_subscribed, job.duplicates) == (1, 1, 2)
    assert report(job) == [
        ("4", "Ann@example.org", "a repeat of an earlier row"),
        ("5", "active@example.org", "a repeat of an earlier row"),
    ]


def test_an_import_sets_the_interpreter_up_for_bulk_work_and_restores_it_after(
    tmp_path, newsletter
) -> None:
    path = write_csv(tmp_path / "list.csv", [["ann@example.org", ""]])

    def interpreter() -> tuple:
        return gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count() > 0

    before = interpreter()
    during = []

    job = import_file(path, newsletter, on_chunk=lambda progress: during.append(interpreter()))

    assert job.added == 1
    assert len(during) == 1
    threshold, interval, frozen = during[0]
    assert threshold[0] > before[0][0] and interval < before[1] and frozen
    assert interpreter() == before


def test_overlapping_imports_leave_the_interpreter_as_it_was_once_the_last_ends() -> None:
    def interpreter_now() -> tuple:
        return gc.get_threshold(), sys.getswitchinterval(), gc.get_freeze_count() > 0

    before = interpreter_now()
    first, second = interpreter.set_for_bulk_work(), interpreter.set_for_bulk_work()

    first.__enter__()
    during = interpreter_now()
    second.__enter__()
    first.__exit__(None, None, None)  # the first to start ends first
    still = interpreter_now()
    second.__exit__(None, None, None)

    assert during != before
    assert still == during
    assert interpreter_now() == before


def test_an_import_cut_off_midway_resumes_after_its_last_chunk(
    tmp_path, newsletter, settings, monkeypatch
) -> None:
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 3)
    rows = [[f"reader{i}@example.org", ""] for i in range(10)] + [["reader0@example.org", ""]]
    path = write_csv(tmp_path / "long.csv", rows)
    job = jobs.start_import(
        newsletter=newsletter,
        target_status="active",
        consent_basis="b",
        file_path=path,
        original_name="long.csv",
        actor="t",
        enqueue=False,
    )

    def die_after_two_chunks(progress: SubscriberImport) -> None:
        if progress.rows_read >= 6:
            raise KeyboardInterrupt  # the worker is killed

    with pytest.raises(KeyboardInterrupt):
        jobs.run_import(job.pk, on_chunk=die_after_two_chunks)
    SubscriberImport.objects.filter(pk=job.pk).update(state=SubscriberImport.State.RUNNING)

    job = jobs.run_import(job.pk)

    assert job.state == SubscriberImport.State.DONE
    assert (job.rows_read, job.added, job.duplicates) == (11, 10, 1)
    assert Subscription.objects.filter(newsletter=newsletter).count() == 10
    assert [line for line, _, _ in report(job)] == ["12"]


def test_a_finished_import_run_again_does_nothing(tmp_path, newsletter) -> None:
    job = run(write_csv(tmp_path / "l.csv", [["ann@example.org", ""]]), newsletter)

    again = jobs.run_import(job.pk)

    assert (again.added, again.rows_read) == (1, 1)
    assert Subscription.objects.count() == 1


def test_an_active_import_needs_a_consent_basis(tmp_path, newsletter) -> None:
    path = write_csv(tmp_path / "l.csv", [["ann@example.org", ""]])

    with pytest.raises(jobs.ImportRefused, match="consented"):
        run(path, newsletter, status="active", basis="   ")
    assert not SubscriberImport.objects.exists()


def test_the_command_says_what_it_wrote_before_a_damaged_gzip_stopped_it(
    tmp_path, newsletter, settings, monkeypatch
) -> None:
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 100)
    # Random names, so the compressed file is long enough to cut in the middle.
    rows = [[f"reader{i}@example.org", secrets.token_hex(16)] for i in range(3000)]
    packed = gzip.compress(write_csv(tmp_path / "list.csv", rows).read_bytes())
    damaged = tmp_path / "list.csv.gz"
    damaged.write_bytes(packed[: len(packed) // 2])
    out = io.StringIO()

    with pytest.raises(CommandError, match="the compressed file is damaged"):
        call_command(
            "import_subscribers",
            str(damaged),
            newsletter="daily-digest",
            status="active",
            consent_basis="old list",
            stdout=out,
        )

    added = Subscriber.objects.count()
    assert 0 < added < 3000
    assert f"Stopped: {added} rows read; {added} added" in out.getvalue()


def test_the_command_imports_prints_a_summary_and_fails_on_a_missing_file(
    tmp_path, newsletter
) -> None:
    path = write_csv(tmp_path / "l.csv", [["ann@example.org", ""], ["nope", ""]])
    out = io.StringIO()

    call_command(
        "import_subscribers", str(path), newsletter="daily-digest", status="pending", stdout=out
    )

    text = out.getvalue()
    assert "100%  2 rows read" in text
    assert "Done: 2 rows read; 1 added" in text
    assert "skipped 1 invalid" in text
    assert "Confirmation emails queued: 1" in text
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "import_subscribers",
            str(tmp_path / "missing.csv"),
            newsletter="daily-digest",
            status="pending",
            stdout=io.StringIO(),
        )
    with pytest.raises(CommandError, match="consented"):
        call_command(
            "import_subscribers",
            str(path),
            newsletter="daily-digest",
            status="active",
            stdout=io.StringIO(),
        )
    (tmp_path / "no-email.csv").write_text("name\nAnn\n")
    with pytest.raises(CommandError, match="`email`"):
        call_command(
            "import_subscribers",
            str(tmp_path / "no-email.csv"),
            newsletter="daily-digest",
            status="pending",
            stdout=io.StringIO(),
        )


def test_starting_an_import_runs_it_on_a_worker_after_commit(
    tmp_path, newsletter, django_capture_on_commit_callbacks
) -> None:
    path = write_csv(tmp_path / "l.csv", [["ann@example.org", ""]])

    with django_capture_on_commit_callbacks(execute=True):
        job = jobs.start_import(
            newsletter=newsletter,
            target_status="pending",
            consent_basis="",
            file_path=path,
            original_name="l.csv",
            actor="t",
        )

    job.refresh_from_db()
    assert (job.state, job.added) == (SubscriberImport.State.DONE, 1)
    assert tasks.run_subscriber_import(job.pk) == "done"


def test_a_sign_up_after_an_import_of_the_same_address_finds_it_pending(
    tmp_path, newsletter
) -> None:
    run(
        write_csv(tmp_path / "l.csv", [["ann@example.org", ""]]),
        newsletter,
        status="pending",
        basis="",
    )

    services.subscribe(
        email="ANN@example.org",
        newsletters=[newsletter],
        source="form",
        consent=services.ConsentContext(),
    )

    assert Subscriber.objects.count() == 1
    assert status_of("ann@example.org", newsletter) == Status.PENDING


# --- the admin ---------------------------------------------------------------------------


def test_an_editor_uploads_a_file_and_watches_the_import_finish(
    admin_client, newsletter, django_capture_on_commit_callbacks
) -> None:
    upload = io.BytesIO(b"email,name\nann@example.org,Ann\nnope,\n")
    upload.name = "readers.csv"

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:subscriptions_subscriberimport_add"),
            {"newsletter": newsletter.pk, "file": upload, "status": "pending", "consent_basis": ""},
        )

    job = SubscriberImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "admin:subscriptions_subscriberimport_change", args=[job.pk]
    )
    page = admin_client.get(response["Location"]).content.decode()
    status = admin_client.get(reverse("admin:subscriptions_import_status", args=[job.pk])).json()
    download = admin_client.get(reverse("admin:subscriptions_import_report", args=[job.pk]))
    assert (status["state"], status["percent"], status["added"], status["skipped"]) == (
        "done",
        100,
        1,
        1,
    )
    assert 'data-progress-url="' in page and "Download the skipped rows" in page
    assert download["Content-Disposition"].startswith("attachment")
    assert b"nope" in b"".join(download.streaming_content)
    assert Path(job.file_path).name.startswith("upload-")  # never the uploader's name
    assert not Path(job.file_path).exists()  # imported, so the copy of the list is gone


def test_the_status_the_progress_bar_polls_moves_while_the_import_runs(
    admin_client, newsletter, settings, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 4)
    # Rows long enough that a chunk is more than the reader's buffer (8 KB): the bar
    # follows the file's read position.
    path = write_csv(
        tmp_path / "list.csv",
        [[f"r{i}@example.org", "", "x" * 2500] for i in range(20)],
        header=("email", "name", "note"),
    )
    seen = []

    def poll(progress: SubscriberImport) -> None:
        url = reverse("admin:subscriptions_import_status", args=[progress.pk])
        status = admin_client.get(url).json()
        seen.append((status["state"], status["percent"], status["rows_read"], status["added"]))

    job = import_file(path, newsletter, on_chunk=poll)
    status_url = reverse("admin:subscriptions_import_status", args=[job.pk])

    assert [state for state, *_ in seen] == ["running"] * 5
    assert [rows for _, _, rows, _ in seen] == [4, 8, 12, 16, 20]
    assert [added for *_, added in seen] == [4, 8, 12, 16, 20]
    percents = [percent for _, percent, *_ in seen]
    assert percents == sorted(percents) and len(set(percents)) == 5  # it moves
    assert 0 < percents[0] < 30 and percents[-1] < 100  # 100 only when done
    assert admin_client.get(status_url).json()["percent"] == 100


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_import_page_moves_its_bar_and_shows_the_summary_at_the_end(
    page, site, admin_client, newsletter
) -> None:
    job = SubscriberImport.objects.create(
        newsletter=newsletter,
        target_status="active",
        file_path="/nowhere/list.csv",
        original_name="list.csv",
        created_by="admin:ann",
        created_at=timezone.now(),
        started_at=timezone.now(),
        state=SubscriberImport.State.RUNNING,
        phase=SubscriberImport.Phase.READING,
        bytes_total=1000,
        bytes_read=250,
        rows_read=2_500,
    )
    session = admin_client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": site}]
    )
    page.goto(site + reverse("admin:subscriptions_subscriberimport_change", args=[job.pk]))
    bar = page.locator('#import-progress progress[data-value="percent"]')
    assert bar.get_attribute("value") == "22"

    # The worker writes its progress; the page shows it without a reload.
    SubscriberImport.objects.filter(pk=job.pk).update(bytes_read=750, rows_read=7_500, added=7_400)
    expect(bar).to_have_attribute("value", "67", timeout=10_000)
    expect(page.locator('[data-value="rows_read"]')).to_have_text("7,500")
    screenshot_of(page.locator("#import-progress"), "import-progress-running")

    SubscriberImport.objects.filter(pk=job.pk).update(
        state=SubscriberImport.State.DONE, bytes_read=1000, rows_read=10_000, added=9_900
    )
    expect(bar).to_have_attribute("value", "100", timeout=10_000)
    expect(page.locator('[data-value="state_label"]')).to_have_text("Done")
    expect(page.locator('[data-value="added"]')).to_have_text("9,900")


def test_an_active_upload_without_a_consent_basis_is_refused(admin_client, newsletter) -> None:
    upload = io.BytesIO(b"email\nann@example.org\n")
    upload.name = "readers.csv"

    response = admin_client.post(
        reverse("admin:subscriptions_subscriberimport_add"),
        {"newsletter": newsletter.pk, "file": upload, "status": "active", "consent_basis": " "},
    )

    assert response.status_code == 200
    assert "Say how these people consented." in response.content.decode()
    assert not SubscriberImport.objects.exists()


def test_an_address_erased_or_bounced_while_the_import_runs_is_not_added_back(
    tmp_path, newsletter, settings, monkeypatch
) -> None:
    monkeypatch.setattr(jobs, "CHUNK_ROWS", 2)
    other = NewsletterFactory(slug="other")
    ann = SubscriptionFactory(
        subscriber__email="ann@example.org", newsletter=other, status=Status.ACTIVE
    ).subscriber
    rows = [["r0@example.org"], ["r1@example.org"], ["r2@example.org"], ["r3@example.org"]]
    rows += [["r4@example.org"], ["ANN@example.org"], ["bob@example.org"], ["r5@example.org"]]
    path = write_csv(tmp_path / "list.csv", rows, header=("email",))

    def meanwhile(progress: SubscriberImport) -> None:
        # After the first chunk; the reader has checked the next ones already.
        if progress.rows_read == 2:
            personal_data.erase_subscriber(subscriber_id=ann.pk, actor="reader")
            suppression.suppress(
                email="bob@example.org", reason=SuppressedAddress.Reason.HARD_BOUNCE
            )

    job = import_file(path, newsletter, on_chunk=meanwhile)

    assert not Subscriber.objects.filter(email__iexact="ann@example.org").exists()
    assert not Subscriber.objects.filter(email="bob@example.org").exists()
    assert (job.added, job.suppressed) == (6, 2)
    assert report(job) == [
        ("7", "ANN@example.org", jobs.SUPPRESSED),
        ("8", "bob@example.org", jobs.SUPPRESSED),
    ]


def test_a_failed_imports_upload_goes_with_its_report(tmp_path, newsletter, settings) -> None:
    upload = Path(settings.IMPORT_DIR) / "upload-abc.csv"
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.write_text("email\nann@example.org\n")
    operators = write_csv(tmp_path / "operators-own.csv", [["bob@example.org", ""]])
    long_ago = timezone.now() - timedelta(days=settings.IMPORT_REPORT_RETENTION_DAYS + 1)
    for file_path in (upload, operators):
        SubscriberImport.objects.create(
            newsletter=newsletter,
            target_status="active",
            file_path=str(file_path),
            original_name="list.csv",
            created_by="t",
            created_at=long_ago,
            finished_at=long_ago,
            state=SubscriberImport.State.FAILED,
        )

    reports.discard_old_reports()

    assert not upload.exists()
    assert operators.exists()  # a file the command line named is the operator's


def test_reports_older_than_the_retention_are_deleted(tmp_path, newsletter, settings) -> None:
    job = run(write_csv(tmp_path / "l.csv", [["nope", ""]]), newsletter)
    report_file = Path(job.report_path)
    assert report_file.exists()

    kept = reports.discard_old_reports()
    SubscriberImport.objects.filter(pk=job.pk).update(
        finished_at=timezone.now() - timedelta(days=settings.IMPORT_REPORT_RETENTION_DAYS + 1)
    )
    gone = reports.discard_old_reports()

    assert (kept, gone) == (0, 1)
    assert not report_file.exists()
    assert SubscriberImport.objects.get(pk=job.pk).report_path == ""
