"""The record of privacy requests (data exports and erasures), read-only.

The record outlives an erasure, so it never shows an address: a request names the
person by subscriber id while the subscriber exists, and by the hash of the address
always. An editor finds an address's requests by typing the address; it is hashed and
matched, so erased people are found too.
"""

from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from subscriptions.admin.common import ReadOnlyAdmin
from subscriptions.admin.paging import LargeListMixin
from subscriptions.mail import suppression
from subscriptions.models import PrivacyEvent


def privacy_log_url(email: str) -> str:
    """The privacy requests of one address, in the admin (by its hash: no address in
    the URL)."""
    changelist = reverse("admin:subscriptions_privacyevent_changelist")
    return f"{changelist}?{urlencode({'email_hash': suppression.address_hash(email)})}"


@admin.register(PrivacyEvent)
class PrivacyEventAdmin(LargeListMixin, ReadOnlyAdmin):
    list_display = ["at", "kind", "actor", "subscriber_ref", "short_hash"]
    list_filter = ["kind"]
    fields = ["at", "kind", "actor", "subscriber_ref", "email_hash"]
    readonly_fields = [str(name) for name in fields]
    # Only to show the search box: the search below matches the hash, exactly.
    search_fields = ["email_hash"]
    search_help_text = "An address, in full: its requests are found by its hash, erased or not."
    # The primary key's index serves it; rows are written in time order.
    ordering = ["-pk"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(email_hash=suppression.address_hash(term)), False

    @admin.display(description="Subscriber", ordering="subscriber_id")
    def subscriber_ref(self, event: PrivacyEvent) -> str:
        if event.subscriber_id is None:
            return "— (erased)"
        url = reverse("admin:subscriptions_subscriber_change", args=[event.subscriber_id])
        return format_html('<a href="{}">#{}</a>', url, event.subscriber_id)

    @admin.display(description="Address hash (SHA-256)")
    def short_hash(self, event: PrivacyEvent) -> str:
        return f"{event.email_hash[:16]}…"
