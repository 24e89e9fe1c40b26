"""The email outbox, delivery events from the ESPs, the suppression list and the
sign-up domain rules."""

from django.db import models
from django.db.models.functions import Lower

from subscriptions.models.subscriptions import Subscriber, Subscription


class OutboundEmail(models.Model):
    """The outbox: one row per email to send, written in the same transaction as the
    state change that calls for it, so no email is lost if the broker is down. The
    sending task works from this row and is a no-op once it is sent."""

    class Kind(models.TextChoices):
        CONFIRMATION = "confirmation", "Confirmation"
        WELCOME = "welcome", "Welcome"
        MILESTONE = "milestone", "Membership milestone (to editors)"
        PRIVACY_EXPORT = "privacy_export", "Link to download one's data"
        PRIVACY_ERASURE = "privacy_erasure", "Link to delete one's data"
        # Asked for from the preferences page by a reader whose mail was stopped by a
        # bounce or a complaint: confirming it lifts the stop.
        REACTIVATION = "reactivation", "Confirmation after a bounce or complaint"
        PREFERENCES_LINK = "preferences_link", "A fresh link to one's preferences"

    # Kinds that ask a reader to confirm an address: one daily budget per mailbox.
    CONFIRMATION_KINDS = ("confirmation", "reactivation")

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        # Not sent because the address was suppressed by the time the worker got to it.
        SUPPRESSED = "suppressed", "Suppressed"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    to_email = models.EmailField(max_length=254)
    # A confirmation email's mailbox, hashed (signup/addresses.mailbox_key): the daily cap counts
    # per mailbox, so "ann+1@" to "ann+12@" and Gmail's dotted variants share one budget.
    # Empty for other emails and for an import's confirmations (counted per subscriber).
    mailbox_key = models.CharField(max_length=32, blank=True, default="", db_default="")
    # Every sign-up writes a row here, so no index is kept that another one covers: the
    # (subscriber, kind, created_at) index serves lookups by subscriber, the unique
    # (milestone, to_email) one lookups by milestone.
    # Empty for mail to the newsroom's own editors (milestone notices).
    subscriber = models.ForeignKey(
        Subscriber,
        on_delete=models.CASCADE,
        related_name="outbound_emails",
        null=True,
        blank=True,
        db_index=False,
    )
    milestone = models.ForeignKey(
        "subscriptions.GoalMilestone",
        on_delete=models.CASCADE,
        related_name="outbound_emails",
        null=True,
        blank=True,
        db_index=False,
    )
    # Confirmation emails cover every subscription the sign-up left pending.
    subscriptions = models.ManyToManyField(Subscription, related_name="outbound_emails")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    esp_message_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The Celery task id that claimed the row: a redelivery of that same task (its
    # worker died mid-send) may take the row over at once; any other task must wait.
    claimed_by_task = models.CharField(max_length=255, blank=True)
    # When the retry after a transient error is due; None while no retry waits. Until it
    # is overdue the sweeper leaves the row to the retry's own task, whatever the backoff.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the sweeper last handed the row to the broker (empty: only when it was
    # queued): it hands a row again only if that was long ago, so a long queue is not
    # flooded with duplicates.
    enqueued_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["subscriber", "kind", "created_at"]),
            models.Index(fields=["status", "created_at"]),
            # The sweeper's question every minute: which held-back rows are due? During
            # a million-row pending import, without this it sorts them all each time.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="queued"),
                name="outbox_queued_due",
            ),
            # The daily cap's question at every sign-up: confirmations to this mailbox
            # in the last day?
            models.Index(
                fields=["mailbox_key", "created_at"],
                condition=models.Q(kind__in=["confirmation", "reactivation"])
                & ~models.Q(mailbox_key=""),
                name="outbox_confirmations_mailbox",
            ),
            # An erasure finds the person's rows by subscriber; the only rows to an
            # address without one are milestone notices to editors, found by this. Only
            # those few rows are in it: a sign-up's row has a subscriber, so PostgreSQL
            # adds no entry for it, where an index of every row's address would cost
            # each sign-up and imported row one more index insert.
            models.Index(
                Lower("to_email"),
                condition=models.Q(subscriber__isnull=True),
                name="outbox_to_editor",
            ),
        ]
        constraints = [
            # A milestone is announced to each editor once, whoever asks twice.
            models.UniqueConstraint(
                fields=["milestone", "to_email"],
                condition=models.Q(milestone__isnull=False),
                name="outbound_email_one_per_milestone_and_editor",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.to_email} ({self.status})"


class DeliveryEvent(models.Model):
    """A tracking event from the ESP that changes something for us, normalised from
    whatever the provider sent (see `subscriptions.web.esp_webhooks`). Stored once per
    provider event id, so a replayed webhook changes nothing twice."""

    class Kind(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        SOFT_BOUNCE = "soft_bounce", "Soft bounce"
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        REJECTED = "rejected", "Rejected by the ESP"
        COMPLAINED = "complained", "Spam complaint"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed at the ESP"

    esp = models.CharField(max_length=50)
    event_id = models.CharField(max_length=255)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    recipient = models.EmailField(max_length=254)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    outbound_email = models.ForeignKey(
        OutboundEmail, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subscription_ids = models.JSONField(default=list, blank=True)
    # The issue the message was a copy of (its metadata says), for the issue's report.
    issue = models.ForeignKey(
        "subscriptions.Issue",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    description = models.CharField(max_length=500, blank=True)
    mta_response = models.TextField(blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["esp", "event_id"], name="delivery_event_unique"),
        ]
        indexes = [
            models.Index(
                Lower("recipient"), "kind", "occurred_at", name="delivery_event_recipient"
            ),
            models.Index(fields=["processed_at", "received_at"]),
            models.Index(
                fields=["issue", "kind"],
                condition=models.Q(issue__isnull=False),
                name="delivery_event_issue",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.recipient} ({self.esp})"


class SuppressedAddress(models.Model):
    """An address that gets no mail at all, confirmations included. Entries are lifted,
    never deleted, so the history of why an address was blocked stays visible."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        SOFT_BOUNCES = "soft_bounces", "Too many soft bounces"
        REJECTED = "rejected", "Rejected by the ESP"
        COMPLAINT = "complaint", "Spam complaint"
        MANUAL = "manual", "Added by an editor"
        ERASED = "erased", "Personal data erased on request"

    # Blank once the person's data is erased: then only the hash remains, so a later
    # import or sign-up of the same address is still recognised and refused.
    email = models.EmailField(max_length=254, blank=True)
    email_hash = models.CharField(max_length=64, blank=True, db_index=True)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    source_event = models.ForeignKey(
        DeliveryEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)
    created_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.CharField(max_length=200, blank=True)
    lift_reason = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "suppressed addresses"
        ordering = ["-created_at", "-pk"]
        indexes = [
            # Every entry for an address, lifted ones too: an erasure rewrites them all
            # and an export lists them. The send's check (`is_suppressed`) uses it too:
            # it does not say `email <> ''`, so the partial unique index cannot serve it.
            models.Index(Lower("email"), name="suppression_email_ci"),
        ]
        constraints = [
            # At most one entry in force per address; lifted ones are history.
            models.UniqueConstraint(
                Lower("email"),
                condition=models.Q(lifted_at__isnull=True) & ~models.Q(email=""),
                name="suppression_in_force_unique",
            ),
            models.UniqueConstraint(
                "email_hash",
                condition=models.Q(lifted_at__isnull=True) & ~models.Q(email_hash=""),
                name="suppression_hash_in_force_unique",
            ),
        ]

    def __str__(self) -> str:
        shown = self.email or f"erased ({self.email_hash[:12]}…)"
        return f"{shown} ({self.get_reason_display()})"


class EmailDomainRule(models.Model):
    """Editors' lists of email domains: blocked ones are refused at sign-up; allowed ones
    are accepted even if the disposable-domain list names them."""

    class Kind(models.TextChoices):
        BLOCK = "block", "Blocked"
        ALLOW = "allow", "Allowed"

    domain = models.CharField(
        max_length=253,
        unique=True,
        help_text="Lower-case, IDNA form; a rule covers its subdomains too.",
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.domain}"
