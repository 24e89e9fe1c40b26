"""Newsletters, with subscription counts per status."""

from collections.abc import Callable

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path

from subscriptions import insight, selectors
from subscriptions.models import Newsletter, Subscription


@admin.register(Newsletter)
class NewsletterAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "host_line",
        "cadence",
        "is_public",
        "double_opt_in",
        "position",
        *(f"{status}_count" for status in Subscription.Status.values),
    ]
    list_editable = ["position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug", "host_line"]
    change_list_template = "admin/subscriptions/newsletter/change_list.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Newsletter]:
        return selectors.newsletters_with_status_counts()

    def get_urls(self) -> list:
        return [
            path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="subscriptions_dashboard",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        """Per newsletter: counts, confirmation rate, who left lately, 90 days of growth."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Newsletters at a glance",
            "opts": self.model._meta,
            "dashboard": insight.dashboard(),
        }
        return TemplateResponse(request, "admin/subscriptions/dashboard.html", context)


def _count_column(status: Subscription.Status) -> Callable[[NewsletterAdmin, Newsletter], int]:
    @admin.display(description=status.label, ordering=f"{status.value}_count")
    def column(model_admin: NewsletterAdmin, obj: Newsletter) -> int:
        return getattr(obj, f"{status.value}_count")

    return column


# One column per status, reading the counts `newsletters_with_status_counts` annotates.
for _status in Subscription.Status:
    setattr(NewsletterAdmin, f"{_status.value}_count", _count_column(_status))
