"""Subscribers, subscriptions, the event log and consent records. Status changes go
through services (actions), never through editable status fields, so every change
lands in the event log."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.db.models.functions import Lower
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from subscriptions.admin.bulk import resend_in_bulk, unsubscribe_in_bulk
from subscriptions.admin.common import ReadOnlyAdmin, ReadOnlyInline, actor
from subscriptions.admin.paging import LargeListMixin
from subscriptions.admin.privacy import privacy_log_url
from subscriptions.exceptions import AddressErased, UnknownNewsletter
from subscriptions.lists import exports
from subscriptions.mail import suppression
from subscriptions.models import (
    ConsentRecord,
    Newsletter,
    PrivacyEvent,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.privacy import personal_data
from subscriptions.signup import services
from subscriptions.signup.addresses import normalize_email


class SubscriptionInline(ReadOnlyInline):
    model = Subscription
    fields = ["newsletter", "status", "source", "created_at", "confirmed_at", "unsubscribed_at"]
    show_change_link = True
    # The subscription's name in the inline names its subscriber and newsletter.
    list_select_related = ["newsletter", "subscriber"]


class SubscriptionEventInline(ReadOnlyInline):
    """The event log of one subscription, newest first."""

    model = SubscriptionEvent
    fields = ["at", "kind", "from_status", "to_status", "actor", "detail"]


class ConsentRecordInline(ReadOnlyInline):
    model = ConsentRecord
    fields = ["at", "kind", "ip_address", "user_agent", "page_url", "consent_text"]


class NewsletterFilter(admin.SimpleListFilter):
    title = "newsletter"
    parameter_name = "newsletter"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [(n.pk, n.name) for n in Newsletter.objects.all()]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            # A semi-join, not a join made DISTINCT: inside an action's IN (...) over a
            # million rows the DISTINCT took minutes (PostgreSQL spilled it to disk).
            subscribers = Subscription.objects.filter(newsletter_id=self.value() or "")
            return queryset.filter(pk__in=subscribers.values("subscriber_id"))
        return queryset


class StatusFilter(admin.SimpleListFilter):
    title = "subscription status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return Subscription.Status.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        newsletter = request.GET.get("newsletter") or ""
        subscriptions = Subscription.objects.filter(status=self.value())
        if newsletter:
            # Both filters apply to the same subscription, not to any two of them.
            subscriptions = subscriptions.filter(newsletter_id=newsletter)
        return queryset.filter(pk__in=subscriptions.values("subscriber_id"))


class AddressSearchMixin(admin.ModelAdmin):
    """Search by the start of an address ("kate.ts", "ann@exa"), in any case: the one
    search an index serves on a million rows (see migration 0008); a "contains"
    search would read them all."""

    address_field = "email"
    search_help_text = "The address, or how it starts (case does not matter)."

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        matches = queryset.alias(address_ci=Lower(self.address_field)).filter(
            address_ci__startswith=term
        )
        return matches, False


@admin.register(Subscriber)
class SubscriberAdmin(AddressSearchMixin, LargeListMixin, admin.ModelAdmin):
    list_display = ["email", "created_at"]
    search_fields = ["email"]
    list_filter = [NewsletterFilter, StatusFilter]
    readonly_fields = ["email", "created_at", "event_log", "privacy_requests"]
    inlines = [SubscriptionInline]
    actions = ["resend_confirmation", "unsubscribe_from_all", "export_csv"]
    # Newest first by id, which the primary key's index serves (created_at has none).
    ordering = ["-pk"]

    change_form_template = "admin/subscriptions/subscriber/change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Editors add people through "Add subscription", which records consent.
        return False

    def get_urls(self) -> list:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/data/", view(self.data_view), name="subscriptions_subscriber_data"),
            path("<int:pk>/erase/", view(self.erase_view), name="subscriptions_subscriber_erase"),
            *super().get_urls(),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Subscriber | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context["privacy_log_url"] = privacy_log_url(obj.email)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def data_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        """A privacy request: everything we hold about the person, as JSON."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        get_object_or_404(Subscriber, pk=pk)
        data = personal_data.export_data(subscriber_id=pk, actor=actor(request))
        response = JsonResponse(data, json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="subscriber-{pk}.json"'
        return response

    def erase_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        """A privacy request: erase the person's data, after a confirmation page."""
        if not request.user.has_perm("subscriptions.erase_subscriber"):
            raise PermissionDenied
        subscriber = get_object_or_404(Subscriber, pk=pk)
        if request.method == "POST":
            personal_data.erase_subscriber(subscriber_id=pk, actor=actor(request))
            self.message_user(
                request, "The subscriber's personal data is erased.", messages.SUCCESS
            )
            return HttpResponseRedirect(reverse("admin:subscriptions_subscriber_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Erase this subscriber's personal data?",
            "subscriber": subscriber,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/subscriptions/erase_subscriber.html", context)

    @admin.display(description="Event log")
    def event_log(self, obj: Subscriber) -> str:
        events = (
            SubscriptionEvent.objects.filter(subscription__subscriber=obj)
            .select_related("subscription__newsletter")
            .order_by("-at", "-pk")[:200]
        )
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td></tr>",
            (
                (
                    e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.subscription.newsletter.name,
                    e.get_kind_display(),
                    e.from_status or "—",
                    e.to_status,
                    e.actor,
                )
                for e in events
            ),
        )
        return format_html(
            "<table><thead><tr><th>When</th><th>Newsletter</th><th>Event</th><th>Status</th>"
            "<th>By</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Privacy requests")
    def privacy_requests(self, obj: Subscriber) -> str:
        """Data exports and erasures asked for this address, including any erasure of
        it before this subscriber (the record keeps the address's hash)."""
        events = PrivacyEvent.objects.filter(
            email_hash=suppression.address_hash(obj.email)
        ).order_by("-at", "-pk")[:50]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((e.at.strftime("%Y-%m-%d %H:%M:%S"), e.get_kind_display(), e.actor) for e in events),
        )
        return format_html(
            "<table><thead><tr><th>When</th><th>Request</th><th>By</th></tr></thead>"
            '<tbody>{}</tbody></table><p><a href="{}">All privacy requests for this '
            "address</a></p>",
            rows or mark_safe('<tr><td colspan="3">None.</td></tr>'),
            privacy_log_url(obj.email),
        )

    @admin.action(
        description="Resend confirmation email (pending subscriptions)", permissions=["change"]
    )
    def resend_confirmation(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        resend_in_bulk(self, request, queryset)

    @admin.action(description="Unsubscribe from all newsletters", permissions=["change"])
    def unsubscribe_from_all(self, request: HttpRequest, queryset: QuerySet[Subscriber]) -> None:
        subscriptions = Subscription.objects.filter(subscriber__in=queryset.values("pk"))
        unsubscribe_in_bulk(self, request, subscriptions)

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Subscriber]
    ) -> StreamingHttpResponse:
        """One row per subscription of the selected people (all of the filtered list
        with "Select all"), streamed; with the list filtered by newsletter or status,
        only the subscriptions the filters chose."""
        # The action posts to the changelist's own URL, filters and all.
        subscriptions = exports.subscriptions_of(
            queryset,
            newsletter_id=request.GET.get(NewsletterFilter.parameter_name),
            status=request.GET.get(StatusFilter.parameter_name),
        )
        return exports.csv_response(subscriptions, "subscribers.csv")


