"""An import written on two database connections at once (chunk k's statements while
chunk k-1 commits) ends exactly as one written a chunk at a time: the same people,
subscriptions, consent records, event log, confirmations and report, in file order;
and a chunk that fails, even at its commit, takes every later chunk down with it, so
the import resumes where it stopped. On the real PostgreSQL, outside the suite's
per-test transaction (the second connection could not see inside it)."""

import csv
import threading
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from subscriptions.lists.imports import jobs, writing
from subscriptions.lists.imports.pipeline import ChunkWriter
from subscriptions.lists.imports.reading import Chunk
from subscriptions.mail import suppression
from subscriptions.models import (
    ConsentRecord,
    Newsletter,
    OutboundEmail,
    Subscriber,
    SubscriberImport,
    Subscription,
    SubscriptionEvent,
    SuppressedAddress,
)
from tests.factories import NewsletterFactory, SubscriberFactory, SubscriptionFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
Status = Subscription.Status

CHUNK_ROWS = 4
# Repeats inside a chunk and across chunks (in another case), people who exist with
# every kind of subscription, suppressed and erased addresses, and bad rows.
ROWS = [
    ["first@example.org", "First"],
    ["active@example.org", "Already"],
    ["pending@example.org", ""],
    ["FIRST@example.org", "Repeat in the chunk"],
    ["left@example.org", ""],
    ["not an address", ""],
    ["bounced@example.org", ""],
    ["other@example.org", "Other"],
    ["Erased@Example.org", ""],
    ["First@Example.org", "Repeat in a later chunk"],
    *[[f"reader{i}@example.org", f"Reader {i}"] for i in range(14)],
    ["reader3@EXAMPLE.org", "Repeat two chunks on"],
    ["ann@bücher.example", "IDN"],
    ["pending@example.org", "Repeat of an upgrade"],
]


@pytest.fixture(autouse=True)
def _small_chunks(settings, tmp_path, monkeypatch):
    settings.IMPORT_DIR = tmp_path / "imports"
    monkeypatch.setattr(jobs, "CHUNK_ROWS", CHUNK_ROWS)
    # Confirmations microseconds apart: their order is the file's, whatever the clock.
    settings.IMPORT_CONFIRMATIONS_PER_MINUTE = 6_000_000


def the_world() -> Newsletter:
    """The same starting point for every run: who exists, and how."""
    newsletter = NewsletterFactory(slug="daily-digest")
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
    SubscriberFactory(email="reader5@example.org", name="Kept name")
    suppression.suppress(email="bounced@example.org", reason=SuppressedAddress.Reason.HARD_BOUNCE)
    SuppressedAddress.objects.create(
        email="",
        email_hash=suppression.address_hash("erased@example.org"),
        reason=SuppressedAddress.Reason.ERASED,
        created_at=timezone.now(),
    )
    return newsletter


def forget_everything() -> None:
    for model in (OutboundEmail, SubscriberImport, Subscriber, SuppressedAddress, Newsletter):
        model.objects.all().delete()


