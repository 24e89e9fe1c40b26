"""Admin actions on many rows at once: the request changes a few, the worker the rest
(subscriptions/bulk_actions.py), and the editor is told which happened."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from subscriptions import bulk_actions
from subscriptions.admin.common import actor
from subscriptions.models import Subscription


def unsubscribe_in_bulk(
    model_admin: admin.ModelAdmin, request: HttpRequest, subscriptions: QuerySet[Subscription]
) -> None:
    # Only those an unsubscribe would change: on a list of a million, the rest is work.
    ids = (
        subscriptions.filter(status__in=(Subscription.Status.ACTIVE, Subscription.Status.PENDING))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    outcome = bulk_actions.unsubscribe(ids.iterator(), actor=actor(request))
    if outcome.queued or outcome.not_queued:
        tell_about_background_work(
            model_admin, request, outcome, doing="Unsubscribing", things="subscription(s)"
        )
        return
    model_admin.message_user(
        request, f"Unsubscribed {outcome.changed} subscription(s).", messages.SUCCESS
    )


def tell_about_background_work(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    outcome: bulk_actions.BulkOutcome,
    *,
    doing: str,
    things: str,
) -> None:
    if outcome.queued:
        model_admin.message_user(
            request,
            f"{doing} {outcome.queued:,} {things} in the background ({outcome.batches:,} "
            "batch(es) on the worker); the list shows the changes as they finish.",
            messages.SUCCESS,
        )
    if outcome.not_queued:
        model_admin.message_user(
            request,
            f"The task queue could not be reached: {outcome.not_queued:,} {things} were left "
            "as they were. Run the action again; it skips what is already done.",
            messages.ERROR,
        )