class EditorAddForm(forms.Form):
    email = forms.CharField(max_length=254)
    # Not archived ones: they take no new subscribers.
    newsletters = forms.ModelMultipleChoiceField(
        queryset=Newsletter.objects.current(), widget=forms.CheckboxSelectMultiple
    )
    status = forms.ChoiceField(
        choices=[
            (Subscription.Status.PENDING, "Pending: send a confirmation email"),
            (Subscription.Status.ACTIVE, "Active: consent was already given elsewhere"),
        ],
        initial=Subscription.Status.PENDING,
        widget=forms.RadioSelect,
    )
    consent_basis = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Required for active: where and how this person agreed "
        '(e.g. "signed up on paper at the 2026 book fair").',
    )

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])

    def clean(self) -> dict:
        data = super().clean() or {}
        if (
            data.get("status") == Subscription.Status.ACTIVE
            and not data.get("consent_basis", "").strip()
        ):
            self.add_error("consent_basis", "Say how this person consented.")
        data["consent_basis"] = data.get("consent_basis", "").strip() or "Added by an editor"
        return data


@admin.register(Subscription)
class SubscriptionAdmin(AddressSearchMixin, LargeListMixin, admin.ModelAdmin):
    address_field = "subscriber__email"
    list_display = ["subscriber", "newsletter", "status", "source", "created_at", "confirmed_at"]
    list_filter = ["newsletter", "status", "source"]
    search_fields = ["subscriber__email"]
    list_select_related = ["subscriber", "newsletter"]
    readonly_fields = [
        "subscriber",
        "newsletter",
        "status",
        "source",
        "created_at",
        "pending_since",
        "confirmed_at",
        "unsubscribed_at",
        "bounced_at",
        "complained_at",
    ]
    inlines = [ConsentRecordInline, SubscriptionEventInline]
    actions = ["unsubscribe", "export_csv"]

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        """Add an address to newsletters through the service, so consent is recorded."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = EditorAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                services.add_by_editor(
                    email=data["email"],
                    newsletters=list(data["newsletters"]),
                    actor=actor(request),
                    consent_basis=data["consent_basis"],
                    activate=data["status"] == Subscription.Status.ACTIVE,
                )
            except AddressErased:
                form.add_error(
                    "email",
                    "This person asked for their data to be erased. They can sign up "
                    "again themselves; nobody can add them for them.",
                )
            except UnknownNewsletter as exc:
                form.add_error(
                    "newsletters",
                    f"Archived or deleted a moment ago: {', '.join(exc.slugs)}. Nobody was added.",
                )
            else:
                self.message_user(request, f"Added {data['email']}.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:subscriptions_subscription_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Add subscription",
            "form": form,
            "opts": self.model._meta,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/subscriptions/add_subscription.html", context)

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[Subscription]
    ) -> StreamingHttpResponse:
        """The selected subscriptions (all of the filtered list with "Select all"), with
        their proof of consent, streamed."""
        return exports.csv_response(queryset, "subscriptions.csv")

    @admin.action(description="Unsubscribe", permissions=["change"])
    def unsubscribe(self, request: HttpRequest, queryset: QuerySet[Subscription]) -> None:
        unsubscribe_in_bulk(self, request, queryset)


@admin.register(SubscriptionEvent)
class SubscriptionEventAdmin(AddressSearchMixin, LargeListMixin, ReadOnlyAdmin):
    address_field = "subscription__subscriber__email"
    list_display = ["at", "subscription", "kind", "from_status", "to_status", "actor"]
    # A date filter, not date_hierarchy: the hierarchy's year and month links each take
    # an aggregate over the whole log.
    list_filter = ["kind", "at"]
    search_fields = ["subscription__subscriber__email"]
    list_select_related = ["subscription__subscriber", "subscription__newsletter"]
