"""Pieces shared by the admin modules."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest


def actor(request: HttpRequest) -> str:
    """How the event log names an editor."""
    return f"admin:{request.user.get_username()}"


class ReadOnlyInline(admin.TabularInline):
    """An inline that shows history: rows are written by services, never here."""

    extra = 0
    can_delete = False
    # Related rows the inline shows, fetched with it (no query per row).
    list_select_related: list[str] = []

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).select_related(*self.list_select_related)

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [str(name) for name in self.fields or []]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """A log that editors read but never write."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
