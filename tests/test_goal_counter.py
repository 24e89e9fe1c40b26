"""The membership counter: exact after any sequence of events, read from Redis with no
SQL, repaired by reconciliation, and still answering when Redis is down."""

import logging
import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.template import Context, Template

from subscriptions.membership import goal_counter, members, milestones
from subscriptions.membership.members import PaymentChange
from subscriptions.models import Member, MemberCount, MembershipGoal
from subscriptions.platform.redis_store import redis_client

API = "/api/v1/goal"
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def make_goal(**fields: object) -> MembershipGoal:
    return milestones.save_goal(MembershipGoal(**fields))


def join(n: int, *, status: str = Member.Status.ACTIVE, at: datetime = T0) -> PaymentChange:
    return PaymentChange(
        event_id=f"evt_{n}",
        event_type="customer.subscription.created",
        occurred_at=at,
        external_id=f"sub_{n}",
        status=status,
    )


def active_in_database() -> int:
    return Member.objects.filter(status=Member.Status.ACTIVE).count()


# --- what readers see -------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_answers_the_goal_and_the_count(client) -> None:
    make_goal(headline="Help us reach 20,000 members", target=20_000)
    for n in range(3):
        members.apply_payment_change(join(n))

    response = client.get(API)

    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("headline", "target", "members", "percent", "remaining")} == {
        "headline": "Help us reach 20,000 members",
        "target": 20_000,
        "members": 3,
        "percent": 0.0,
        "remaining": 19_997,
    }
    assert body["question"] == "Can we reach 20,000 members?"
    assert datetime.fromisoformat(body["updated_at"]).tzinfo is not None


@pytest.mark.django_db
def test_the_api_is_short_cached_and_open_to_every_origin(client) -> None:
    make_goal()

    response = client.get(API, HTTP_ORIGIN="https://another-site.example")

    assert response["Access-Control-Allow-Origin"] == "*"
    assert "public" in response["Cache-Control"]
    assert "max-age=10" in response["Cache-Control"]
    assert "Set-Cookie" not in response


@pytest.mark.django_db
def test_without_an_active_goal_the_api_says_404_and_the_page_shows_no_banner(client) -> None:
    make_goal(is_active=False)

    response = client.get(API)
    page = client.get("/").content.decode()

    assert response.status_code == 404
    assert response.json() == {"errors": {"__all__": ["There is no active membership goal."]}}
    assert "membership-banner" not in page


@pytest.mark.django_db
def test_percent_and_remaining_stop_at_the_target(client) -> None:
    make_goal(target=2, milestone_step=1)
    for n in range(3):
        members.apply_payment_change(join(n))

    body = client.get(API).json()

    assert (body["members"], body["percent"], body["remaining"]) == (3, 100.0, 0)


@pytest.mark.django_db
def test_the_banner_shows_headline_count_question_and_the_call_to_action(client, settings) -> None:
    settings.MEMBERSHIP_URL = "https://news.example.org/join/"
    make_goal(headline="Help us reach 20,000 members", question="Can we reach 20,000 members?")
    Member.objects.bulk_create(
        Member(status=Member.Status.ACTIVE, source=Member.Source.IMPORT) for _ in range(1234)
    )
    goal_counter.reconcile()

    page = client.get("/").content.decode()

    assert "Help us reach 20,000 members" in page
    assert '<span class="membership-banner__number" data-goal-field="members">1,234</span>' in page
    assert '<progress class="membership-progress" max="20000" value="1234"' in page
    assert "Can we reach 20,000 members?" in page
    assert 'href="https://news.example.org/join/">Become a member</a>' in page
    assert 'data-goal-api="/api/v1/goal"' in page


@pytest.mark.django_db
def test_the_banner_escapes_what_editors_typed(client) -> None:
    make_goal(headline="<script>alert(1)</script>", question="<b>?</b>")

    page = client.get("/").content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.redis
@pytest.mark.django_db
def test_reading_the_counter_costs_no_sql_query(client, django_assert_num_queries) -> None:
    make_goal()
    members.apply_payment_change(join(1))
    client.get(API)  # the first read after the test's flush warms Redis

    with django_assert_num_queries(0):
        api = client.get(API)
        banner = Template("{% load membership %}{% membership_banner %}").render(Context())

    assert api.json()["members"] == 1
    assert ">1</span>" in banner


