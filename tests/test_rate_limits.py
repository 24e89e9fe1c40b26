"""Sign-ups are rate limited per client IP and per target address, separately for the
HTML form and the JSON API, with a sliding window that is atomic under concurrency on
the shared Redis, fails open when Redis is down, and cannot be dodged with a forged
X-Forwarded-For. Confirmation emails are capped per address whoever asks."""

import ipaddress
import json
import threading
import time
from types import SimpleNamespace

import pytest
import redis
from django.core import mail
from django.test import RequestFactory
from django.urls import reverse

import newsroom.settings as project_settings
from subscriptions.abuse import ratelimit
from subscriptions.abuse.ratelimit import Rate, RateLimited
from subscriptions.models import (
    ConsentRecord,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.signup.addresses import canonical_mailbox
from subscriptions.web.request_info import client_ip, client_network
from subscriptions.web.views import SUCCESS_MESSAGE, rate_limited_message
from tests.factories import NewsletterFactory, human_form_token, with_form_token

API = "/api/v1/subscriptions"
CLOSED_PORT_REDIS = "redis://127.0.0.1:1/0"


def _delete_redis_limit_keys(url: str) -> None:
    connection = redis.Redis.from_url(url)
    try:
        keys = list(connection.scan_iter(match="ratelimit:*", count=1000))
        if keys:
            connection.delete(*keys)
    finally:
        connection.close()


@pytest.fixture(autouse=True)
def _fresh_limit_windows(settings):
    """No counts leak between tests: the in-process window and the test Redis DB's
    ratelimit:* keys start and end empty."""
    ratelimit._backend_for("").clear()
    if settings.REDIS_URL:
        _delete_redis_limit_keys(settings.REDIS_URL)
    yield
    ratelimit._backend_for("").clear()
    if settings.REDIS_URL:
        _delete_redis_limit_keys(settings.REDIS_URL)


@pytest.fixture(params=["local", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request, settings) -> str:
    """Runs a test on the in-process window and on the real Redis."""
    settings.RATE_LIMIT_REDIS_URL = "" if request.param == "local" else settings.REDIS_URL
    return request.param


@pytest.fixture
def on_redis(settings) -> redis.Redis:
    settings.RATE_LIMIT_REDIS_URL = settings.REDIS_URL
    connection = redis.Redis.from_url(settings.REDIS_URL)
    yield connection
    connection.close()


@pytest.fixture
def newsletter():
    return NewsletterFactory(slug="the-briefing", name="The Briefing")


def limit(settings, **rates: str) -> None:
    """Set strict limits; names use underscores here (api_ip -> "api-ip")."""
    settings.RATE_LIMITS = {
        **settings.RATE_LIMITS,
        **{name.replace("_", "-"): rate for name, rate in rates.items()},
    }


def post_api(
    client, email: str, *, ip: str = "203.0.113.5", newsletter: str = "the-briefing", **extra
):
    return client.post(
        API,
        data=json.dumps(with_form_token({"email": email, "newsletters": [newsletter]})),
        content_type="application/json",
        REMOTE_ADDR=ip,
        **extra,
    )


def post_form(client, email: str, *, ip: str = "203.0.113.5", **extra):
    return client.post(
        reverse("subscriptions:signup"),
        {"email": email, "newsletters": "the-briefing", "form_token": human_form_token()},
        REMOTE_ADDR=ip,
        **extra,
    )


def retry_after(response) -> int:
    value = int(response["Retry-After"])
    assert 0 < value <= 3600
    return value


def assert_rate_limited_json(response) -> int:
    assert response.status_code == 429
    seconds = retry_after(response)
    assert response.json() == {"errors": {"__all__": [rate_limited_message(seconds)]}}
    return seconds


# --- per client IP ------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_refuses_the_fourth_signup_from_one_ip_within_the_limit(
    client, settings, newsletter
) -> None:
    limit(settings, api_ip="3/h")

    accepted = [post_api(client, f"reader{n}@example.org").status_code for n in range(3)]
    refused = post_api(client, "reader3@example.org")

    assert accepted == [202, 202, 202]
    assert_rate_limited_json(refused)
    assert refused.json() == {
        "errors": {"__all__": ["Too many sign-up attempts. Please try again in 60 minutes."]}
    }
    assert not Subscriber.objects.filter(email="reader3@example.org").exists()
    assert Subscriber.objects.count() == 3
    assert Subscription.objects.count() == 3

    other_ip = post_api(client, "reader4@example.org", ip="198.51.100.23")
    assert other_ip.status_code == 202
    assert other_ip.json()["message"] == SUCCESS_MESSAGE
    assert Subscriber.objects.filter(email="reader4@example.org").exists()


@pytest.mark.django_db
def test_the_form_refuses_the_fourth_signup_from_one_ip_with_a_page(
    client, settings, newsletter
) -> None:
    limit(settings, form_ip="3/h")

    accepted = [post_form(client, f"reader{n}@example.org") for n in range(3)]
    refused = post_form(client, "reader3@example.org")

    assert [r.status_code for r in accepted] == [302, 302, 302]
    assert refused.status_code == 429
    assert [t.name for t in refused.templates][0] == "subscriptions/rate_limited.html"
    seconds = retry_after(refused)
    assert rate_limited_message(seconds) in refused.content.decode()
    assert "Too many sign-up attempts. Please try again in 60 minutes." in (
        refused.content.decode()
    )
    assert Subscriber.objects.count() == 3
    assert not Subscriber.objects.filter(email="reader3@example.org").exists()
    assert post_form(client, "reader4@example.org", ip="198.51.100.23").status_code == 302


@pytest.mark.django_db
def test_form_and_api_count_separately(client, settings, newsletter) -> None:
    limit(settings, api_ip="1/h", form_ip="1/h")

    assert post_api(client, "ann@example.org").status_code == 202
    assert post_api(client, "bob@example.org").status_code == 429

    form = post_form(client, "cat@example.org")
    assert form.status_code == 302
    assert Subscriber.objects.filter(email="cat@example.org").exists()
    assert post_form(client, "dan@example.org").status_code == 429
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "ann@example.org",
        "cat@example.org",
    }


