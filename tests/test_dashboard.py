"""The editors' dashboard: counts by status, the confirmation rate, who left or bounced
in the last 30 days, 90 days of growth from daily snapshots, and the membership goal."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from subscriptions import tasks
from subscriptions.admin import dashboard
from subscriptions.deliverability import delivery_events
from subscriptions.membership import milestones
from subscriptions.models import (
    DeliveryEvent,
    MembershipGoal,
    NewsletterSnapshot,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.signup import services
from subscriptions.tokens import confirmation_token
from tests.browser_support import screenshot_of
from tests.factories import NewsletterFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db
DASHBOARD = reverse("admin:subscriptions_dashboard")
Status = Subscription.Status


def sign_up(email: str, newsletter, *, confirm: bool) -> Subscription:
    result = services.subscribe(
        email=email, newsletters=[newsletter], source="form", consent=services.ConsentContext()
    )
    if confirm:
        claim = confirmation_token.read_token(confirmation_token.make_token(result.pending_ids))
        services.confirm_subscriptions(claim=claim, consent=services.ConsentContext())
    return Subscription.objects.get(pk=result.pending_ids[0])


def test_the_dashboard_counts_each_status_and_the_last_30_days(admin_client) -> None:
    digest = NewsletterFactory(name="Daily Digest")
    NewsletterFactory(name="Editors' Picks")
    for n in range(3):
        sign_up(f"c{n}@example.org", digest, confirm=True)
    sign_up("p@example.org", digest, confirm=False)
    leaver = sign_up("u@example.org", digest, confirm=True)
    services.unsubscribe(subscription_id=leaver.pk, actor="reader", via="page")
    SubscriptionFactory(newsletter=digest, status=Status.BOUNCED)

    data = dashboard.dashboard()
    page = admin_client.get(DASHBOARD).content.decode()

    item = next(i for i in data.newsletters if i.newsletter == digest)
    assert item.counts == {
        "active": 3,
        "pending": 1,
        "unsubscribed": 1,
        "bounced": 1,
        "complained": 0,
    }
    assert (item.signups, item.confirmations, item.confirmation_rate) == (5, 4, 80.0)
    assert item.unsubscribes == 1
    assert "80.0% (4 of 5)" in page
    assert "Editors&#x27; Picks" in page


def test_the_dashboard_counts_bounces_of_the_last_30_days(admin_client) -> None:
    digest = NewsletterFactory(name="Daily Digest")
    other = NewsletterFactory(name="Editors' Picks")
    sign_up("fine@example.org", digest, confirm=True)
    for address in ("gone@example.org", "long-gone@example.org"):
        sign_up(address, digest, confirm=True)
        event = delivery_events.record_delivery_event(
            esp="postmark",
            kind=DeliveryEvent.Kind.HARD_BOUNCE,
            event_id=address,
            recipient=address,
            occurred_at=None,
            message_id=None,
            metadata={},
        )
        delivery_events.apply_delivery_event(event.pk)
    SubscriptionEvent.objects.filter(
        kind=SubscriptionEvent.Kind.BOUNCED, subscription__subscriber__email="long-gone@example.org"
    ).update(at=timezone.now() - timedelta(days=31))

    item, other_item = dashboard.dashboard().newsletters
    page = admin_client.get(DASHBOARD).content.decode()

    assert item.newsletter == digest and other_item.newsletter == other
    assert (item.counts["bounced"], item.bounces, item.unsubscribes) == (2, 1, 0)
    assert (other_item.counts["bounced"], other_item.bounces) == (0, 0)
    digest_row = page.split("Daily Digest", 1)[1].split("</tr></tbody>", 1)[0]
    cells = re.findall(r"<td>([^<]*)</td>", digest_row)
    # Active, pending, unsubscribed, bounced, complained, rate, unsubscribes, bounces.
    assert cells[:5] == ["1", "0", "0", "2", "0"]
    assert cells[-2:] == ["0", "1"]


def test_events_older_than_the_window_do_not_count(admin_client) -> None:
    digest = NewsletterFactory()
    sign_up("old@example.org", digest, confirm=True)
    SubscriptionEvent.objects.update(at=timezone.now() - timedelta(days=31))

    item = dashboard.dashboard().newsletters[0]

    assert (item.signups, item.confirmations, item.counts["active"]) == (0, 0, 1)
    assert item.confirmation_rate is None


def test_the_first_snapshot_fills_90_days_and_the_chart_draws_them(admin_client) -> None:
    digest = NewsletterFactory()
    now = timezone.now()
    for days_ago in (80, 40, 10):
        subscription = SubscriptionFactory(newsletter=digest, status=Status.ACTIVE)
        Subscription.objects.filter(pk=subscription.pk).update(
            created_at=now - timedelta(days=days_ago), confirmed_at=now - timedelta(days=days_ago)
        )

    written = tasks.take_newsletter_snapshots()

    assert written == 90
    active = dict(NewsletterSnapshot.objects.values_list("day", "active"))
    today = timezone.localdate(now)
    assert active[today - timedelta(days=85)] == 0
    assert active[today - timedelta(days=50)] == 1
    assert active[today - timedelta(days=20)] == 2
    assert active[today] == 3
    chart = dashboard.dashboard().newsletters[0].chart
    assert (chart.low, chart.high, chart.first_day) == (0, 3, today - timedelta(days=89))
    assert len(chart.points.split()) == 90
    page = admin_client.get(DASHBOARD).content.decode()
    assert "<polyline points=" in page


def test_later_snapshots_update_today_only(admin_client) -> None:
    digest = NewsletterFactory()
    tasks.take_newsletter_snapshots()
    SubscriptionFactory(newsletter=digest, status=Status.ACTIVE)

    assert tasks.take_newsletter_snapshots() == 1
    assert NewsletterSnapshot.objects.get(day=timezone.localdate()).active == 1


def test_the_dashboard_costs_the_same_queries_for_more_subscribers(admin_client) -> None:
    digest = NewsletterFactory()
    tasks.take_newsletter_snapshots()
    admin_client.get(DASHBOARD)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(DASHBOARD).status_code == 200
        return len(captured)

    few = queries()
    for n in range(20):
        sign_up(f"r{n}@example.org", digest, confirm=n % 2 == 0)
    assert queries() == few


def test_the_dashboard_shows_the_membership_goal(admin_client) -> None:
    milestones.save_goal(MembershipGoal(headline="Help us reach 20,000 members"))

    page = admin_client.get(DASHBOARD).content.decode()

    assert "Help us reach 20,000 members" in page
    assert "of 20,000 members" in page


def test_the_dashboard_needs_the_newsletter_view_permission(client, django_user_model) -> None:
    user = django_user_model.objects.create_user("staff", password="x" * 20, is_staff=True)
    client.force_login(user)

    assert client.get(DASHBOARD).status_code == 403


def add_growth(newsletter, *, start: int, end: int) -> None:
    """90 daily snapshots growing from `start` to `end` active subscribers."""
    today = timezone.localdate()
    NewsletterSnapshot.objects.bulk_create(
        NewsletterSnapshot(
            newsletter=newsletter,
            day=today - timedelta(days=89 - n),
            active=start + (end - start) * n // 89,
            taken_at=timezone.now(),
        )
        for n in range(90)
    )


def y_axis_labels(page: str) -> tuple[float, list[tuple[float, str]]]:
    """The chart's left edge (its viewBox) and its y-axis labels with their x."""
    svg = re.search(r"<svg viewBox=\"(-?[\d.]+) [^\"]*\".*?</svg>", page, re.DOTALL)
    labels = re.findall(r'<text x="(-?[\d.]+)"[^>]*text-anchor="end"[^>]*>([^<]*)</text>', svg[0])
    return float(svg[1]), [(float(x), text) for x, text in labels if re.fullmatch(r"[\d,]+", text)]


