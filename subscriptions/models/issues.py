"""Issues of a newsletter and their deliveries: what an editor sends, and to whom.

The audience is fixed when sending starts, one delivery row per reader, so a reader
who signs up later does not get half an issue and a worker can always tell who is left.
"""

from django.db import models

from subscriptions.models.subscriptions import Newsletter, Subscriber


class Issue(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        # Paused by an editor, or by us while the provider refuses mail (429, 5xx).
        PAUSED = "paused", "Paused"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"

    newsletter = models.ForeignKey(Newsletter, on_delete=models.PROTECT, related_name="issues")
    subject = models.CharField(max_length=200)
    preheader = models.CharField(
        max_length=200, blank=True, help_text="The line mail apps show after the subject."
    )
    body = models.TextField(help_text="Markdown.")
    # The Ukrainian version, for readers who signed up in Ukrainian; blank: they get the
    # default version.
    subject_uk = models.CharField("subject (Ukrainian)", max_length=200, blank=True)
    preheader_uk = models.CharField("preheader (Ukrainian)", max_length=200, blank=True)
    body_uk = models.TextField("body (Ukrainian)", blank=True, help_text="Markdown.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    # While the provider refuses mail (429, 5xx, no connection): sending waits until
    # then, and each refusal in a row doubles the wait.
    paused_until = models.DateTimeField(null=True, blank=True)
    provider_refusals = models.PositiveSmallIntegerField(default=0)
    # What the provider last said when it refused, for the editor.
    last_error = models.CharField(max_length=500, blank=True)
    # When a worker last finished a batch of it: the sweep hands an issue whose workers
    # went quiet to the workers again.
    progressed_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # How many readers the issue was fixed to when sending started.
    audience = models.PositiveIntegerField(default=0)
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [("send_issue", "Can send and schedule issues")]
        indexes = [
            # The scheduler's question every few seconds: which issues are due or sending?
            models.Index(
                fields=["status", "scheduled_at"],
                condition=models.Q(status__in=["scheduled", "sending"]),
                name="issue_due",
            ),
            models.Index(fields=["newsletter", "status", "finished_at"], name="issue_archive"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["draft", "scheduled", "sending", "paused", "sent", "cancelled"]
                ),
                name="issue_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.subject


class IssueDelivery(models.Model):
    """One reader's copy of an issue: claimed in batches, marked sent only after the
    provider accepted it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # Unsubscribed, bounced, complained or suppressed by the time its batch was claimed.
        SKIPPED = "skipped", "Skipped"

    # Neither key is checked by the database (db_constraint=False): an audience is one
    # INSERT ... SELECT of a million rows, whose per-row foreign-key checks took two
    # thirds of its time (BENCHMARKS.md). Every row comes from the subscriptions that
    # statement reads, under the issue's row lock, and rows leave only through Django's
    # deletion collector (CASCADE: an erasure, a draft's deletion), which
    # tests/test_issue_claims.py holds to leaving no copy behind.
    issue = models.ForeignKey(
        Issue,
        on_delete=models.CASCADE,
        related_name="deliveries",
        db_index=False,
        db_constraint=False,
    )
    # CASCADE: erasing a person removes their copies with them. Their subscription is
    # the (subscriber, newsletter) pair, found through its unique index when a batch is
    # claimed: a column for it would cost a million-reader audience another index.
    subscriber = models.ForeignKey(
        Subscriber,
        on_delete=models.CASCADE,
        related_name="issue_deliveries",
        db_index=False,
        db_constraint=False,
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    # Claims taken: more than one on a sent copy means its batch may have gone out twice
    # (a worker died between the provider's answer and our record of it).
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            # Subscriber first: the same index finds a person's copies for an erasure.
            models.UniqueConstraint(
                fields=["subscriber", "issue"], name="issue_delivery_one_per_reader"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["queued", "sending", "sent", "failed", "skipped"]),
                name="issue_delivery_status_valid",
            ),
        ]
        indexes = [
            # A batch's claim (the queued copies of an issue, in order) and the progress
            # bar's counts by status.
            models.Index(fields=["issue", "status", "id"], name="issue_delivery_progress"),
        ]

    def __str__(self) -> str:
        return f"{self.issue} → {self.subscriber_id} ({self.status})"