@pytest.mark.parametrize(
    ("seconds", "message"),
    [
        (1, "Too many sign-up attempts. Please try again in a minute."),
        (60, "Too many sign-up attempts. Please try again in a minute."),
        (61, "Too many sign-up attempts. Please try again in 2 minutes."),
        (3600, "Too many sign-up attempts. Please try again in 60 minutes."),
    ],
)
def test_the_rate_limited_message_rounds_the_wait_up_to_whole_minutes(
    seconds: int, message: str
) -> None:
    assert rate_limited_message(seconds) == message


# --- IPv6 clients -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("203.0.113.5", "203.0.113.5"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:203.0.113.5", "203.0.113.5"),  # an IPv4 client on a dual-stack socket
        (None, "unknown"),
        ("", "unknown"),
    ],
)
def test_ipv4_clients_are_counted_by_address_and_ipv6_clients_by_their_64(
    ip: str | None, network: str
) -> None:
    assert client_network(ip) == network


@pytest.mark.django_db
def test_the_api_counts_every_address_in_one_ipv6_64_as_one_client(
    client, settings, newsletter
) -> None:
    limit(settings, api_ip="2/h")

    first = post_api(client, "ann@example.org", ip="2001:db8:1:2::1")
    second = post_api(client, "bob@example.org", ip="2001:db8:1:2:abcd:ef01:2345:6789")
    third = post_api(client, "cat@example.org", ip="2001:db8:1:2:ffff:ffff:ffff:fffe")
    next_network = post_api(client, "dan@example.org", ip="2001:db8:1:3::1")

    assert (first.status_code, second.status_code) == (202, 202)
    assert_rate_limited_json(third)
    assert next_network.status_code == 202
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "ann@example.org",
        "bob@example.org",
        "dan@example.org",
    }
    # Consent records keep the exact address; only the counting is by network.
    assert set(ConsentRecord.objects.values_list("ip_address", flat=True)) == {
        "2001:db8:1:2::1",
        "2001:db8:1:2:abcd:ef01:2345:6789",
        "2001:db8:1:3::1",
    }