def test_the_chart_leaves_room_for_its_labels_at_a_million_subscribers(admin_client) -> None:
    add_growth(NewsletterFactory(), start=863_889, end=1_204_517)

    left, labels = y_axis_labels(admin_client.get(DASHBOARD).content.decode())

    assert [text for _, text in labels] == ["1,204,517", "863,889"]
    for x, text in labels:
        # Right-aligned at x: the text runs leftwards, a digit up to 0.6 em at 11 px.
        assert x - len(text) * 0.6 * 11 >= left, (x, text, left)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_chart_labels_are_drawn_whole_in_a_browser(page, site, admin_client) -> None:
    add_growth(NewsletterFactory(name="Daily Digest"), start=863_889, end=1_204_517)
    session = admin_client.cookies[settings.SESSION_COOKIE_NAME].value
    page.context.add_cookies(
        [{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": site}]
    )

    page.goto(site + DASHBOARD)
    chart = page.locator("figure.growth-chart").first
    screenshot_of(chart, "dashboard-growth-chart-a-million")
    texts = chart.locator("svg").evaluate(
        """svg => {
            const view = svg.viewBox.baseVal;
            return [...svg.querySelectorAll("text")].map(text => {
                const box = text.getBBox();
                return [text.textContent, box.x, box.x + box.width, view.x, view.x + view.width];
            });
        }"""
    )

    assert {text for text, *_ in texts} >= {"1,204,517", "863,889"}
    for text, left, right, view_left, view_right in texts:
        assert view_left <= left and right <= view_right, (text, left, right, view_left)
