"""The outbox, delivery events from the ESPs, and the suppression list."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from subscriptions.admin.common import ReadOnlyAdmin, actor
from subscriptions.admin.paging import LargeListMixin
from subscriptions.mail import outbox, suppression
from subscriptions.models import (
    DeliveryEvent,
    EmailDomainRule,
    OutboundEmail,
    SuppressedAddress,
)
from subscriptions.signup.addresses import normalize_domain, normalize_email


@admin.register(OutboundEmail)
class OutboundEmailAdmin(LargeListMixin, admin.ModelAdmin):
    list_display = ["created_at", "kind", "to_email", "status", "attempts", "sent_at"]
    list_filter = ["status", "kind"]
    # Newest first by id, which the primary key serves (creation order; no index on
    # created_at, which every sign-up would maintain).
    ordering = ["-pk"]
    search_fields = ["to_email", "esp_message_id"]
    readonly_fields = [
        "kind",
        "status",
        "to_email",
        "subscriber",
        "attempts",
        "last_error",
        "esp_message_id",
        "created_at",
        "claimed_at",
        "next_attempt_at",
        "sent_at",
    ]
    exclude = ["subscriptions"]
    actions = ["retry"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Retry sending (failed or suppressed emails)", permissions=["change"])
    def retry(self, request: HttpRequest, queryset: QuerySet[OutboundEmail]) -> None:
        count = outbox.retry(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Queued {count} email(s) again.", messages.SUCCESS)


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(LargeListMixin, ReadOnlyAdmin):
    list_display = ["occurred_at", "esp", "kind", "recipient", "processed_at"]
    list_filter = ["kind", "esp", "occurred_at"]
    search_fields = ["recipient", "event_id"]


class InForceFilter(admin.SimpleListFilter):
    title = "in force"
    parameter_name = "in_force"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("yes", "In force"), ("no", "Lifted")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(lifted_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(lifted_at__isnull=False)
        return queryset


class LiftSuppressionForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why this address may get mail again (kept with the entry).",
    )


class AddSuppressionForm(forms.ModelForm):
    class Meta:
        model = SuppressedAddress
        fields = ["email", "note"]

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])


@admin.register(SuppressedAddress)
class SuppressedAddressAdmin(LargeListMixin, admin.ModelAdmin):
    list_display = ["email", "reason", "created_at", "lifted_at", "lifted_by"]
    list_filter = [InForceFilter, "reason"]
    search_fields = ["email"]
    actions = ["lift"]
    form = AddSuppressionForm

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        if obj is None:
            return []
        return [
            "email",
            "reason",
            "source_event",
            "note",
            "created_at",
            "lifted_at",
            "lifted_by",
            "lift_reason",
        ]

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Lift instead: the history of why an address was blocked stays visible.
        return False

    def save_model(
        self, request: HttpRequest, obj: SuppressedAddress, form: forms.Form, change: bool
    ) -> None:
        if change:
            return
        entry = suppression.suppress(
            email=obj.email,
            reason=SuppressedAddress.Reason.MANUAL,
            note=f"{obj.note}\n(added by {actor(request)})".strip(),
        )
        obj.pk = entry.pk

    @admin.action(description="Lift suppression (asks for a reason)", permissions=["change"])
    def lift(
        self, request: HttpRequest, queryset: QuerySet[SuppressedAddress]
    ) -> HttpResponse | None:
        form = LiftSuppressionForm(request.POST if "reason" in request.POST else None)
        if form.is_valid():
            count = suppression.lift(
                entry_ids=queryset.values_list("pk", flat=True),
                reason=form.cleaned_data["reason"],
                actor=actor(request),
            )
            self.message_user(request, f"Lifted {count} suppression(s).", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Lift suppression",
            "form": form,
            "entries": queryset,
            "opts": self.model._meta,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/subscriptions/lift_suppression.html", context)


class EmailDomainRuleForm(forms.ModelForm):
    class Meta:
        model = EmailDomainRule
        fields = ["domain", "kind", "note"]

    def clean_domain(self) -> str:
        return normalize_domain(self.cleaned_data["domain"])


@admin.register(EmailDomainRule)
class EmailDomainRuleAdmin(admin.ModelAdmin):
    """Blocked and allowed email domains for sign-ups (allowed overrides the
    disposable-domain list)."""

    form = EmailDomainRuleForm
    list_display = ["domain", "kind", "note", "created_at"]
    list_filter = ["kind"]
    search_fields = ["domain", "note"]