@pytest.mark.django_db
def test_the_form_counts_an_ipv6_64_as_one_client_too(client, settings, newsletter) -> None:
    limit(settings, form_ip="1/h")

    assert post_form(client, "ann@example.org", ip="2001:db8:1:2::1").status_code == 302
    assert post_form(client, "bob@example.org", ip="2001:db8:1:2::2").status_code == 429
    assert post_form(client, "bob@example.org", ip="2001:db8:9:9::2").status_code == 302


@pytest.mark.django_db
def test_neighbouring_ipv4_clients_keep_limits_of_their_own(client, settings, newsletter) -> None:
    limit(settings, api_ip="1/h")

    assert post_api(client, "ann@example.org", ip="203.0.113.5").status_code == 202
    assert post_api(client, "bob@example.org", ip="203.0.113.6").status_code == 202
    assert post_api(client, "cat@example.org", ip="::ffff:203.0.113.5").status_code == 429


# --- per target address -----------------------------------------------------------------


@pytest.mark.django_db
def test_one_address_is_limited_whichever_ips_the_signups_come_from(
    client, settings, newsletter
) -> None:
    limit(settings, api_email="2/h")

    first = post_api(client, "Ann@Example.org", ip="203.0.113.1")
    second = post_api(client, "ann@example.org", ip="203.0.113.2")
    third = post_api(client, "ANN@EXAMPLE.ORG", ip="203.0.113.3")

    assert (first.status_code, second.status_code) == (202, 202)
    assert_rate_limited_json(third)
    assert Subscriber.objects.count() == 1
    events = SubscriptionEvent.objects.filter(
        kind__in=[SubscriptionEvent.Kind.SUBSCRIBED, SubscriptionEvent.Kind.RESUBMITTED]
    )
    assert events.count() == 2  # the third sign-up reached no service

    other = post_api(client, "bob@example.org", ip="203.0.113.3")
    assert other.status_code == 202
    assert Subscriber.objects.filter(email="bob@example.org").exists()


@pytest.mark.django_db
def test_the_form_limits_one_address_too(client, settings, newsletter) -> None:
    limit(settings, form_email="1/h")

    assert post_form(client, "ann@example.org", ip="203.0.113.1").status_code == 302
    refused = post_form(client, "ANN@example.org", ip="203.0.113.2")

    assert refused.status_code == 429
    assert rate_limited_message(retry_after(refused)) in refused.content.decode()
    assert post_form(client, "bob@example.org", ip="203.0.113.2").status_code == 302


@pytest.mark.parametrize(
    ("address", "mailbox"),
    [
        ("Victim@Example.org", "victim@example.org"),
        ("victim+1@example.org", "victim@example.org"),
        ("victim+news+daily@example.org", "victim@example.org"),
        ("v.ictim@example.org", "v.ictim@example.org"),  # dots matter outside Gmail
        ("v.ictim@gmail.com", "victim@gmail.com"),
        ("V.I.C.T.I.M+2@googlemail.com", "victim@gmail.com"),
        ("+tag@example.org", "+tag@example.org"),  # nothing left without the tag
        ("victim@xn--bcher-kva.example", "victim@xn--bcher-kva.example"),
    ],
)
def test_per_address_limits_count_the_mailbox_an_address_delivers_to(
    address: str, mailbox: str
) -> None:
    assert canonical_mailbox(address) == mailbox


