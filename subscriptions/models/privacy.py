"""The record of privacy requests: who asked for a subscriber's data or its erasure,
and when. It outlives the erasure and holds no personal data: the subscriber is then
known only by the hash of the address."""

from django.db import models

from subscriptions.models.subscriptions import Subscriber


class PrivacyEvent(models.Model):
    class Kind(models.TextChoices):
        EXPORT_REQUESTED = "export_requested", "Data export requested (email sent)"
        EXPORTED = "exported", "Data exported"
        ERASURE_REQUESTED = "erasure_requested", "Erasure requested (email sent)"
        ERASED = "erased", "Personal data erased"

    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    email_hash = models.CharField(max_length=64, db_index=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    actor = models.CharField(max_length=200, help_text='"reader" or "admin:<username>"')
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.actor}"
