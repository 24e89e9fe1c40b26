"""Subscriber imports: one row per uploaded file, with its progress and outcome."""

from django.db import models

from subscriptions.models.subscriptions import Newsletter, Subscription


class SubscriberImport(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Phase(models.TextChoices):
        WAITING = "waiting", "Waiting for a worker"
        READING = "reading", "Reading and checking rows"
        WRITING = "writing", "Adding subscribers"
        FINISHED = "finished", "Finished"

    newsletter = models.ForeignKey(Newsletter, on_delete=models.CASCADE, related_name="imports")
    # pending: each new subscriber gets a confirmation email; active: they consented
    # elsewhere, and `consent_basis` says where.
    target_status = models.CharField(
        max_length=20,
        choices=[
            (Subscription.Status.PENDING, "Pending: send a confirmation email"),
            (Subscription.Status.ACTIVE, "Active: consent was given elsewhere"),
        ],
    )
    consent_basis = models.TextField(blank=True)
    file_path = models.CharField(max_length=500, help_text="The uploaded file, on disk.")
    original_name = models.CharField(max_length=255)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    phase = models.CharField(max_length=20, choices=Phase.choices, default=Phase.WAITING)
    error = models.TextField(blank=True)
    bytes_total = models.PositiveBigIntegerField(default=0)
    bytes_read = models.PositiveBigIntegerField(default=0)
    rows_read = models.PositiveIntegerField(default=0)
    # The file's last line whose chunk is committed: a resumed import starts after it.
    lines_done = models.PositiveIntegerField(default=0)
    confirmations_queued = models.PositiveIntegerField(default=0)
    # Outcome per row: added (new subscription), upgraded (pending became active),
    # already subscribed (active already, or pending for a pending import), and the
    # rows skipped, each listed with its reason in the report.
    added = models.PositiveIntegerField(default=0)
    upgraded = models.PositiveIntegerField(default=0)
    already_subscribed = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    duplicates = models.PositiveIntegerField(default=0)
    suppressed = models.PositiveIntegerField(default=0)
    left_alone = models.PositiveIntegerField(
        default=0, help_text="Unsubscribed, bounced or complained earlier: never re-added."
    )
    report_path = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.original_name} → {self.newsletter} ({self.get_state_display()})"

    @property
    def percent(self) -> int:
        if self.state == self.State.DONE:
            return 100
        if not self.bytes_total:
            return 0
        # Reading is most of the work; writing is the last stretch.
        read = min(1.0, self.bytes_read / self.bytes_total)
        return int(read * 90) + (5 if self.phase == self.Phase.WRITING else 0)

    @property
    def skipped(self) -> int:
        return self.invalid + self.duplicates + self.suppressed + self.left_alone
