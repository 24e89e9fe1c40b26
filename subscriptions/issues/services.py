"""What editors do to an issue: write it, send it now or at a time, pause, resume,
cancel. Each is one transaction that locks the issue's row first, so two editors (or
an editor and the scheduler) pressing at once leave one outcome.

Sending starts by fixing the audience: one delivery row per active subscription of the
newsletter at that moment, written by the database in one statement. Workers then take
the rows in batches (`delivery.py`).
"""

import logging
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from subscriptions.exceptions import IssueInvalid, IssueNotSendable
from subscriptions.issues import copies, delivery, rendering
from subscriptions.models import Issue, IssueDelivery, Newsletter, Subscription
from subscriptions.platform.task_queue import send_to_queue

logger = logging.getLogger(__name__)

SEND_TASK = "subscriptions.tasks.send_issue"
# Tasks handed the issue when it starts or resumes: workers that may share it at once.
# Each takes batches until none is left, so one more than the workers only waits.
PARALLEL_SENDERS = 2

Status = Issue.Status


def audience_count(newsletter: Newsletter) -> int:
    """Readers an issue of `newsletter` would go to if it were sent now."""
    return Subscription.objects.filter(
        newsletter=newsletter, status=Subscription.Status.ACTIVE
    ).count()


def check_content(*, subject: str, body: str) -> None:
    """Raise `IssueInvalid` for an issue that cannot be sent as written."""
    errors = {}
    if not subject.strip():
        errors["subject"] = "An issue needs a subject."
    if not body.strip():
        errors["body"] = "An issue needs a body."
    if errors:
        raise IssueInvalid(errors)


# What an editor writes; the rest of an issue is the sending's.
WRITTEN = ("newsletter", "subject", "preheader", "body", "subject_uk", "preheader_uk", "body_uk")


def create_issue(
    *,
    newsletter: Newsletter,
    subject: str,
    body: str,
    preheader: str = "",
    actor: str,
    **translations: str,
) -> Issue:
    """A draft issue of `newsletter`; `translations` are its other versions' fields
    (`subject_uk`, `preheader_uk`, `body_uk`)."""
    check_content(subject=subject, body=body)
    unknown = set(translations) - set(WRITTEN)
    if unknown:
        raise TypeError(f"not an issue's written fields: {sorted(unknown)}")
    return Issue.objects.create(
        newsletter=newsletter,
        subject=subject.strip(),
        preheader=preheader.strip(),
        body=body,
        created_by=actor,
        **translations,
    )


def edit_issue(*, issue_id: int, changes: dict[str, object], actor: str) -> Issue:
    """Rewrite a draft or scheduled issue; what went out (or is going) stays as it went
    out. Only the written fields are saved, so the sending's own are never overwritten
    with what an editor's form read earlier."""
    unknown = set(changes) - set(WRITTEN)
    if unknown:
        raise TypeError(f"not an issue's written fields: {sorted(unknown)}")
    with transaction.atomic():
        issue = _locked(issue_id)
        if issue.status not in (Status.DRAFT, Status.SCHEDULED):
            raise IssueNotSendable(
                f"This issue is {issue.get_status_display().lower()}: only a draft or a "
                "scheduled issue can be changed, and what went out stays as it went out. "
                "Nothing was changed."
            )
        for name, value in changes.items():
            setattr(issue, name, value)
        check_content(subject=issue.subject, body=issue.body)
        issue.save(update_fields=[*changes, "updated_at"])
    logger.info("issue %s: edited %s (%s)", issue_id, sorted(changes), actor)
    return issue


def send_now(*, issue_id: int, actor: str) -> Issue:
    """Fix the audience and start sending."""
    with transaction.atomic():
        issue = _locked(issue_id)
        _check_sendable(issue, allowed=(Status.DRAFT, Status.SCHEDULED))
        _start(issue, now=timezone.now())
    logger.info("issue %s: sending to %s readers (%s)", issue.pk, issue.audience, actor)
    return issue


def schedule(*, issue_id: int, at: datetime, actor: str) -> Issue:
    """Send at `at` (the scheduler starts it within seconds of then)."""
    if timezone.is_naive(at):
        raise IssueInvalid({"scheduled_at": "Give the time with its time zone."})
    if at <= timezone.now():
        raise IssueInvalid({"scheduled_at": "That time has passed; choose a later one."})
    with transaction.atomic():
        issue = _locked(issue_id)
        _check_sendable(issue, allowed=(Status.DRAFT, Status.SCHEDULED))
        issue.status = Status.SCHEDULED
        issue.scheduled_at = at
        issue.save(update_fields=["status", "scheduled_at", "updated_at"])
    logger.info("issue %s: scheduled for %s (%s)", issue.pk, at.isoformat(), actor)
    return issue


def start_due_issues(*, now: datetime | None = None) -> list[int]:
    """Start every scheduled issue whose time has come; returns their ids."""
    now = now or timezone.now()
    due = list(
        Issue.objects.filter(status=Status.SCHEDULED, scheduled_at__lte=now).values_list(
            "pk", flat=True
        )
    )
    started = []
    for issue_id in due:
        with transaction.atomic():
            issue = _locked(issue_id)
            # Cancelled, or started by an editor, since the list was read.
            if issue.status != Status.SCHEDULED:
                continue
            _start(issue, now=now)
            started.append(issue_id)
    return started


