"""Members, the membership goal with its progress, and the payment-platform event log.
Status changes go through `members` and `milestones` (actions, the add form, the goal
form), so every change is counted and logged."""

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from subscriptions.admin.common import ReadOnlyAdmin, ReadOnlyInline, actor
from subscriptions.admin.paging import LargeListMixin
from subscriptions.membership import goal_counter, members, milestones
from subscriptions.models import GoalMilestone, Member, MemberEvent, MembershipGoal, StripeEvent
from subscriptions.signup.addresses import INVALID_EMAIL_MESSAGE, normalize_email


class MemberEventInline(ReadOnlyInline):
    model = MemberEvent
    fields = ["at", "from_status", "to_status", "actor"]


class MemberAddForm(forms.ModelForm):
    # Plain fields: the product's validator alone judges the address, and the currency
    # check below says what is wrong in words an editor can act on.
    email = forms.CharField(max_length=400, error_messages={"required": INVALID_EMAIL_MESSAGE})
    currency = forms.CharField(max_length=20, required=False)

    class Meta:
        model = Member
        fields = ["email", "name", "tier", "amount", "currency"]

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])

    def clean_currency(self) -> str:
        currency = self.cleaned_data["currency"].strip().upper()
        if currency and (len(currency) != 3 or not currency.isalpha()):
            raise forms.ValidationError("Use a three-letter currency code such as EUR.")
        return currency

    def clean_amount(self) -> Decimal | None:
        amount = self.cleaned_data["amount"]
        if amount is not None and amount < 0:
            raise forms.ValidationError("The amount cannot be negative.")
        return amount


@admin.register(Member)
class MemberAdmin(LargeListMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "name",
        "status",
        "tier",
        "amount",
        "currency",
        "source",
        "started_at",
    ]
    list_filter = ["status", "source", "tier"]
    search_fields = ["email", "name", "external_id"]
    list_select_related = True
    inlines = [MemberEventInline]
    actions = ["cancel"]
    readonly_fields = [
        "email",
        "name",
        "status",
        "tier",
        "amount",
        "currency",
        "source",
        "external_id",
        "started_at",
        "ended_at",
        "last_event_at",
        "created_at",
    ]

    def get_form(
        self, request: HttpRequest, obj: Member | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = MemberAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Member | None = None) -> list[str]:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Member | None = None) -> Any:
        if obj is None:
            return list(MemberAddForm.Meta.fields)
        return self.readonly_fields

    def get_inlines(self, request: HttpRequest, obj: Member | None) -> list:
        return self.inlines if obj is not None else []

    def save_model(self, request: HttpRequest, obj: Member, form: forms.Form, change: bool) -> None:
        if change:
            return
        created = members.add_member(
            email=form.cleaned_data["email"],
            name=form.cleaned_data["name"],
            tier=form.cleaned_data["tier"],
            amount=form.cleaned_data["amount"],
            currency=form.cleaned_data["currency"],
            actor=actor(request),
        )
        # The admin redirects to the object it saved; point it at the service's row.
        obj.pk = created.pk

    def save_related(self, request: HttpRequest, form: forms.Form, formsets, change: bool) -> None:
        """Nothing to save: the service wrote the member and its log."""

    @admin.action(description="Cancel the selected memberships", permissions=["change"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Member]) -> None:
        changed = members.cancel_members(
            member_ids=list(queryset.values_list("pk", flat=True)), actor=actor(request)
        )
        self.message_user(
            request,
            f"Cancelled {changed} membership(s). Payments at Stripe are not affected; "
            "cancel them there too.",
            messages.SUCCESS,
        )


class MilestoneInline(ReadOnlyInline):
    model = GoalMilestone
    fields = ["threshold", "reached_at"]


@admin.register(MembershipGoal)
class MembershipGoalAdmin(admin.ModelAdmin):
    list_display = ["headline", "target", "is_active", "starts_on", "ends_on", "progress"]
    fields = [
        "headline",
        "question",
        "target",
        "milestone_step",
        "starts_on",
        "ends_on",
        "is_active",
        "progress",
    ]
    readonly_fields = ["progress"]
    inlines = [MilestoneInline]

    @admin.display(description="Progress")
    def progress(self, goal: MembershipGoal) -> str:
        if goal.pk is None:
            return "-"
        snapshot = goal_counter.read_snapshot()
        count = snapshot.members if snapshot is not None else 0
        percent = min(100.0, 100.0 * count / goal.target)
        return format_html(
            '<progress max="{}" value="{}">{}%</progress> {} of {} members ({}%)',
            goal.target,
            min(count, goal.target),
            f"{percent:.1f}",
            f"{count:,}",
            f"{goal.target:,}",
            f"{percent:.1f}",
        )

    def save_model(
        self, request: HttpRequest, obj: MembershipGoal, form: forms.Form, change: bool
    ) -> None:
        milestones.save_goal(obj)


@admin.register(StripeEvent)
class StripeEventAdmin(LargeListMixin, ReadOnlyAdmin):
    list_display = ["event_id", "type", "created_at", "received_at"]
    list_filter = ["type"]
    search_fields = ["event_id"]
