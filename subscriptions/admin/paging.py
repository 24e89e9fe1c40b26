"""A paginator for changelists of a million rows: it never counts them all.

Django's admin runs `COUNT(*)` over the whole (filtered) list on every page, which at a
million subscriptions is most of a page's time. This paginator counts at most
`COUNT_LIMIT` rows (a cheap capped scan); an unfiltered list on PostgreSQL shows the
planner's estimate of the table's size instead. The page links stop at the cap, and
the count reads "more than 10,000" (or "about 1,000,000"), so editors reach deeper
rows with filters and search, as they would anyway.
"""

from functools import cached_property
from typing import cast

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet

COUNT_LIMIT = 10_000


class CappedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        queryset = cast(QuerySet, self.object_list)
        self.estimated = False
        self.capped = False
        estimate = _table_estimate(queryset)
        if estimate is not None and estimate > COUNT_LIMIT:
            self.estimated = True
            return estimate
        counted = queryset.order_by()[: COUNT_LIMIT + 1].count()
        if counted > COUNT_LIMIT:
            self.capped = True
            return COUNT_LIMIT
        return counted


def _table_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's row estimate for an unfiltered list, or None."""
    if queryset.query.where or queryset.query.distinct:
        return None
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [queryset.model._meta.db_table],
        )
        row = cursor.fetchone()
    # -1 (never analysed) or tiny: count for real instead.
    return int(row[0]) if row and row[0] > COUNT_LIMIT else None


class LargeListMixin:
    """For the ModelAdmin of a table that grows to millions of rows."""

    paginator: type[Paginator] = CappedCountPaginator
    # The "(N total)" next to a filtered count is a second full COUNT(*).
    show_full_result_count = False
    # "Show counts" (Django 5's facets) runs a COUNT over the filtered list for every
    # choice of every filter: more than ten minutes at a million subscribers.
    show_facets = admin.ShowFacets.NEVER
