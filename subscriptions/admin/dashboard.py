"""The editors' dashboard: per newsletter, the subscriptions by status, how many
sign-ups confirm, who left or bounced lately, and growth over 90 days.

Growth comes from one snapshot row per newsletter per day, written by a beat task
(`take_snapshots`), so the chart reads 90 small rows instead of rebuilding history
from a million subscriptions on every view. The first run fills the past 90 days from
the subscriptions' own timestamps.
"""

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from subscriptions.membership import goal_counter
from subscriptions.membership.goal_counter import GoalSnapshot
from subscriptions.models import Newsletter, NewsletterSnapshot, Subscription, SubscriptionEvent

Status = Subscription.Status
Event = SubscriptionEvent.Kind
WINDOW_DAYS = 30
CHART_DAYS = 90
ENDED = (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)


@dataclass
class Chart:
    """A line of daily values drawn as SVG: points in a 0..width x 0..height box, the
    y-axis labels right-aligned left of it."""

    points: str
    low: int
    high: int
    first_day: date | None
    last_day: date | None
    width: int = 560
    height: int = 120
    font_size: int = 11

    @property
    def margin(self) -> int:
        """Room left of the box for the longer y-axis label ("1,204,517"), so it is not
        cut off: a digit or separator is at most 0.6 em wide in the admin's fonts, and
        the label ends 6 units before the box."""
        longest = max(len(f"{self.low:,}"), len(f"{self.high:,}"))
        return 6 + math.ceil(longest * 0.6 * self.font_size) + 4

    @property
    def view_box(self) -> str:
        """The SVG's viewBox: the box with the labels' margin left, room right and below
        for the day labels, above for the top label's ascent."""
        return f"{-self.margin} -10 {self.width + self.margin + 20} {self.height + 30}"


@dataclass
class NewsletterInsight:
    newsletter: Newsletter
    counts: dict[str, int] = field(default_factory=dict)
    signups: int = 0
    confirmations: int = 0
    unsubscribes: int = 0
    bounces: int = 0
    chart: Chart | None = None

    @property
    def confirmation_rate(self) -> float | None:
        """The share of the window's double opt-in sign-ups that confirmed."""
        return round(100.0 * self.confirmations / self.signups, 1) if self.signups else None


@dataclass
class Dashboard:
    newsletters: list[NewsletterInsight]
    goal: GoalSnapshot | None
    window_days: int = WINDOW_DAYS
    chart_days: int = CHART_DAYS


def dashboard(*, now: datetime | None = None) -> Dashboard:
    """Everything the dashboard shows, in a handful of queries."""
    now = now or timezone.now()
    insights = {n.pk: NewsletterInsight(n) for n in Newsletter.objects.all()}
    for newsletter_id, status, count in (
        Subscription.objects.values_list("newsletter_id", "status")
        .annotate(count=Count("pk"))
        .order_by()
    ):
        insights[newsletter_id].counts[status] = count
    since = now - timedelta(days=WINDOW_DAYS)
    events = (
        SubscriptionEvent.objects.filter(at__gte=since)
        .values_list("subscription__newsletter_id")
        .annotate(
            signups=Count("pk", filter=Q(kind=Event.SUBSCRIBED, to_status=Status.PENDING)),
            confirmations=Count("pk", filter=Q(kind=Event.CONFIRMED)),
            unsubscribes=Count("pk", filter=Q(kind=Event.UNSUBSCRIBED)),
            bounces=Count("pk", filter=Q(kind=Event.BOUNCED)),
        )
        .order_by()
    )
    for newsletter_id, signups, confirmations, unsubscribes, bounces in events:
        insight = insights[newsletter_id]
        insight.signups, insight.confirmations = signups, confirmations
        insight.unsubscribes, insight.bounces = unsubscribes, bounces
    first_day = now.date() - timedelta(days=CHART_DAYS - 1)
    history: dict[int, list[tuple[date, int]]] = {pk: [] for pk in insights}
    for newsletter_id, day, active in (
        NewsletterSnapshot.objects.filter(day__gte=first_day)
        .order_by("newsletter_id", "day")
        .values_list("newsletter_id", "day", "active")
    ):
        history[newsletter_id].append((day, active))
    for pk, insight in insights.items():
        for status in Status.values:
            insight.counts.setdefault(status, 0)
        insight.chart = chart(history[pk], first_day=first_day, days=CHART_DAYS)
    return Dashboard(newsletters=list(insights.values()), goal=goal_counter.read_snapshot())


