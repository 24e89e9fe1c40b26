"""Admin actions on many rows at once: the request changes a few, the worker the rest
(subscriptions/admin/bulk_actions.py), and the editor is told which happened."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from subscriptions.admin import bulk_actions
from subscriptions.admin.common import actor
from subscriptions.models import Subscriber, Subscription


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
    _tell(
        model_admin,
        request,
        outcome,
        done=f"Unsubscribed {outcome.changed} subscription(s).",
        doing="Unsubscribing",
        things="subscription(s)",
    )


def resend_in_bulk(
    model_admin: admin.ModelAdmin, request: HttpRequest, people: QuerySet[Subscriber]
) -> None:
    ids = people.order_by("pk").values_list("pk", flat=True)
    outcome = bulk_actions.resend_confirmations(ids.iterator(), actor=actor(request))
    _tell(
        model_admin,
        request,
        outcome,
        done=f"Queued {outcome.changed} confirmation email(s).",
        doing="Resending confirmation emails to",
        things="people",
    )
    if outcome.capped:
        model_admin.message_user(
            request,
            f"{outcome.capped} not sent: the per-address cap on confirmation emails was reached.",
            messages.WARNING,
        )


def _tell(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    outcome: bulk_actions.BulkOutcome,
    *,
    done: str,
    doing: str,
    things: str,
) -> None:
    """`done` when the request did it all; otherwise what went to the worker, and what
    could not."""
    if not (outcome.queued or outcome.not_queued):
        model_admin.message_user(request, done, messages.SUCCESS)
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
