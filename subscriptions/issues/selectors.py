"""Reads about issues: the public archive, and an issue's progress and report."""

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from subscriptions.models import DeliveryEvent, Issue, IssueDelivery, SubscriptionEvent

Copy = IssueDelivery.Status


def archived_issues(newsletter_id: int) -> QuerySet[Issue]:
    """A newsletter's sent issues, newest first: what its public archive lists."""
    return Issue.objects.filter(newsletter_id=newsletter_id, status=Issue.Status.SENT).order_by(
        "-finished_at", "-pk"
    )


@dataclass(frozen=True)
class Progress:
    audience: int
    queued: int
    sending: int
    sent: int
    failed: int
    skipped: int
    # Sent copies claimed more than once: their batch may have gone out twice.
    sent_more_than_once: int

    @property
    def left(self) -> int:
        return self.queued + self.sending

    @property
    def done_percent(self) -> int:
        if not self.audience:
            return 100
        return round(100 * (self.audience - self.left) / self.audience)


def progress(issue_id: int) -> Progress:
    """Where the issue's sending stands, from its copies (one grouped read)."""
    counts = IssueDelivery.objects.filter(issue_id=issue_id).aggregate(
        queued=Count("pk", filter=Q(status=Copy.QUEUED)),
        sending=Count("pk", filter=Q(status=Copy.SENDING)),
        sent=Count("pk", filter=Q(status=Copy.SENT)),
        failed=Count("pk", filter=Q(status=Copy.FAILED)),
        skipped=Count("pk", filter=Q(status=Copy.SKIPPED)),
        sent_more_than_once=Count("pk", filter=Q(status=Copy.SENT, attempts__gt=1)),
    )
    audience = Issue.objects.filter(pk=issue_id).values_list("audience", flat=True).first() or 0
    return Progress(audience=audience, **counts)


@dataclass(frozen=True)
class Report:
    delivered: int
    bounced: int
    complained: int
    unsubscribed: int


def report(issue_id: int) -> Report:
    """What the provider's tracking events and readers said about the issue afterwards:
    events carry the issue's id in their metadata; unsubscribes name the issue."""
    kind = DeliveryEvent.Kind
    events = DeliveryEvent.objects.filter(issue_id=issue_id).aggregate(
        delivered=Count("pk", filter=Q(kind=kind.DELIVERED)),
        bounced=Count("pk", filter=Q(kind__in=[kind.HARD_BOUNCE, kind.SOFT_BOUNCE, kind.REJECTED])),
        complained=Count("pk", filter=Q(kind=kind.COMPLAINED)),
    )
    unsubscribed = SubscriptionEvent.objects.filter(
        kind=SubscriptionEvent.Kind.UNSUBSCRIBED, detail__issue=issue_id
    ).count()
    return Report(unsubscribed=unsubscribed, **events)
