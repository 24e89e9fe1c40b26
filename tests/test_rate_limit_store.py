"""Where the rate limits are kept. On a Redis Cluster they hold: the keys of one check
share one hash tag, so the cluster runs the one script that counts them. When the Redis
cannot run a check (down, or refusing it), the request goes on, and the check let through
is counted per limit and reason (`ratelimit.fail_open_counts`) and logged, never
raised."""

import logging

import pytest
import redis

from subscriptions.abuse import ratelimit
from subscriptions.abuse.ratelimit import RateLimited
from subscriptions.models import Subscriber
from tests.factories import NewsletterFactory
from tests.test_rate_limits import (
    CLOSED_PORT_REDIS,
    assert_rate_limited_json,
    limit,
    post_api,
    post_form,
)


@pytest.fixture
def newsletter():
    return NewsletterFactory(slug="the-briefing", name="The Briefing")


# --- Redis Cluster ----------------------------------------------------------------------


@pytest.fixture(params=[True, False], ids=["cluster-client", "plain-client"])
def on_cluster(request, settings, redis_cluster) -> redis.Redis:
    """The limits on a real Redis Cluster (one node serving every slot), through
    redis-py's cluster client (RATE_LIMIT_REDIS_CLUSTER) and through a plain client, as a
    managed cluster's single endpoint is often reached; the connection yielded looks at
    the node's keys."""
    settings.RATE_LIMIT_REDIS_URL = redis_cluster.url
    settings.RATE_LIMIT_REDIS_CLUSTER = request.param
    connection = redis.Redis.from_url(redis_cluster.url, decode_responses=True)
    yield connection
    connection.close()


def hash_tag(key: str) -> str:
    """The part of a key a cluster hashes: between the first { and the next }, when that
    is not empty (the Redis Cluster specification, "Hash tags")."""
    start = key.find("{")
    end = key.find("}", start + 1)
    if start == -1 or end in (-1, start + 1):
        return key
    return key[start + 1 : end]


@pytest.mark.django_db
def test_on_a_redis_cluster_the_form_refuses_a_client_over_its_limit(
    client, settings, newsletter, on_cluster
) -> None:
    limit(settings, form_ip="2/h")

    statuses = [post_form(client, f"reader{n}@example.org").status_code for n in range(3)]

    assert statuses == [302, 302, 429]
    assert Subscriber.objects.count() == 2


@pytest.mark.django_db
def test_on_a_redis_cluster_the_keys_of_one_check_share_one_hash_tag(
    client, settings, newsletter, on_cluster
) -> None:
    limit(settings, api_email="1/h")

    first = post_api(client, "ann.private@example.org", ip="203.0.113.77")
    again = post_api(client, "ann.private@example.org", ip="198.51.100.8")

    assert first.status_code == 202
    assert_rate_limited_json(again)
    # (The sign-up's form token is kept in the same store, under a key of its own.)
    keys = list(on_cluster.scan_iter(match="ratelimit:*"))
    assert sorted(key.split(":")[1] for key in keys) == ["api-email", "api-ip", "api-ip"]
    (tag,) = {hash_tag(key) for key in keys}
    assert tag not in keys  # a tag of its own, not each whole key
    assert len({on_cluster.cluster("keyslot", key) for key in keys}) == 1
    for key in keys:
        assert "ann.private" not in key
        assert "example.org" not in key
        assert "203.0.113" not in key
        assert "198.51.100" not in key


def test_on_a_redis_cluster_a_full_window_stops_the_count_in_one_check(
    settings, on_cluster
) -> None:
    limit(settings, api_ip="1/h", api_email="5/h")
    check = [("api-ip", "203.0.113.5"), ("api-email", "ann@example.org")]

    ratelimit.enforce_all(check)
    with pytest.raises(RateLimited):
        ratelimit.enforce_all(check)

    (mailbox_key,) = on_cluster.scan_iter(match="ratelimit:api-email:*")
    assert on_cluster.zcard(mailbox_key) == 1  # the refused check stopped at the full window


# --- Redis down or refusing -------------------------------------------------------------