@pytest.mark.django_db
def test_plus_and_dot_variants_of_one_gmail_inbox_share_its_limit(
    client, settings, newsletter
) -> None:
    limit(settings, api_email="2/h")

    statuses = [
        post_api(client, email, ip=f"203.0.113.{n}").status_code
        for n, email in enumerate(
            [
                "victim+1@gmail.com",
                "victim+2@gmail.com",
                "v.ictim@gmail.com",
                "V.I.C.T.I.M+3@googlemail.com",
            ]
        )
    ]
    other_inbox = post_api(client, "other@gmail.com", ip="203.0.113.9")

    assert statuses == [202, 202, 429, 429]
    assert other_inbox.status_code == 202
    # Stored as typed: the canonical form is only for counting.
    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "victim+1@gmail.com",
        "victim+2@gmail.com",
        "other@gmail.com",
    }


@pytest.mark.django_db
def test_the_form_counts_plus_variants_as_one_address_but_not_dots_outside_gmail(
    client, settings, newsletter
) -> None:
    limit(settings, form_email="1/h")

    assert post_form(client, "ann+news@example.org", ip="203.0.113.1").status_code == 302
    assert post_form(client, "Ann+other@Example.org", ip="203.0.113.2").status_code == 429
    assert post_form(client, "a.nn@example.org", ip="203.0.113.3").status_code == 302


# --- the window -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_refused_client_is_let_in_again_once_the_window_has_passed(
    client, settings, newsletter
) -> None:
    settings.RATE_LIMIT_REDIS_URL = ""
    limit(settings, api_ip="2/2s")

    assert post_api(client, "a@example.org").status_code == 202
    assert post_api(client, "b@example.org").status_code == 202
    refused = post_api(client, "c@example.org")
    assert assert_rate_limited_json(refused) == 2

    time.sleep(1.1)
    still_refused = post_api(client, "c@example.org")
    assert assert_rate_limited_json(still_refused) == 1  # counts down

    time.sleep(1.0)
    assert post_api(client, "c@example.org").status_code == 202
    assert Subscriber.objects.filter(email="c@example.org").exists()


@pytest.fixture
def fake_clock(monkeypatch) -> SimpleNamespace:
    """Both backends read time through `ratelimit.time`; move it by hand."""
    clock = SimpleNamespace(now=1_800_000_000.0)
    monkeypatch.setattr(
        ratelimit,
        "time",
        SimpleNamespace(time=lambda: clock.now, monotonic=lambda: clock.now),
    )
    return clock


def attempt(value: str = "203.0.113.5") -> int | None:
    """None if allowed, else the Retry-After seconds."""
    try:
        ratelimit.enforce_all([("api-ip", value)])
    except RateLimited as exc:
        return exc.retry_after
    return None


def test_the_window_slides_instead_of_resetting(settings, backend, fake_clock) -> None:
    limit(settings, api_ip="2/10s")

    assert attempt() is None  # t=0
    fake_clock.now += 6
    assert attempt() is None  # t=6
    assert attempt() == 4  # full until the t=0 hit leaves the window at t=10

    fake_clock.now += 4.5  # t=10.5: a fixed 10 s window would allow two again
    assert attempt() is None
    assert attempt() == 6  # the t=6 hit still counts until t=16 (5.5 s, rounded up)
    assert attempt("198.51.100.1") is None  # other values have their own window

    fake_clock.now += 5.6  # t=16.1
    assert attempt() is None


def test_parallel_requests_cannot_slip_past_the_count(settings, backend) -> None:
    limit(settings, api_ip="10/h")
    barrier = threading.Barrier(30)
    outcomes: list[str] = []
    lock = threading.Lock()

    def hit() -> None:
        barrier.wait()
        try:
            ratelimit.enforce_all([("api-ip", "198.51.100.7")])
            outcome = "allowed"
        except RateLimited:
            outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=hit) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert outcomes.count("allowed") == 10
    assert outcomes.count("refused") == 20


