"""Newsletters, subscribers, their subscriptions, proof of consent, the event log and the
email outbox.

Invariants live in the database (unique pairs, case-insensitive unique email, status
choices). State changes go through `subscriptions.services`; nothing else writes here.
"""

from django.db import models
from django.db.models.functions import Lower


class Newsletter(models.Model):
    class Cadence(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"
        MONTHLY = "monthly", "Monthly"
        IRREGULAR = "irregular", "When there is news"

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    host_line = models.CharField(
        max_length=200, blank=True, help_text='e.g. "Explaining Ukraine with Kate Tsurkan"'
    )
    cadence = models.CharField(max_length=20, choices=Cadence.choices, default=Cadence.WEEKLY)
    is_public = models.BooleanField(
        default=True, help_text="Public newsletters are listed and accept sign-ups from readers."
    )
    double_opt_in = models.BooleanField(
        default=True, help_text="Readers confirm by email before they receive anything."
    )
    send_welcome_email = models.BooleanField(default=True)
    welcome_message = models.TextField(
        blank=True, help_text="Plain text shown in the welcome email after confirmation."
    )
    position = models.PositiveIntegerField(default=0, help_text="Lower comes first.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class Subscriber(models.Model):
    """One person, known by one address.

    The address is stored normalised (domain lower-cased and in IDNA form, local part as
    typed) and is unique case-insensitively, so `Ann@x.org` and `ann@x.org` are one row.
    """

    email = models.EmailField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email


class SubscriptionStatus(models.TextChoices):
    PENDING = "pending", "Pending confirmation"
    ACTIVE = "active", "Active"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"


class Subscription(models.Model):
    Status = SubscriptionStatus

    class Source(models.TextChoices):
        FORM = "form", "Web form"
        API = "api", "JSON API"
        ADMIN = "admin", "Admin"
        IMPORT = "import", "Import"
        PREFERENCES = "preferences", "Preferences page"

    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="subscriptions"
    )
    newsletter = models.ForeignKey(
        Newsletter, on_delete=models.CASCADE, related_name="subscriptions"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.FORM)
    created_at = models.DateTimeField(auto_now_add=True)
    # When the current pending period began: a confirmation link issued before it does
    # not confirm (the reader unsubscribed and signed up again since).
    pending_since = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    complained_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscriber", "newsletter"],
                name="subscription_subscriber_newsletter_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=SubscriptionStatus.values),
                name="subscription_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["newsletter", "status"])]

    def __str__(self) -> str:
        return f"{self.subscriber} → {self.newsletter} ({self.status})"


class ConsentRecord(models.Model):
    """Proof of consent: what the reader saw and did, when, and from where."""

    class Kind(models.TextChoices):
        SIGNUP = "signup", "Sign-up"
        CONFIRMATION = "confirmation", "Confirmation"
        IMPORT = "import", "Import basis"
        ADMIN = "admin", "Added by an editor"

    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="consent_records"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    page_url = models.CharField(max_length=2000, blank=True)
    consent_text = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.at:%Y-%m-%d %H:%M}"


class SubscriptionEvent(models.Model):
    """The event log: every status change of a subscription, who caused it, and when."""

    class Kind(models.TextChoices):
        SUBSCRIBED = "subscribed", "Signed up"
        RESUBMITTED = "resubmitted", "Signed up again"
        CONFIRMATION_QUEUED = "confirmation_queued", "Confirmation email queued"
        CONFIRMATION_CAPPED = "confirmation_capped", "Confirmation email not sent (cap)"
        CONFIRMED = "confirmed", "Confirmed"
        ACTIVATED = "activated", "Activated without confirmation"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Marked as spam"
        EMAIL_SUPPRESSED = "email_suppressed", "Email not sent (address suppressed)"

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=40, choices=Kind.choices)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    actor = models.CharField(
        max_length=200, help_text='Who or what caused it: "reader", "admin:ann", "system".'
    )
    detail = models.JSONField(default=dict, blank=True)
    at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.actor}"


class OutboundEmail(models.Model):
    """The outbox: one row per email to send, written in the same transaction as the
    state change that calls for it, so no email is lost if the broker is down. The
    sending task works from this row and is a no-op once it is sent."""

    class Kind(models.TextChoices):
        CONFIRMATION = "confirmation", "Confirmation"
        WELCOME = "welcome", "Welcome"

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
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="outbound_emails"
    )
    # Confirmation emails cover every subscription the sign-up left pending.
    subscriptions = models.ManyToManyField(Subscription, related_name="outbound_emails")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    esp_message_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The Celery task id that claimed the row: a redelivery of that same task (its
    # worker died mid-send) may take the row over at once; any other task must wait.
    claimed_by_task = models.CharField(max_length=255, blank=True)
    # When the retry after a transient error is due; None while no retry waits. Until it
    # is overdue the sweeper leaves the row to the retry's own task, whatever the backoff.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["subscriber", "kind", "created_at"]),
            models.Index(fields=["status", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.to_email} ({self.status})"


class DeliveryEvent(models.Model):
    """A tracking event from the ESP that changes something for us, normalised from
    whatever the provider sent (see `subscriptions.webhooks`). Stored once per
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

    email = models.EmailField(max_length=254)
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
        constraints = [
            # At most one entry in force per address; lifted ones are history.
            models.UniqueConstraint(
                Lower("email"),
                condition=models.Q(lifted_at__isnull=True),
                name="suppression_in_force_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.get_reason_display()})"


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
