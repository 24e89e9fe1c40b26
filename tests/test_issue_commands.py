"""Sending and scheduling an issue: from the command line (`send_issue`) and the
services behind the admin, with clear refusals for what cannot be sent."""

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from subscriptions.exceptions import IssueInvalid, IssueNotSendable
from subscriptions.issues import services
from subscriptions.models import Issue, IssueDelivery
from tests.factories import NewsletterFactory
from tests.issue_support import draft, readers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def body_file(tmp_path: Path) -> Path:
    path = tmp_path / "thursday.md"
    path.write_text("Hello, **readers**.\n", encoding="utf-8")
    return path


@pytest.fixture
def newsletter():
    newsletter = NewsletterFactory(name="Explaining Ukraine", slug="explaining-ukraine")
    readers(newsletter, 12)
    return newsletter


def run(*args: str) -> str:
    out = StringIO()
    call_command("send_issue", *args, stdout=out)
    return out.getvalue()


def test_the_command_writes_the_issue_and_sends_it_now(newsletter, body_file):
    out = run("explaining-ukraine", "--subject", "Thursday", "--body", str(body_file))

    issue = Issue.objects.get()
    assert f"Issue {issue.pk}: sending to 12 reader(s)." in out
    assert issue.status == Issue.Status.SENT
    assert len(mail.outbox) == 12
    assert mail.outbox[0].subject == "Thursday"


def test_the_command_schedules_for_a_time_with_its_offset(newsletter, body_file):
    at = (timezone.now() + timedelta(days=2)).astimezone(timezone.get_fixed_timezone(120))

    out = run(
        "explaining-ukraine", "--subject", "Later", "--body", str(body_file), "--at", at.isoformat()
    )

    issue = Issue.objects.get()
    assert issue.status == Issue.Status.SCHEDULED
    assert issue.scheduled_at == at
    assert "scheduled for" in out
    assert mail.outbox == []


def test_a_dry_run_prints_the_audience_and_changes_nothing(newsletter, body_file):
    out = run("explaining-ukraine", "--subject", "Thursday", "--body", str(body_file), "--dry-run")

    assert "would go to 12 reader(s)" in out
    assert not Issue.objects.exists()
    assert mail.outbox == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["no-such-newsletter", "--subject", "S"],
            "No newsletter has the slug 'no-such-newsletter'",
        ),
        (["explaining-ukraine", "--subject", " "], "An issue needs a subject."),
        (
            ["explaining-ukraine", "--subject", "S", "--at", "2020-01-01T07:00:00+02:00"],
            "has passed",
        ),
        (
            ["explaining-ukraine", "--subject", "S", "--at", "2030-01-01T07:00:00"],
            "needs its offset",
        ),
        (["explaining-ukraine", "--subject", "S", "--at", "next thursday"], "not an ISO 8601 time"),
    ],
)
def test_the_command_refuses_with_a_clear_message(newsletter, body_file, arguments, message):
    with pytest.raises(CommandError, match=message):
        run(*arguments, "--body", str(body_file))

    assert not Issue.objects.exists()
    assert mail.outbox == []


def test_the_command_refuses_an_empty_or_missing_body(newsletter, tmp_path):
    empty = tmp_path / "empty.md"
    empty.write_text("\n  \n", encoding="utf-8")

    with pytest.raises(CommandError, match="An issue needs a body."):
        run("explaining-ukraine", "--subject", "S", "--body", str(empty))
    with pytest.raises(CommandError, match="Cannot read"):
        run("explaining-ukraine", "--subject", "S", "--body", str(tmp_path / "missing.md"))
    assert not Issue.objects.exists()


def test_an_issue_for_a_newsletter_with_no_readers_is_refused_and_nothing_is_kept(body_file):
    NewsletterFactory(name="Brand new", slug="brand-new")

    with pytest.raises(CommandError, match="Brand new has no active readers yet."):
        run("brand-new", "--subject", "S", "--body", str(body_file))

    assert not Issue.objects.exists()


def test_an_issue_without_subject_or_body_cannot_be_written():
    with pytest.raises(IssueInvalid) as refused:
        draft(subject="", body="  ")

    assert refused.value.errors == {
        "subject": "An issue needs a subject.",
        "body": "An issue needs a body.",
    }


def test_a_schedule_in_the_past_or_without_a_time_zone_is_refused(newsletter):
    issue = draft(newsletter)

    with pytest.raises(IssueInvalid, match="That time has passed"):
        services.schedule(issue_id=issue.pk, at=timezone.now() - timedelta(minutes=1), actor="t")
    with pytest.raises(IssueInvalid, match="time zone"):
        services.schedule(issue_id=issue.pk, at=timezone.now().replace(tzinfo=None), actor="t")
    issue.refresh_from_db()
    assert issue.status == Issue.Status.DRAFT


def test_a_scheduled_issue_starts_when_its_time_comes_and_not_before(newsletter):
    issue = draft(newsletter)
    at = timezone.now() + timedelta(hours=1)
    services.schedule(issue_id=issue.pk, at=at, actor="t")

    assert services.start_due_issues(now=at - timedelta(seconds=1)) == []
    assert mail.outbox == []
    assert services.start_due_issues(now=at) == [issue.pk]

    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT
    assert len(mail.outbox) == 12
    assert services.start_due_issues(now=at + timedelta(hours=1)) == []  # once


def test_pause_resume_and_cancel(newsletter, monkeypatch):
    monkeypatch.setattr(services, "hand_to_workers", lambda issue_id: None)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")

    services.pause(issue_id=issue.pk, actor="t")
    from subscriptions.issues import delivery, transport

    assert delivery.send_batches(issue.pk).sent == 0  # a paused issue is not sent
    with pytest.raises(IssueNotSendable, match="paused"):
        services.pause(issue_id=issue.pk, actor="t")
    services.resume(issue_id=issue.pk, actor="t")
    monkeypatch.setattr(transport, "PER_MESSAGE_BATCH", 5)
    delivery.claim_batch(Issue.objects.get(pk=issue.pk), now=timezone.now())
    services.cancel(issue_id=issue.pk, actor="t")

    assert delivery.send_batches(issue.pk).sent == 0
    issue.refresh_from_db()
    assert issue.status == Issue.Status.CANCELLED
    assert (
        IssueDelivery.objects.filter(issue=issue, status="skipped", error="cancelled").count() == 7
    )
    assert mail.outbox == []
    with pytest.raises(IssueNotSendable, match="cancelled"):
        services.send_now(issue_id=issue.pk, actor="t")


def test_an_issue_is_not_sent_twice(newsletter):
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")

    with pytest.raises(IssueNotSendable, match="sent"):
        services.send_now(issue_id=issue.pk, actor="t")
    assert len(mail.outbox) == 12