@pytest.mark.redis
@pytest.mark.django_db
def test_redis_keys_hold_no_raw_address_or_ip(client, settings, newsletter, on_redis) -> None:
    response = post_api(client, "ann.private@example.org", ip="203.0.113.77")

    assert response.status_code == 202
    keys = [key.decode() for key in on_redis.scan_iter(match="*")]
    limit_keys = [key for key in keys if key.startswith("ratelimit:")]
    assert {key.split(":")[1] for key in limit_keys} == {"api-ip", "api-email"}
    for key in keys:
        assert "ann.private" not in key
        assert "example.org" not in key
        assert "203.0.113.77" not in key
    for key in limit_keys:
        members = [m.decode() for m in on_redis.zrange(key, 0, -1)]
        assert len(members) == 1
        assert not any("ann.private" in m or "203.0.113" in m for m in members)
        assert 0 < on_redis.pttl(key) <= 3_600_000


@pytest.mark.redis
@pytest.mark.django_db
def test_limits_on_redis_are_shared_by_every_backend_instance(
    client, settings, newsletter, on_redis
) -> None:
    """Another web process (a new client on the same Redis) sees the same count."""
    limit(settings, api_ip="1/h")
    assert post_api(client, "ann@example.org").status_code == 202

    other_process = ratelimit._RedisWindow(settings.REDIS_URL)
    (key,) = [k.decode() for k in on_redis.scan_iter(match="ratelimit:api-ip:*")]
    assert other_process.hit_all([(key, Rate.parse("1/h"))]) is not None


# --- Redis down -------------------------------------------------------------------------


@pytest.mark.django_db
def test_signups_go_through_when_redis_is_down(client, settings, newsletter, caplog) -> None:
    settings.RATE_LIMIT_REDIS_URL = CLOSED_PORT_REDIS
    limit(settings, api_ip="1/h", api_email="1/h")

    started = time.monotonic()
    first = post_api(client, "ann@example.org")
    second = post_api(client, "ann@example.org")
    elapsed = time.monotonic() - started

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json() == {"status": "pending", "message": SUCCESS_MESSAGE}
    assert Subscription.objects.get().subscriber.email == "ann@example.org"
    assert elapsed < 2.0
    assert "rate limit check skipped: Redis unavailable" in caplog.text


# --- trusted proxies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, None, "10.0.0.1"),
        (0, "203.0.113.9", "10.0.0.1"),  # anyone can send the header
        (1, None, "10.0.0.1"),
        (1, "", "10.0.0.1"),
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "1.1.1.1, 203.0.113.9", "203.0.113.9"),  # prepended entries are the client's
        (1, "1.1.1.1,203.0.113.9 ", "203.0.113.9"),
        (1, "203.0.113.9, not-an-ip", "10.0.0.1"),
        (1, "203.0.113.9, 999.1.1.1", "10.0.0.1"),
        (1, "2001:DB8::1", "2001:db8::1"),
        (2, "1.1.1.1, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (2, "203.0.113.9", "10.0.0.1"),  # fewer entries than proxies: not from them
    ],
)
def test_client_ip_trusts_only_the_entries_our_proxies_wrote(
    settings, proxies: int, forwarded_for: str | None, expected: str
) -> None:
    settings.TRUSTED_PROXY_COUNT = proxies
    headers = {} if forwarded_for is None else {"HTTP_X_FORWARDED_FOR": forwarded_for}
    request = RequestFactory().post(API, REMOTE_ADDR="10.0.0.1", **headers)

    assert client_ip(request) == expected


@pytest.mark.django_db
def test_a_forged_forwarded_for_does_not_escape_the_limit_without_proxies(
    client, settings, newsletter
) -> None:
    settings.TRUSTED_PROXY_COUNT = 0
    limit(settings, api_ip="2/h")

    statuses = [
        post_api(
            client, f"r{n}@example.org", ip="10.0.0.1", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}"
        ).status_code
        for n in range(3)
    ]

    assert statuses == [202, 202, 429]
    assert set(ConsentRecord.objects.values_list("ip_address", flat=True)) == {"10.0.0.1"}


