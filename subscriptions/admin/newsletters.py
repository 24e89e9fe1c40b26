"""Newsletters, with subscription counts per status."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from subscriptions import selectors
from subscriptions.models import (
    Newsletter,
)


@admin.register(Newsletter)
class NewsletterAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "host_line",
        "cadence",
        "is_public",
        "double_opt_in",
        "position",
        "active_count",
        "pending_count",
        "unsubscribed_count",
        "bounced_count",
        "complained_count",
    ]
    list_editable = ["position"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug", "host_line"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Newsletter]:
        return selectors.newsletters_with_status_counts()

    @admin.display(description="Active", ordering="active_count")
    def active_count(self, obj: Newsletter) -> int:
        return obj.active_count

    @admin.display(description="Pending", ordering="pending_count")
    def pending_count(self, obj: Newsletter) -> int:
        return obj.pending_count

    @admin.display(description="Unsubscribed", ordering="unsubscribed_count")
    def unsubscribed_count(self, obj: Newsletter) -> int:
        return obj.unsubscribed_count

    @admin.display(description="Bounced", ordering="bounced_count")
    def bounced_count(self, obj: Newsletter) -> int:
        return obj.bounced_count

    @admin.display(description="Complained", ordering="complained_count")
    def complained_count(self, obj: Newsletter) -> int:
        return obj.complained_count