def write_file(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name"])
        writer.writerows(ROWS)
    return path


def start(path: Path, newsletter: Newsletter, status: str) -> SubscriberImport:
    return jobs.start_import(
        newsletter=newsletter,
        target_status=status,
        consent_basis="old list" if status == Status.ACTIVE else "",
        file_path=path,
        original_name=path.name,
        actor="admin:ann",
        enqueue=False,
    )


def outcome(job: SubscriberImport) -> dict:
    """Everything an import leaves behind, in terms that do not depend on row ids."""
    job.refresh_from_db()
    with open(job.report_path, newline="", encoding="utf-8") as handle:
        report = list(csv.reader(handle))
    confirmations = list(
        OutboundEmail.objects.order_by("next_attempt_at").values_list("to_email", flat=True)
    )
    return {
        "counts": (
            job.state,
            job.rows_read,
            job.added,
            job.upgraded,
            job.already_subscribed,
            job.invalid,
            job.duplicates,
            job.suppressed,
            job.left_alone,
            job.confirmations_queued,
        ),
        "report": report,
        "subscribers": sorted(Subscriber.objects.values_list("email", "name")),
        "subscriptions": sorted(
            Subscription.objects.values_list("subscriber__email", "newsletter__slug", "status")
        ),
        "consent": sorted(
            ConsentRecord.objects.values_list(
                "subscription__subscriber__email", "kind", "consent_text"
            )
        ),
        "events": sorted(
            SubscriptionEvent.objects.values_list(
                "subscription__subscriber__email", "kind", "from_status", "to_status"
            )
        ),
        # Confirmations go out paced, in the order of the file.
        "confirmations": confirmations,
    }


def backends_used(monkeypatch) -> set[int]:
    """The database sessions the chunks were written on."""
    pids: set[int] = set()
    real_write_chunk = writing.write_chunk

    def spying(cursor, *args, **kwargs):
        pids.add(connection.connection.info.backend_pid)
        return real_write_chunk(cursor, *args, **kwargs)

    monkeypatch.setattr(writing, "write_chunk", spying)
    return pids


@pytest.mark.parametrize("status", [Status.ACTIVE, Status.PENDING])
def test_two_lanes_end_exactly_as_one_lane_does(tmp_path, settings, monkeypatch, status) -> None:
    path = write_file(tmp_path / "list.csv")
    results = {}
    for lanes in (1, 2):
        monkeypatch.setattr(jobs, "WRITE_LANES", lanes)
        pids = backends_used(monkeypatch)
        job = jobs.run_import(start(path, the_world(), status).pk)
        results[lanes] = outcome(job)
        assert len(pids) == lanes
        forget_everything()

    assert results[2] == results[1]
    one = results[1]
    assert one["counts"][0] == SubscriberImport.State.DONE
    # The first spelling in the file wins, and each repeat is reported as a repeat.
    assert ("first@example.org", "First") in one["subscribers"]
    repeats = [row[0] for row in one["report"][1:] if row[2] == jobs.REPEAT]
    # Line 28 repeats line 4, which an active import upgraded; a pending one left it.
    expected = ["5", "11", "26", "28"] if status == Status.ACTIVE else ["5", "11", "26"]
    assert repeats == expected
    if status == Status.PENDING:
        assert one["confirmations"][:3] == [
            "first@example.org",
            "other@example.org",
            "reader0@example.org",
        ]


def test_a_chunk_that_fails_stops_the_import_after_the_last_chunk_before_it(
    tmp_path, settings, monkeypatch
) -> None:
    monkeypatch.setattr(jobs, "WRITE_LANES", 2)
    path = write_file(tmp_path / "list.csv")
    clean = outcome(jobs.run_import(start(path, the_world(), Status.ACTIVE).pk))
    forget_everything()
    real_write_chunk = writing.write_chunk
    calls = []

    def fails_on_the_fourth_chunk(cursor, *args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("the database went away")
        return real_write_chunk(cursor, *args, **kwargs)

    monkeypatch.setattr(writing, "write_chunk", fails_on_the_fourth_chunk)
    job = start(path, the_world(), Status.ACTIVE)

    with pytest.raises(RuntimeError):
        jobs.run_import(job.pk)

    job.refresh_from_db()
    assert job.state == SubscriberImport.State.FAILED
    assert job.lines_done == 1 + 3 * CHUNK_ROWS  # the header and three whole chunks
    assert job.rows_read == 3 * CHUNK_ROWS
    imported = set(Subscriber.objects.values_list("email", flat=True))
    assert "reader1@example.org" in imported  # line 13, the third chunk
    assert "reader2@example.org" not in imported  # line 14, the fourth
    monkeypatch.setattr(writing, "write_chunk", real_write_chunk)
    SubscriberImport.objects.filter(pk=job.pk).update(state=SubscriberImport.State.RUNNING)

    assert outcome(jobs.run_import(job.pk)) == clean


# --- the two lanes on their own ----------------------------------------------------------


@pytest.fixture
def probe_table():
    """A scratch table the chunks write their last line to. Its deferred constraint
    trigger fails the commit of line 99 once the test releases advisory lock 4242, so
    a test decides when that commit fails."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE lane_probe (line integer)")
        cursor.execute(
            "CREATE FUNCTION lane_probe_check() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN IF NEW.line = 99 THEN PERFORM pg_advisory_lock(4242); "
            "PERFORM pg_advisory_unlock(4242); "
            "RAISE EXCEPTION 'line 99 fails at commit'; END IF; RETURN NULL; END $$"
        )
        cursor.execute(
            "CREATE CONSTRAINT TRIGGER lane_probe_at_commit AFTER INSERT ON lane_probe "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION lane_probe_check()"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE lane_probe")
        cursor.execute("DROP FUNCTION lane_probe_check()")


def chunk(last_line: int) -> Chunk:
    return Chunk(rows=[], rejections=[], bytes_read=0, rows_read=1, last_line=last_line)


def committed_lines() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT line FROM lane_probe ORDER BY line")
        return [line for (line,) in cursor.fetchall()]


def test_a_commit_that_fails_rolls_back_the_next_chunk_already_written(probe_table) -> None:
    written_after_the_failing_one = threading.Event()
    handed_back: list[int] = []

    def write(item: Chunk) -> int:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO lane_probe VALUES (%s)", [item.last_line])
        if item.last_line == 100:
            written_after_the_failing_one.set()
        return item.last_line

    def committed(item: Chunk, result: int) -> None:
        handed_back.append(result)

    locked = threading.Event()
    releaser = threading.Thread(
        target=_hold_the_lock_until, args=(locked, written_after_the_failing_one), daemon=True
    )
    releaser.start()
    assert locked.wait(timeout=10)
    writer = ChunkWriter(prepare=lambda: None, write=write, committed=committed, lanes=2)

    with pytest.raises(Exception, match="line 99 fails at commit"):
        writer.run(iter([chunk(97), chunk(98), chunk(99), chunk(100), chunk(101)]))

    releaser.join(timeout=10)
    assert written_after_the_failing_one.is_set()  # chunk 100 was written meanwhile...
    assert committed_lines() == [97, 98]  # ...and rolled back with 99
    assert handed_back == [97, 98]


def _hold_the_lock_until(locked: threading.Event, written: threading.Event) -> None:
    """Hold line 99's commit back until line 100 is written, then let it go on (and
    fail). A session's advisory lock is released by the session that took it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(4242)")
        locked.set()
        written.wait(timeout=10)
        cursor.execute("SELECT pg_advisory_unlock(4242)")
    connection.close()


def test_chunks_are_handed_back_in_file_order(probe_table) -> None:
    handed_back: list[int] = []

    def write(item: Chunk) -> int:
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO lane_probe VALUES (%s)", [item.last_line])
        return item.last_line

    writer = ChunkWriter(
        prepare=lambda: None,
        write=write,
        committed=lambda item, result: handed_back.append(result),
        lanes=2,
    )
    writer.run(iter([chunk(line) for line in range(1, 41)]))

    assert handed_back == list(range(1, 41))
    assert committed_lines() == list(range(1, 41))
