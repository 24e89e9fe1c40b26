"""Newsletters, with subscription counts per status."""

from collections.abc import Callable

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from subscriptions import selectors
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

    def get_queryset(self, request: HttpRequest) -> QuerySet[Newsletter]:
        return selectors.newsletters_with_status_counts()


def _count_column(status: Subscription.Status) -> Callable[[NewsletterAdmin, Newsletter], int]:
    @admin.display(description=status.label, ordering=f"{status.value}_count")
    def column(model_admin: NewsletterAdmin, obj: Newsletter) -> int:
        return getattr(obj, f"{status.value}_count")

    return column


# One column per status, reading the counts `newsletters_with_status_counts` annotates.
for _status in Subscription.Status:
    setattr(NewsletterAdmin, f"{_status.value}_count", _count_column(_status))