@pytest.mark.django_db
def test_behind_one_proxy_each_client_has_its_own_limit(client, settings, newsletter) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    limit(settings, api_ip="1/h")
    proxy = "10.0.0.1"

    ann = post_api(client, "ann@example.org", ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.9")
    bob = post_api(client, "bob@example.org", ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.10")
    ann_again = post_api(
        client, "cat@example.org", ip=proxy, HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.9"
    )

    assert (ann.status_code, bob.status_code) == (202, 202)
    assert_rate_limited_json(ann_again)
    ips = dict(ConsentRecord.objects.values_list("subscription__subscriber__email", "ip_address"))
    assert ips == {"ann@example.org": "203.0.113.9", "bob@example.org": "203.0.113.10"}


@pytest.mark.django_db
def test_a_malformed_forwarded_for_falls_back_to_the_peer(client, settings, newsletter) -> None:
    settings.TRUSTED_PROXY_COUNT = 1
    limit(settings, api_ip="1/h")

    first = post_api(client, "ann@example.org", ip="10.0.0.1", HTTP_X_FORWARDED_FOR="garbage")
    second = post_api(client, "bob@example.org", ip="10.0.0.1", HTTP_X_FORWARDED_FOR="junk")

    assert first.status_code == 202
    assert second.status_code == 429  # both counted against the proxy's own address
    assert ConsentRecord.objects.get().ip_address == "10.0.0.1"


# --- confirmation emails ----------------------------------------------------------------


@pytest.mark.django_db
def test_one_address_gets_at_most_the_daily_cap_of_confirmations_from_any_number_of_ips(
    client, settings, newsletter, django_capture_on_commit_callbacks
) -> None:
    settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS = 0
    assert settings.CONFIRMATION_EMAILS_PER_DAY == 3

    with django_capture_on_commit_callbacks(execute=True):
        responses = [post_api(client, "ann@example.org", ip=f"203.0.113.{n}") for n in range(6)]

    assert [r.status_code for r in responses] == [202] * 6
    assert all(r.json() == {"status": "pending", "message": SUCCESS_MESSAGE} for r in responses)
    assert [m.to for m in mail.outbox] == [["ann@example.org"]] * 3
    assert OutboundEmail.objects.filter(kind=OutboundEmail.Kind.CONFIRMATION).count() == 3
    assert (
        SubscriptionEvent.objects.filter(kind=SubscriptionEvent.Kind.CONFIRMATION_CAPPED).count()
        == 3
    )


VICTIM_SPELLINGS = ["victim@example.org", "Victim@Example.org", "VICTIM@EXAMPLE.ORG"]
BOMBING_REQUESTS = 1_000


def bomb(client) -> dict[str, list[int]]:
    """BOMBING_REQUESTS sign-ups of one victim address, alternating between the form and
    the API and between IPv4 and IPv6, each from an address (and /64) of its own; the
    status codes seen per edge. The test client raises on any server error."""
    statuses: dict[str, list[int]] = {"form": [], "api": []}
    for n in range(BOMBING_REQUESTS):
        edge = "form" if n % 2 else "api"
        # Requests 0 and 1 come over IPv6, 2 and 3 over IPv4, and so on.
        ip = str(ipaddress.IPv4Address("198.18.0.0") + n) if n // 2 % 2 else f"2001:db8:{n:x}::1"
        email = VICTIM_SPELLINGS[n % len(VICTIM_SPELLINGS)]
        response = (post_form if edge == "form" else post_api)(client, email, ip=ip)
        statuses[edge].append(response.status_code)
        if response.status_code == 429:
            retry_after(response)
        elif edge == "form":
            assert response.status_code == 302
            assert response["Location"] == reverse("subscriptions:thanks")
        else:
            assert response.status_code == 202
            assert response.json() == {"status": "pending", "message": SUCCESS_MESSAGE}
    return statuses


def assert_confirmations_sent_to_the_victim(count: int) -> None:
    """Exactly `count` confirmation emails went out, each from its own outbox row."""
    assert len(mail.outbox) == count
    assert all(message.to == ["victim@example.org"] for message in mail.outbox)
    rows = OutboundEmail.objects.filter(kind=OutboundEmail.Kind.CONFIRMATION)
    assert list(rows.values_list("status", flat=True)) == [OutboundEmail.Status.SENT] * count
    assert sorted(m.metadata["outbound_email_id"] for m in mail.outbox) == sorted(
        str(pk) for pk in rows.values_list("pk", flat=True)
    )


@pytest.mark.redis
@pytest.mark.django_db
def test_a_thousand_signups_of_one_victim_from_many_ips_send_at_most_the_cap(
    client, settings, newsletter, on_redis, django_capture_on_commit_callbacks
) -> None:
    """Subscription bombing against every limit the settings really have, counted in the
    shared Redis: the per-address limits turn nearly all requests away with a 429, and
    of the few that get through, the confirmation cap lets at most three emails out."""
    settings.RATE_LIMITS = dict(project_settings.RATE_LIMITS)
    form_email = Rate.parse(settings.RATE_LIMITS["form-email"])
    api_email = Rate.parse(settings.RATE_LIMITS["api-email"])

    with django_capture_on_commit_callbacks(execute=True):
        statuses = bomb(client)

    assert statuses["form"].count(302) == form_email.count
    assert statuses["api"].count(202) == api_email.count
    assert statuses["form"].count(429) + statuses["api"].count(429) == (
        BOMBING_REQUESTS - form_email.count - api_email.count
    )
    assert Subscriber.objects.get().email == "victim@example.org"
    assert Subscription.objects.count() == 1
    sent = len(mail.outbox)
    assert 1 <= sent <= settings.CONFIRMATION_EMAILS_PER_DAY
    assert_confirmations_sent_to_the_victim(sent)


@pytest.mark.redis
@pytest.mark.django_db
def test_the_confirmation_cap_holds_when_all_thousand_signups_reach_the_service(
    client, settings, newsletter, on_redis, django_capture_on_commit_callbacks
) -> None:
    """The cap on its own: per-address limits raised so every request gets through, no
    minimum interval, real per-IP limits (each request has an IP of its own)."""
    settings.RATE_LIMITS = {
        **project_settings.RATE_LIMITS,
        "form-email": "100000/h",
        "api-email": "100000/h",
    }
    settings.CONFIRMATION_EMAIL_MIN_INTERVAL_SECONDS = 0
    assert settings.CONFIRMATION_EMAILS_PER_DAY == 3

    with django_capture_on_commit_callbacks(execute=True):
        statuses = bomb(client)

    assert set(statuses["form"]) == {302}
    assert set(statuses["api"]) == {202}
    assert_confirmations_sent_to_the_victim(3)
    assert (
        SubscriptionEvent.objects.filter(kind=SubscriptionEvent.Kind.CONFIRMATION_CAPPED).count()
        == BOMBING_REQUESTS - 3
    )


# --- rate syntax ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("20/h", Rate(20, 3600)),
        ("5/10m", Rate(5, 600)),
        ("100/d", Rate(100, 86400)),
        ("7/30s", Rate(7, 30)),
        (" 3 / 2 h ", Rate(3, 7200)),
    ],
)
def test_rates_are_parsed_from_count_and_window(text: str, rate: Rate) -> None:
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["abc", "5/x", "/h", "5", "5/", "-1/h", "5/h/h", "", "5/0h"])
def test_malformed_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a rate"):
        Rate.parse(text)
