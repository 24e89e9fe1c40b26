"""Daily snapshots per newsletter, written by a beat task so the dashboard's charts cost
a handful of rows instead of a scan of every subscription."""

from django.db import models

from subscriptions.models.subscriptions import Newsletter


class NewsletterSnapshot(models.Model):
    newsletter = models.ForeignKey(Newsletter, on_delete=models.CASCADE, related_name="snapshots")
    day = models.DateField()
    active = models.PositiveIntegerField(default=0)
    pending = models.PositiveIntegerField(default=0)
    unsubscribed = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    complained = models.PositiveIntegerField(default=0)
    taken_at = models.DateTimeField()

    class Meta:
        ordering = ["newsletter", "day"]
        constraints = [
            models.UniqueConstraint(fields=["newsletter", "day"], name="snapshot_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.newsletter} on {self.day}: {self.active} active"