def send_test(issue: Issue, *, to: str) -> None:
    """The issue as readers get it, to one editor's address through the configured
    provider, at once; raises what the provider raises. Changes nothing stored."""
    edition = rendering.edition(
        issue, settings.LANGUAGE_CODE, archive_url=copies.archive_url(issue)
    )
    get_connection().send_messages([copies.test_message(issue, edition, to=to)])


def requeue_quiet_issues(*, now: datetime | None = None) -> int:
    """Hand sending issues no worker has moved for a lease's length to the workers again
    (their task was lost with the broker, or their worker died); returns how many."""
    now = now or timezone.now()
    quiet_since = now - timedelta(seconds=delivery.LEASE_SECONDS)
    quiet = list(
        Issue.objects.filter(status=Status.SENDING)
        .filter(Q(paused_until__isnull=True) | Q(paused_until__lte=now))
        .filter(
            Q(progressed_at__lt=quiet_since)
            | Q(progressed_at__isnull=True, started_at__lt=quiet_since)
        )
        .values_list("pk", flat=True)
    )
    for issue_id in quiet:
        # Counted as moved, so the next sweeps wait a lease again before another hand.
        Issue.objects.filter(pk=issue_id).update(progressed_at=now)
        hand_to_workers(issue_id)
    return len(quiet)


def pause(*, issue_id: int, actor: str) -> Issue:
    """Stop handing out batches; a batch being sent finishes."""
    return _move(issue_id, from_=(Status.SENDING,), to=Status.PAUSED, actor=actor)


def resume(*, issue_id: int, actor: str) -> Issue:
    issue = _move(issue_id, from_=(Status.PAUSED,), to=Status.SENDING, actor=actor)
    transaction.on_commit(partial(hand_to_workers, issue.pk), robust=True)
    return issue


def cancel(*, issue_id: int, actor: str) -> Issue:
    """Send no more of it: the readers not reached yet are skipped."""
    with transaction.atomic():
        issue = _move(
            issue_id,
            from_=(Status.DRAFT, Status.SCHEDULED, Status.SENDING, Status.PAUSED),
            to=Status.CANCELLED,
            actor=actor,
        )
        IssueDelivery.objects.filter(issue_id=issue_id, status=IssueDelivery.Status.QUEUED).update(
            status=IssueDelivery.Status.SKIPPED, error="cancelled"
        )
    return issue


def hand_to_workers(issue_id: int) -> None:
    """Enqueue the issue's sending tasks. A broker that is down only delays it: the
    scheduler's sweep hands a sending issue to the workers again."""
    try:
        for _ in range(PARALLEL_SENDERS):
            send_to_queue(SEND_TASK, settings.ISSUE_QUEUE, issue_id)
    except Exception:  # noqa: BLE001 - any broker failure; the sweep is the safety net
        logger.warning("could not enqueue issue %s; the sweep will", issue_id, exc_info=True)


# --- internals ---------------------------------------------------------------------------


def _locked(issue_id: int) -> Issue:
    try:
        return Issue.objects.select_for_update().select_related("newsletter").get(pk=issue_id)
    except Issue.DoesNotExist as exc:
        raise IssueNotSendable("There is no such issue.") from exc


def _check_sendable(issue: Issue, *, allowed: tuple[str, ...]) -> None:
    if issue.status not in allowed:
        raise IssueNotSendable(f"This issue is {issue.get_status_display().lower()}.")
    check_content(subject=issue.subject, body=issue.body)
    if audience_count(issue.newsletter) == 0:
        raise IssueNotSendable(f"{issue.newsletter.name} has no active readers yet.")


def _start(issue: Issue, *, now: datetime) -> None:
    issue.audience = _fix_audience(issue)
    issue.status = Status.SENDING if issue.audience else Status.SENT
    issue.started_at = now
    issue.finished_at = None if issue.audience else now
    issue.save(update_fields=["audience", "status", "started_at", "finished_at", "updated_at"])
    if issue.audience:
        transaction.on_commit(partial(hand_to_workers, issue.pk), robust=True)


def _fix_audience(issue: Issue) -> int:
    """One delivery row per active reader, written by the database in one statement.
    Once per issue: the caller holds the issue's row lock and has seen it unstarted (a
    second run would break the unique (subscriber, issue) pair, not double anyone)."""
    delivery = IssueDelivery._meta.db_table
    subscription = Subscription._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {delivery} (issue_id, subscriber_id, status, attempts, error) "  # noqa: S608 - names from the models
            f"SELECT %s, subscriber_id, %s, 0, '' FROM {subscription} "
            "WHERE newsletter_id = %s AND status = %s",
            [
                issue.pk,
                IssueDelivery.Status.QUEUED,
                issue.newsletter_id,
                Subscription.Status.ACTIVE,
            ],
        )
        # The rows it wrote: no second pass over a million to count them.
        return cursor.rowcount


def _move(issue_id: int, *, from_: tuple[str, ...], to: str, actor: str) -> Issue:
    with transaction.atomic():
        issue = _locked(issue_id)
        if issue.status not in from_:
            raise IssueNotSendable(f"This issue is {issue.get_status_display().lower()}.")
        issue.status = to
        # An editor's word starts the provider's count of refusals afresh.
        issue.paused_until = None
        issue.provider_refusals = 0
        issue.save(update_fields=["status", "paused_until", "provider_refusals", "updated_at"])
    logger.info("issue %s: %s (%s)", issue_id, to, actor)
    return issue