def fail_opens_since(before: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    """What ratelimit.fail_open_counts() has added since `before`, per (limit, reason)."""
    after = ratelimit.fail_open_counts()
    return {
        key: count - before.get(key, 0)
        for key, count in after.items()
        if count != before.get(key, 0)
    }


def fail_open_warnings(caplog) -> list[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "subscriptions.abuse.ratelimit" and record.levelno == logging.WARNING
    ]


@pytest.mark.django_db
def test_a_check_skipped_because_redis_stopped_is_counted_and_logged(
    client, settings, newsletter, spare_redis, caplog
) -> None:
    settings.RATE_LIMIT_REDIS_URL = spare_redis.url
    limit(settings, api_ip="1/h", api_email="1/h")
    assert post_api(client, "ann@example.org").status_code == 202  # counted while it runs
    before = ratelimit.fail_open_counts()
    spare_redis.stop()

    with caplog.at_level(logging.WARNING, logger="subscriptions.abuse.ratelimit"):
        over_both_limits = post_api(client, "ann@example.org")

    assert over_both_limits.status_code == 202
    # The form token's one-mailbox check lives in the same store and fails open alike.
    assert fail_opens_since(before) == {
        ("api-ip", "unreachable"): 1,
        ("api-email", "unreachable"): 1,
        ("form-token", "unreachable"): 1,
    }
    warning, token_warning = fail_open_warnings(caplog)
    assert "form-token" in token_warning.getMessage()
    message = warning.getMessage()
    assert "rate limit check skipped: Redis unavailable" in message
    assert "unreachable" in message
    assert "api-ip" in message and "api-email" in message
    assert "ann@example.org" not in message


def test_a_check_redis_refuses_is_counted_and_logged_as_refused(
    settings, spare_redis, caplog
) -> None:
    settings.RATE_LIMIT_REDIS_URL = spare_redis.url
    limit(settings, form_ip="1/h")
    connection = redis.Redis.from_url(spare_redis.url)
    # With no replica it could wait for, Redis refuses every write: NOREPLICAS.
    connection.config_set("min-replicas-to-write", 1)
    connection.close()
    before = ratelimit.fail_open_counts()

    with caplog.at_level(logging.WARNING, logger="subscriptions.abuse.ratelimit"):
        ratelimit.enforce_all([("form-ip", "203.0.113.5")])
        ratelimit.enforce_all([("form-ip", "203.0.113.5")])  # over the limit: not counted

    assert fail_opens_since(before) == {("form-ip", "refused"): 2}
    warnings = fail_open_warnings(caplog)
    assert len(warnings) == 2
    assert all("refused" in w.getMessage() and "form-ip" in w.getMessage() for w in warnings)


@pytest.mark.django_db
def test_a_redis_cluster_that_cannot_be_reached_lets_signups_through_counted(
    client, settings, newsletter, caplog
) -> None:
    settings.RATE_LIMIT_REDIS_URL = CLOSED_PORT_REDIS
    settings.RATE_LIMIT_REDIS_CLUSTER = True
    limit(settings, form_ip="1/h", form_email="1/h")
    before = ratelimit.fail_open_counts()

    with caplog.at_level(logging.WARNING, logger="subscriptions.abuse.ratelimit"):
        statuses = [post_form(client, "ann@example.org").status_code for _ in range(2)]

    assert statuses == [302, 302]
    assert fail_opens_since(before) == {
        ("form-ip", "unreachable"): 2,
        ("form-email", "unreachable"): 2,
        ("form-token", "unreachable"): 2,
    }
    assert len(fail_open_warnings(caplog)) == 4


def test_a_redis_cluster_that_stops_is_counted_and_logged_and_counts_again_once_back(
    settings, redis_cluster, caplog
) -> None:
    settings.RATE_LIMIT_REDIS_URL = redis_cluster.url
    settings.RATE_LIMIT_REDIS_CLUSTER = True
    limit(settings, api_ip="2/h")
    ratelimit.enforce_all([("api-ip", "203.0.113.5")])
    before = ratelimit.fail_open_counts()
    redis_cluster.stop()

    with caplog.at_level(logging.WARNING, logger="subscriptions.abuse.ratelimit"):
        ratelimit.enforce_all([("api-ip", "203.0.113.5")])

    assert fail_opens_since(before) == {("api-ip", "unreachable"): 1}
    (warning,) = fail_open_warnings(caplog)
    assert "unreachable" in warning.getMessage()

    redis_cluster.start()  # the same node, its slots kept in its config file; no keys
    ratelimit.enforce_all([("api-ip", "203.0.113.5")])
    ratelimit.enforce_all([("api-ip", "203.0.113.5")])
    with pytest.raises(RateLimited):
        ratelimit.enforce_all([("api-ip", "203.0.113.5")])
    assert fail_opens_since(before) == {("api-ip", "unreachable"): 1}