@pytest.mark.redis
@pytest.mark.django_db
def test_a_process_serves_its_last_read_for_a_second_unless_it_changed_the_count_itself(
    settings, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    monkeypatch.setattr(goal_counter, "LOCAL_CACHE_SECONDS", 60)
    make_goal()
    with django_capture_on_commit_callbacks(execute=True):
        members.apply_payment_change(join(1))
    assert goal_counter.read_snapshot().members == 1

    redis_client(settings.REDIS_URL).hset(goal_counter.SNAPSHOT_KEY, "members", 500)
    assert goal_counter.read_snapshot().members == 1  # another process's write: not yet

    with django_capture_on_commit_callbacks(execute=True):
        members.apply_payment_change(join(2))
    assert goal_counter.read_snapshot().members == 2  # our own change: at once


# --- exactness ---------------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.django_db
def test_a_late_stale_publish_cannot_move_the_copy_backwards(
    settings, django_capture_on_commit_callbacks
) -> None:
    make_goal()
    with django_capture_on_commit_callbacks(execute=True):
        members.apply_payment_change(join(1))
    with django_capture_on_commit_callbacks(execute=True):
        members.apply_payment_change(join(2))

    assert goal_counter.publish_count(active=1, version=1) is False
    assert goal_counter.read_snapshot().members == 2


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_thousand_concurrent_member_events_leave_redis_equal_to_the_database() -> None:
    make_goal(target=20_000, milestone_step=1_000)
    # 1,000 joins, each event delivered twice (Stripe retries), and every tenth member
    # cancelling a minute later: 2,100 events in all, shuffled (a cancel may come before
    # its join), on eight threads at once.
    events = [join(n) for n in range(1_000)] * 2
    events += [
        PaymentChange(
            event_id=f"evt_cancel_{n}",
            event_type="customer.subscription.deleted",
            occurred_at=T0 + timedelta(minutes=1),
            external_id=f"sub_{n}",
            status=Member.Status.CANCELLED,
        )
        for n in range(0, 1_000, 10)
    ]
    random.Random(7).shuffle(events)
    outcomes: list[str] = []
    lock = threading.Lock()

    def apply_share(share: list[PaymentChange]) -> None:
        try:
            for change in share:
                outcome = members.apply_payment_change(change)
                with lock:
                    outcomes.append(outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=apply_share, args=(events[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(outcomes) == len(events)
    assert outcomes.count("duplicate") == 1_000
    assert active_in_database() == 900
    assert MemberCount.objects.get(pk=1).active == 900
    assert goal_counter.read_snapshot().members == 900
    assert goal_counter.reconcile().database_drift == 0


# --- reconciliation ----------------------------------------------------------------------


@pytest.mark.redis
@pytest.mark.django_db
def test_after_redis_is_flushed_reconcile_restores_the_exact_count(settings, caplog) -> None:
    make_goal()
    for n in range(5):
        members.apply_payment_change(join(n))
    redis_client(settings.REDIS_URL).flushdb()

    result = goal_counter.reconcile()

    assert result.members == 5
    fields = redis_client(settings.REDIS_URL).hgetall(goal_counter.SNAPSHOT_KEY)
    assert (fields["members"], fields["headline"]) == ("5", "Help us reach 20,000 members")


@pytest.mark.redis
@pytest.mark.django_db
def test_reconcile_fixes_a_drifted_redis_copy_and_logs_it(settings, caplog) -> None:
    make_goal()
    for n in range(5):
        members.apply_payment_change(join(n))
    redis_client(settings.REDIS_URL).hset(goal_counter.SNAPSHOT_KEY, "members", 9_999)

    with caplog.at_level(logging.WARNING, logger="subscriptions.membership.goal_counter"):
        result = goal_counter.reconcile()

    assert result.redis_drift == 5 - 9_999
    assert goal_counter.read_snapshot().members == 5
    assert "Redis had 9999" in caplog.text


@pytest.mark.django_db
def test_reconcile_fixes_a_drifted_database_count_and_logs_it(client, caplog) -> None:
    make_goal()
    for n in range(5):
        members.apply_payment_change(join(n))
    MemberCount.objects.filter(pk=1).update(active=42)

    with caplog.at_level(logging.WARNING, logger="subscriptions.membership.goal_counter"):
        result = goal_counter.reconcile()

    assert result.database_drift == 5 - 42
    assert MemberCount.objects.get(pk=1).active == 5
    assert client.get(API).json()["members"] == 5
    assert "database count was 42, recount says 5" in caplog.text


@pytest.mark.django_db
def test_the_reconcile_task_is_scheduled_every_minute_by_default(settings) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["reconcile-member-count"]

    assert entry == {"task": "subscriptions.tasks.reconcile_member_count", "schedule": 60}


# --- Redis down ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_with_redis_stopped_the_page_and_the_api_still_answer(
    client, settings, spare_redis, monkeypatch
) -> None:
    settings.REDIS_URL = spare_redis.url
    make_goal()
    for n in range(7):
        members.apply_payment_change(join(n))
    assert client.get(API).json()["members"] == 7  # served from the spare Redis

    spare_redis.stop()
    monkeypatch.setattr(goal_counter, "_last_seen", goal_counter._LastSeen())
    page = client.get("/")
    api = client.get(API)
    members.apply_payment_change(join(99))  # a member joins while Redis is down
    monkeypatch.setattr(goal_counter, "_last_seen", goal_counter._LastSeen())
    later = client.get(API)

    assert page.status_code == 200
    assert "membership-banner" in page.content.decode()
    assert (api.status_code, api.json()["members"]) == (200, 7)
    assert (later.status_code, later.json()["members"]) == (200, 8)

    spare_redis.start()
    assert goal_counter.reconcile().members == 8
    assert redis_client(spare_redis.url).hget(goal_counter.SNAPSHOT_KEY, "members") == "8"


@pytest.mark.django_db
def test_with_redis_stopped_a_process_that_changed_the_count_reads_it_afresh(
    client, settings, spare_redis, django_capture_on_commit_callbacks
) -> None:
    """With Redis down a process reuses the count it last read (FALLBACK_MAX_AGE_SECONDS)
    unless it changed the count itself: then it reads the database at once."""
    settings.REDIS_URL = spare_redis.url
    make_goal()
    with django_capture_on_commit_callbacks(execute=True):
        members.apply_payment_change(join(1))
    spare_redis.stop()
    assert client.get(API).json()["members"] == 1  # read from the database, remembered

    with django_capture_on_commit_callbacks(execute=True):
        members.apply_payment_change(join(2))  # cannot reach Redis, and forgets

    assert client.get(API).json()["members"] == 2
