"""Members (paying supporters, distinct from newsletter subscribers), the membership
goal with its milestones, and the exact count of active members.

State changes go through `subscriptions.membership.members` and
`subscriptions.membership.milestones`; nothing else writes here.
"""

from collections.abc import Collection

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class MemberStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    CANCELLED = "cancelled", "Cancelled"


class Member(models.Model):
    Status = MemberStatus

    class Source(models.TextChoices):
        STRIPE = "stripe", "Stripe"
        ADMIN = "admin", "Admin"
        IMPORT = "import", "Import"

    # Blank until the payment platform tells us: a subscription event can arrive before
    # the checkout session that carries the address.
    email = models.EmailField(max_length=254, blank=True)
    name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices)
    tier = models.CharField(max_length=100, blank=True)
    amount = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    source = models.CharField(max_length=20, choices=Source.choices)
    external_id = models.CharField(
        max_length=255, blank=True, help_text="The payment platform's subscription id."
    )
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # When the newest payment-platform event applied to this member was created, so an
    # older event arriving late cannot undo a newer one.
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~Q(external_id=""),
                name="member_external_id_unique",
            ),
            models.CheckConstraint(
                condition=Q(status__in=MemberStatus.values), name="member_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["status"]),
            models.Index(Lower("email"), name="member_email_ci"),
        ]

    def __str__(self) -> str:
        return self.email or self.external_id or f"Member {self.pk}"


class MemberEvent(models.Model):
    """Every status change of a member, what caused it, and when."""

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="events")
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    actor = models.CharField(
        max_length=200, help_text='"stripe:<event id>", "admin:ann", "import" ...'
    )
    at = models.DateTimeField()

    class Meta:
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.from_status or 'new'} → {self.to_status} by {self.actor}"


class MemberCount(models.Model):
    """The number of active members, changed in the same transaction as every member
    status change, with a version that grows with each change. Redis holds a copy for
    readers; the version lets the copy ignore a stale write."""

    active = models.PositiveIntegerField(default=0)
    version = models.PositiveBigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.active} active members (v{self.version})"


class StripeEvent(models.Model):
    """Each payment-platform event id we have applied, so a replay changes nothing."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    created_at = models.DateTimeField(help_text="When Stripe created the event.")
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"


class MembershipGoal(models.Model):
    headline = models.CharField(max_length=200, default="Help us reach 20,000 members")
    question = models.CharField(max_length=200, default="Can we reach 20,000 members?")
    target = models.PositiveIntegerField(default=20_000)
    milestone_step = models.PositiveIntegerField(
        default=1_000, help_text="A milestone every this many members, and at the target."
    )
    starts_on = models.DateField(null=True, blank=True)
    ends_on = models.DateField(null=True, blank=True)
    is_active = models.BooleanField(
        default=True, help_text="The banner shows the active goal; only one can be active."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"], condition=Q(is_active=True), name="one_active_goal"
            ),
            models.CheckConstraint(condition=Q(target__gt=0), name="goal_target_positive"),
            models.CheckConstraint(
                condition=Q(milestone_step__gt=0), name="goal_milestone_step_positive"
            ),
        ]

    def __str__(self) -> str:
        return self.headline

    def validate_constraints(self, exclude: Collection[str] | None = None) -> None:
        # Saving an active goal deactivates the others (`milestones.save_goal`), so the
        # form must not refuse it; the constraint still guards the database.
        super().validate_constraints(exclude={*(exclude or ()), "is_active"})


class GoalMilestone(models.Model):
    """A count worth telling the editors about; reached and announced exactly once."""

    goal = models.ForeignKey(MembershipGoal, on_delete=models.CASCADE, related_name="milestones")
    threshold = models.PositiveIntegerField()
    reached_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["threshold"]
        constraints = [
            models.UniqueConstraint(fields=["goal", "threshold"], name="milestone_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.threshold:,} members"