def chart(values: list[tuple[date, int]], *, first_day: date, days: int) -> Chart:
    """Scale daily values into the chart's box; days without a value are left out."""
    width, height = Chart.width, Chart.height
    if not values:
        return Chart(points="", low=0, high=0, first_day=None, last_day=None)
    low = min(value for _, value in values)
    high = max(value for _, value in values)
    span = max(1, high - low)
    step = width / max(1, days - 1)
    points = " ".join(
        f"{(day - first_day).days * step:.1f},{height - (value - low) / span * height:.1f}"
        for day, value in values
    )
    return Chart(points=points, low=low, high=high, first_day=values[0][0], last_day=values[-1][0])


def take_snapshots(*, now: datetime | None = None) -> int:
    """Write today's counts per newsletter (again, if the task already ran today); the
    first time, also the past CHART_DAYS days. Returns the rows written."""
    now = now or timezone.now()
    today = timezone.localdate(now)
    with transaction.atomic():
        written = 0
        if not NewsletterSnapshot.objects.exists():
            for back in range(CHART_DAYS - 1, 0, -1):
                written += _snapshot_day(today - timedelta(days=back), now=now)
        written += _snapshot_today(today, now=now)
    return written


def _snapshot_today(today: date, *, now: datetime) -> int:
    counts: dict[int, dict[str, int]] = {
        n: {} for n in Newsletter.objects.values_list("pk", flat=True)
    }
    for newsletter_id, status, count in (
        Subscription.objects.values_list("newsletter_id", "status")
        .annotate(count=Count("pk"))
        .order_by()
    ):
        counts[newsletter_id][status] = count
    for newsletter_id, by_status in counts.items():
        NewsletterSnapshot.objects.update_or_create(
            newsletter_id=newsletter_id,
            day=today,
            defaults={status: by_status.get(status, 0) for status in Status.values}
            | {"taken_at": now},
        )
    return len(counts)


def _snapshot_day(day: date, *, now: datetime) -> int:
    """Reconstruct a past day from the subscriptions' timestamps: active if confirmed by
    its end and not ended by then (a subscription ended and started again since shows
    as it is now; a first fill is an estimate)."""
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
    ended_by_then = (
        Q(unsubscribed_at__lt=end) | Q(bounced_at__lt=end) | Q(complained_at__lt=end)
    ) & Q(status__in=ENDED)
    rows = (
        Subscription.objects.filter(created_at__lt=end)
        .values_list("newsletter_id")
        .annotate(
            active=Count("pk", filter=Q(confirmed_at__lt=end) & ~ended_by_then),
            pending=Count("pk", filter=Q(confirmed_at__isnull=True) & ~Q(status__in=ENDED)),
        )
        .order_by()
    )
    counted = {newsletter_id: (active, pending) for newsletter_id, active, pending in rows}
    snapshots = [
        NewsletterSnapshot(
            newsletter_id=newsletter_id,
            day=day,
            active=counted.get(newsletter_id, (0, 0))[0],
            pending=counted.get(newsletter_id, (0, 0))[1],
            taken_at=now,
        )
        for newsletter_id in Newsletter.objects.values_list("pk", flat=True)
    ]
    NewsletterSnapshot.objects.bulk_create(snapshots, ignore_conflicts=True)
    return len(snapshots)
