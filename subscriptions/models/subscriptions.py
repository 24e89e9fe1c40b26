"""Newsletters, subscribers, their subscriptions, proof of consent and the event log.

Invariants live in the database (unique pairs, case-insensitive unique email, status
choices). State changes go through the services; nothing else writes here.
"""

from django.db import models
from django.db.models.functions import Lower
from django.utils.translation import gettext_lazy as _


class NewsletterQuerySet(models.QuerySet):
    def current(self) -> "NewsletterQuerySet":
        """Not archived: what editors may still add people to."""
        return self.filter(archived_at__isnull=True)

    def public(self) -> "NewsletterQuerySet":
        """What readers see and sign up to."""
        return self.current().filter(is_public=True)


class Newsletter(models.Model):
    class Cadence(models.TextChoices):
        DAILY = "daily", _("Daily")
        WEEKLY = "weekly", _("Weekly")
        MONTHLY = "monthly", _("Monthly")
        IRREGULAR = "irregular", _("When there is news")

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
    # Set and cleared by the admin's Archive and Unarchive actions (archiving.py), the
    # way to retire a newsletter: a newsletter with subscriptions cannot be deleted.
    archived_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Archived newsletters are hidden from readers and take no new "
        "subscriptions; every subscription, consent record and event is kept.",
    )

    objects = NewsletterQuerySet.as_manager()

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
    name = models.CharField(max_length=200, blank=True)
    # Other columns an import brought along (first name, city, ...), kept as given.
    attributes = models.JSONField(default=dict, blank=True)
    # The language they last signed up in; their emails use it. Blank: the site's own.
    # A database default too, so bulk imports' plain INSERTs need not name it. No
    # choices: they would tie the migrations to the LANGUAGES setting.
    language = models.CharField(max_length=10, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # On PostgreSQL migration 0011 builds this index with text_pattern_ops, so
            # the same index also serves the admin's prefix search.
            models.UniqueConstraint(Lower("email"), name="subscriber_email_ci_unique"),
        ]
        permissions = [("erase_subscriber", "Can erase a subscriber's personal data")]

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

    # No single-column indexes on the two keys: the unique pair leads with the
    # subscriber and the filter indexes lead with the newsletter (each index slows
    # every sign-up and import a little).
    subscriber = models.ForeignKey(
        Subscriber, on_delete=models.CASCADE, related_name="subscriptions", db_index=False
    )
    # PROTECT: deleting a newsletter would delete its readers' proof of consent and event
    # log with it. Newsletters are archived instead.
    newsletter = models.ForeignKey(
        Newsletter, on_delete=models.PROTECT, related_name="subscriptions", db_index=False
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
        # One per admin filter (newsletter, status, source, and newsletter with status);
        # the subscriber column last, so a filtered subscriber list is an index-only
        # semi-join.
        indexes = [
            models.Index(
                fields=["newsletter", "status", "subscriber"], name="subscription_nl_status"
            ),
            models.Index(fields=["status", "subscriber"], name="subscription_status"),
            models.Index(fields=["source"], name="subscription_source"),
        ]

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
        Subscription, on_delete=models.CASCADE, related_name="consent_records", db_index=False
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    page_url = models.CharField(max_length=2000, blank=True)
    consent_text = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "pk"]
        indexes = [
            models.Index(fields=["subscription", "kind", "at"], name="consent_by_subscription"),
        ]

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
        EXPIRED = "expired", "Sign-up expired unconfirmed"

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
