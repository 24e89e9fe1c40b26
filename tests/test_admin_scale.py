"""The admin at a million rows: no full COUNT(*) on a changelist page, a query count that
does not grow with the rows shown, and an index under every filter and the search."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from subscriptions.admin import paging
from subscriptions.models import ConsentRecord, Subscriber, Subscription, SubscriptionEvent
from tests.factories import NewsletterFactory, SubscriberFactory, SubscriptionFactory

pytestmark = pytest.mark.django_db

SUBSCRIBERS = reverse("admin:subscriptions_subscriber_changelist")
SUBSCRIPTIONS = reverse("admin:subscriptions_subscription_changelist")
EVENTS = reverse("admin:subscriptions_subscriptionevent_changelist")
# The session and the user, the subscription, its consent records and its events (one
# query each, whatever their number), its subscriber and its newsletter.
SUBSCRIPTION_PAGE_QUERIES = 7


def add_readers(count: int, newsletters: list) -> list[Subscriber]:
    readers = []
    for _ in range(count):
        subscriber = SubscriberFactory()
        for newsletter in newsletters:
            SubscriptionFactory(subscriber=subscriber, newsletter=newsletter)
        readers.append(subscriber)
    return readers


def page_queries(client, url: str, params: dict | None = None) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return [query["sql"] for query in captured.captured_queries]


def full_counts(queries: list[str]) -> list[str]:
    """COUNT queries that are not capped by a LIMIT."""
    return [q for q in queries if "COUNT(" in q.upper() and "LIMIT" not in q.upper()]


@pytest.mark.parametrize(
    ("url", "params"),
    [
        (SUBSCRIBERS, {}),
        (SUBSCRIBERS, {"status": "pending"}),
        (SUBSCRIBERS, {"q": "reader"}),
        (SUBSCRIPTIONS, {}),
        (SUBSCRIPTIONS, {"status__exact": "pending", "source__exact": "form"}),
    ],
)
def test_a_changelist_page_never_counts_the_whole_list(admin_client, url, params) -> None:
    add_readers(3, [NewsletterFactory()])

    queries = page_queries(admin_client, url, params)

    counts = [q for q in queries if "COUNT(" in q.upper()]
    assert counts, "the paginator counts (capped)"
    # The only un-LIMITed counts allowed are over tiny tables (newsletters for filters).
    assert not [q for q in full_counts(queries) if "subscriptions_subscri" in q]


LARGE_LISTS = [
    reverse(f"admin:subscriptions_{model}_changelist")
    for model in [
        "subscriber",
        "subscription",
        "subscriptionevent",
        "privacyevent",
        "outboundemail",
        "deliveryevent",
        "suppressedaddress",
        "member",
        "stripeevent",
    ]
]


@pytest.mark.parametrize("url", LARGE_LISTS)
def test_show_counts_is_off_on_every_list_that_grows_with_subscribers(admin_client, url) -> None:
    add_readers(3, [NewsletterFactory(), NewsletterFactory()])
    page_queries(admin_client, url)  # the session's first page loads more

    plain = page_queries(admin_client, url)
    asked = page_queries(admin_client, url, {"_facets": "True"})
    page = admin_client.get(url, {"_facets": "True"})

    # Facets would add a COUNT per choice of every filter, over the whole list.
    assert len(asked) == len(plain)
    assert page.context["cl"].add_facets is False
    assert "Show counts" not in page.content.decode()


def test_a_long_list_says_more_than_the_cap_and_narrows_with_filters(
    admin_client, monkeypatch
) -> None:
    monkeypatch.setattr(paging, "COUNT_LIMIT", 5)
    newsletter = NewsletterFactory()
    add_readers(8, [newsletter])

    page = admin_client.get(SUBSCRIBERS).content.decode()

    if connection.vendor == "postgresql":
        # Unfiltered and never analysed: counted (capped), not estimated.
        assert "more than 5 subscribers" in page or "about" in page
    else:
        assert "more than 5 subscribers" in page
    filtered = admin_client.get(SUBSCRIBERS, {"q": Subscriber.objects.first().email}).content
    assert "1 subscriber" in filtered.decode()


@pytest.mark.postgres
def test_an_unfiltered_list_on_postgresql_shows_the_planners_estimate(
    admin_client, monkeypatch
) -> None:
    monkeypatch.setattr(paging, "COUNT_LIMIT", 5)
    add_readers(12, [NewsletterFactory()])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE subscriptions_subscriber")

    queries = page_queries(admin_client, SUBSCRIBERS)
    page = admin_client.get(SUBSCRIBERS).content.decode()

    assert "about 12 subscribers" in page
    assert not full_counts([q for q in queries if "subscriptions_subscriber" in q])


@pytest.mark.parametrize(("url", "params"), [(SUBSCRIBERS, {}), (SUBSCRIPTIONS, {})])
def test_the_query_count_of_a_changelist_page_does_not_grow_with_its_rows(
    admin_client, url, params
) -> None:
    newsletters = [NewsletterFactory(), NewsletterFactory()]
    add_readers(2, newsletters)
    page_queries(admin_client, url, params)  # the session's first page loads more
    few = len(page_queries(admin_client, url, params))
    add_readers(30, newsletters)

    many = len(page_queries(admin_client, url, params))

    assert many == few


def test_the_query_count_of_a_subscriber_page_does_not_grow_with_subscriptions(
    admin_client,
) -> None:
    one, many = add_readers(1, [NewsletterFactory()]) + add_readers(
        1, [NewsletterFactory() for _ in range(6)]
    )

    def queries_for(subscriber: Subscriber) -> int:
        url = reverse("admin:subscriptions_subscriber_change", args=[subscriber.pk])
        return len(page_queries(admin_client, url))

    queries_for(one)  # the first admin page of a session loads what later ones reuse
    assert queries_for(many) == queries_for(one)


def add_history(subscription: Subscription, count: int) -> None:
    """`count` consent records and as many events, as a subscription collects them."""
    now = timezone.now()
    ConsentRecord.objects.bulk_create(
        ConsentRecord(subscription=subscription, kind="signup", at=now, ip_address="192.0.2.1")
        for _ in range(count)
    )
    SubscriptionEvent.objects.bulk_create(
        SubscriptionEvent(
            subscription=subscription,
            kind="resubmitted",
            to_status="pending",
            actor="reader",
            at=now,
        )
        for _ in range(count)
    )


def test_the_query_count_of_a_subscription_page_is_pinned_and_does_not_grow_with_its_history(
    admin_client, django_assert_num_queries
) -> None:
    newsletter = NewsletterFactory()
    short, long = (
        SubscriptionFactory(newsletter=newsletter),
        SubscriptionFactory(newsletter=newsletter),
    )
    add_history(short, 1)
    add_history(long, 25)

    def queries_for(subscription: Subscription) -> int:
        url = reverse("admin:subscriptions_subscription_change", args=[subscription.pk])
        return len(page_queries(admin_client, url))

    queries_for(short)  # the first admin page of a session loads what later ones reuse
    assert queries_for(long) == queries_for(short)
    with django_assert_num_queries(SUBSCRIPTION_PAGE_QUERIES):
        admin_client.get(reverse("admin:subscriptions_subscription_change", args=[long.pk]))


def test_the_address_search_matches_the_start_of_an_address_in_any_case(admin_client) -> None:
    newsletter = NewsletterFactory()
    for email in ["Kate.Tsurkan@example.org", "kate@example.net", "ann@kate.example"]:
        subscription = SubscriptionFactory(subscriber__email=email, newsletter=newsletter)
        add_history(subscription, 1)

    def found(url: str, term: str) -> set[str]:
        response = admin_client.get(url, {"q": term})
        rows = response.context["cl"].result_list
        return {getattr(getattr(row, "subscription", row), "subscriber", row).email for row in rows}

    assert found(SUBSCRIBERS, "KATE") == {"Kate.Tsurkan@example.org", "kate@example.net"}
    assert found(SUBSCRIBERS, "kate.tsurkan@example.org") == {"Kate.Tsurkan@example.org"}
    assert found(SUBSCRIPTIONS, "ann@") == {"ann@kate.example"}
    assert found(EVENTS, "KATE") == {"Kate.Tsurkan@example.org", "kate@example.net"}
    assert found(SUBSCRIBERS, "   ") == {
        "Kate.Tsurkan@example.org",
        "kate@example.net",
        "ann@kate.example",
    }


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        # Whether an index can serve the query at all (on a small test table the
        # planner would rightly scan instead).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("url", "params", "index"),
    [
        (SUBSCRIBERS, {"q": "kate"}, "subscriber_email_ci_unique"),
        (SUBSCRIBERS, {"status": "pending"}, "subscription_status"),
        (SUBSCRIBERS, {"newsletter": "{newsletter}"}, "subscription_nl_status"),
        (SUBSCRIPTIONS, {"newsletter__id__exact": "{newsletter}"}, "subscription_nl_status"),
        (SUBSCRIPTIONS, {"status__exact": "pending"}, "subscription_status"),
        (SUBSCRIPTIONS, {"source__exact": "import"}, "subscription_source"),
        (SUBSCRIPTIONS, {"q": "kate"}, "subscriber_email_ci_unique"),
        (EVENTS, {"q": "kate"}, "subscriber_email_ci_unique"),
    ],
)
def test_every_filter_and_the_search_are_served_by_an_index(
    admin_client, url, params, index
) -> None:
    newsletter = NewsletterFactory()
    add_readers(3, [newsletter, NewsletterFactory()])  # a filter with one choice hides
    params = {k: v.format(newsletter=newsletter.pk) for k, v in params.items()}

    changelist = admin_client.get(url, params).context["cl"]

    explained = plan(changelist.queryset)
    assert index in explained, explained
    assert not re.search(r"Seq Scan on subscriptions_subscri(ber|ption)\b", explained), explained
