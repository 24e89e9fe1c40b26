"""With PostgreSQL unreachable, nothing answers 500: the API, the forms and the pages
answer 503 with Retry-After (JSON on the API), and a one-click unsubscribe is kept in
Redis and applied once the database is back (or, with Redis down too, answered 503 so
the mail provider tries again). When the database returns, the same requests succeed
and nothing was half-written.

Run on the production shape: gunicorn with its config, DEBUG=false, a database of the
test's own reached through a proxy the test cuts (tests/db_proxy.py), and a redis-server
of the test's own."""

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import psycopg
import pytest
from django.conf import settings

from subscriptions.tokens import confirmation_token, unsubscribe_token
from tests.db_proxy import CuttableProxy
from tests.factories import human_form_token
from tests.redis_server import IN_CI, SpareRedis, free_port

pytestmark = pytest.mark.postgres

REPO_ROOT = Path(__file__).resolve().parent.parent
RETRY_AFTER = "30"
CSRF_SECRET = "a" * 32  # an unmasked CSRF secret: the cookie and the field agree
SEED = """
import json
from subscriptions.models import Subscription
from tests.factories import NewsletterFactory, SubscriptionFactory
briefing = NewsletterFactory(slug="the-briefing", name="The Briefing", is_public=True)
active = [
    SubscriptionFactory(newsletter=briefing, status=Subscription.Status.ACTIVE).pk
    for _ in range(3)
]
pending = SubscriptionFactory(newsletter=briefing).pk
print(json.dumps({"active": active, "pending": pending}))
"""
APPLY_DEFERRED = """
from subscriptions.tasks import apply_deferred_unsubscribes
print(apply_deferred_unsubscribes())
"""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        assert self.headers["content-type"] == "application/json"
        return json.loads(self.body)


@dataclass
class Site:
    port: int
    proxy: CuttableProxy
    redis: SpareRedis
    database_url: str
    direct_url: str
    log: Path
    seeded: dict

    def request(
        self, method: str, path: str, body: bytes = b"", headers: dict | None = None
    ) -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return Answer(
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def manage(self, script: str) -> str:
        """Run Python in a management shell on the database directly (not the proxy)."""
        environment = {**self.environment(), "DATABASE_URL": self.direct_url}
        done = subprocess.run(  # noqa: S603 - our interpreter and our arguments
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=REPO_ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DEBUG": "false",
            "SECRET_KEY": settings.SECRET_KEY,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SITE_URL": f"http://127.0.0.1:{self.port}",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            # No worker runs here: tasks run in the web process after commit.
            "CELERY_TASK_ALWAYS_EAGER": "true",
            "EMAIL_BACKEND": "anymail.backends.test.EmailBackend",
        }

    def rows(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.direct_url, autocommit=True) as connection:
            return connection.execute(sql, params).fetchall()


def _url(name: str, port: int) -> str:
    database = settings.DATABASES["default"]
    user = database.get("USER") or "postgres"
    return f"postgres://{user}@{database.get('HOST') or '127.0.0.1'}:{port}/{name}"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Site]:
    database = settings.DATABASES["default"]
    host, port = database.get("HOST") or "127.0.0.1", int(database.get("PORT") or 5432)
    name = f"{database['NAME']}_outage"
    server = _url("postgres", port)
    redis_binary = shutil.which("redis-server")
    if redis_binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; CI must run the database-outage tests")
        pytest.skip("needs the redis-server binary")
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    redis = SpareRedis(redis_binary)
    log = tmp_path_factory.mktemp("outage") / "gunicorn.log"
    gunicorn: subprocess.Popen | None = None
    try:
        redis.start()
        with CuttableProxy(host, port) as proxy:
            site = Site(
                port=free_port(),
                proxy=proxy,
                redis=redis,
                database_url=_url(name, proxy.port),
                direct_url=_url(name, port),
                log=log,
                seeded={},
            )
            subprocess.run(  # noqa: S603 - our interpreter and our arguments
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                cwd=REPO_ROOT,
                env={**site.environment(), "DATABASE_URL": site.direct_url},
                check=True,
                timeout=120,
            )
            site.seeded = json.loads(site.manage(SEED))
            with log.open("w") as sink:
                gunicorn = subprocess.Popen(  # noqa: S603 - our interpreter and our arguments
                    [
                        *(sys.executable, "-m", "gunicorn", "-c", "newsroom/gunicorn.conf.py"),
                        *("--bind", f"127.0.0.1:{site.port}", "--workers", "1"),
                        "newsroom.wsgi:application",
                    ],
                    cwd=REPO_ROOT,
                    env=site.environment(),
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            _wait_until_up(site)
            yield site
    finally:
        if gunicorn is not None:
            gunicorn.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
            try:
                gunicorn.wait(timeout=10)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
                gunicorn.wait(timeout=10)
        redis.stop()
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_until_up(site: Site) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if site.request("GET", "/healthz/").status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("gunicorn did not answer /healthz/: " + site.log.read_text())
        time.sleep(0.1)


# --- the requests -------------------------------------------------------------------------


def api_signup(site: Site, email: str) -> Answer:
    body = json.dumps(
        {"email": email, "newsletters": ["the-briefing"], "form_token": human_form_token()}
    ).encode()
    return site.request("POST", "/api/v1/subscriptions", body, {"Content-Type": "application/json"})


def form_body(email: str, **extra: str) -> bytes:
    fields = {"email": email, "newsletters": "the-briefing", "form_token": human_form_token()}
    return urlencode({**fields, **extra}).encode()


URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}


def embed_signup(site: Site, email: str) -> Answer:
    return site.request("POST", "/subscribe/embed/", form_body(email), URLENCODED)


def form_signup(site: Site, email: str) -> Answer:
    body = form_body(email, csrfmiddlewaretoken=CSRF_SECRET)
    return site.request(
        "POST", "/subscribe/", body, {**URLENCODED, "Cookie": f"csrftoken={CSRF_SECRET}"}
    )


def one_click(site: Site, subscription_id: int) -> Answer:
    path = f"/unsubscribe/{unsubscribe_token.make_token(subscription_id)}/"
    return site.request("POST", path, b"List-Unsubscribe=One-Click", URLENCODED)


def confirm(site: Site, subscription_id: int) -> Answer:
    token = confirmation_token.make_token([subscription_id])
    body = f"csrfmiddlewaretoken={CSRF_SECRET}".encode()
    return site.request(
        "POST", f"/confirm/{token}/", body, {**URLENCODED, "Cookie": f"csrftoken={CSRF_SECRET}"}
    )


def assert_unavailable_page(answer: Answer) -> None:
    assert answer.status == 503, answer.body[:300]
    assert answer.headers["retry-after"] == RETRY_AFTER
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert b"Please try again in a minute." in answer.body


def assert_unavailable_json(answer: Answer) -> None:
    assert answer.status == 503, answer.body[:300]
    assert answer.headers["retry-after"] == RETRY_AFTER
    assert answer.json() == {
        "errors": {"__all__": ["The site is briefly unavailable. Please try again in a minute."]}
    }


def status_of(site: Site, subscription_id: int) -> str:
    ((status,),) = site.rows(
        "SELECT status FROM subscriptions_subscription WHERE id = %s", subscription_id
    )
    return status


def assert_nothing_half_written(site: Site) -> None:
    """Every subscriber has its subscriptions; every sign-up made here (after the seeded
    rows) its consent record and event, and, while pending, its confirmation email."""
    assert not site.rows(
        "SELECT s.id FROM subscriptions_subscriber s WHERE NOT EXISTS "
        "(SELECT 1 FROM subscriptions_subscription u WHERE u.subscriber_id = s.id)"
    )
    seeded = max(site.seeded["active"] + [site.seeded["pending"]])
    signups = site.rows(
        "SELECT u.id, u.status, "
        "EXISTS (SELECT 1 FROM subscriptions_consentrecord c WHERE c.subscription_id = u.id), "
        "EXISTS (SELECT 1 FROM subscriptions_subscriptionevent e "
        "WHERE e.subscription_id = u.id), "
        "EXISTS (SELECT 1 FROM subscriptions_outboundemail o "
        "WHERE o.subscriber_id = u.subscriber_id AND o.kind = 'confirmation') "
        "FROM subscriptions_subscription u WHERE u.id > %s",
        seeded,
    )
    for _, status, consent, event, confirmation in signups:
        assert consent and event
        assert confirmation or status != "pending"


def addresses(site: Site) -> set[str]:
    return {email for (email,) in site.rows("SELECT email FROM subscriptions_subscriber")}


# --- the tests ----------------------------------------------------------------------------


def test_with_the_database_cut_sign_ups_and_pages_answer_503_and_succeed_once_it_returns(
    site: Site,
) -> None:
    before = addresses(site)
    site.proxy.cut()
    try:
        assert site.request("GET", "/healthz/").status == 503
        assert_unavailable_json(api_signup(site, "api@example.org"))
        assert_unavailable_page(embed_signup(site, "embed@example.org"))
        assert_unavailable_page(form_signup(site, "form@example.org"))
        assert_unavailable_page(confirm(site, site.seeded["pending"]))
        assert_unavailable_page(site.request("GET", "/newsletters/"))
    finally:
        site.proxy.restore()

    assert addresses(site) == before
    assert status_of(site, site.seeded["pending"]) == "pending"
    assert api_signup(site, "api@example.org").status == 202
    assert embed_signup(site, "embed@example.org").status == 302
    assert form_signup(site, "form@example.org").status == 302
    assert confirm(site, site.seeded["pending"]).status == 200
    assert site.request("GET", "/newsletters/").status == 200
    assert addresses(site) == before | {"api@example.org", "embed@example.org", "form@example.org"}
    assert status_of(site, site.seeded["pending"]) == "active"
    assert_nothing_half_written(site)
    log = site.log.read_text()
    assert "Internal Server Error" not in log
    # One line for each request (the health check's own 503 aside), naming the route:
    # the confirmation token stays out of it.
    assert [
        line.split(" answered 503")[0].split("unavailable: ")[1]
        for line in log.splitlines()
        if "ERROR subscriptions.web.outage" in line
    ] == [
        "POST /api/v1/subscriptions",
        "POST /subscribe/embed/",
        "POST /subscribe/",
        "POST /confirm/<str:token>/",
        "GET /newsletters/",
    ]
    assert "Service Unavailable: /healthz/" in log
    assert log.count("Service Unavailable") == 1


def test_a_one_click_unsubscribe_with_the_database_cut_is_kept_and_applied_once_it_returns(
    site: Site,
) -> None:
    first, second, _ = site.seeded["active"]
    site.proxy.cut()
    try:
        site.redis.stop()  # Redis down as well: nothing can keep it, so the provider retries
        try:
            refused = one_click(site, second)
        finally:
            site.redis.start()
        recorded = one_click(site, first)
        repeated = one_click(site, first)  # a provider's retry is kept once
    finally:
        site.proxy.restore()

    assert_unavailable_page(refused)
    for answer in (recorded, repeated):
        assert answer.status == 202
        assert b"We have your request to unsubscribe" in answer.body
        assert b"been unsubscribed" not in answer.body
    assert status_of(site, first) == "active"  # not yet: the database was down

    assert site.manage(APPLY_DEFERRED) == "1"

    assert status_of(site, first) == "unsubscribed"
    ((detail,),) = site.rows(
        "SELECT detail FROM subscriptions_subscriptionevent "
        "WHERE subscription_id = %s AND kind = 'unsubscribed'",
        first,
    )
    assert detail == {"via": "one-click"}
    assert site.manage(APPLY_DEFERRED) == "0"  # applied once, then forgotten
    assert status_of(site, second) == "active"
    assert one_click(site, second).status == 200  # the provider's retry, the database back
    assert status_of(site, second) == "unsubscribed"
    assert_nothing_half_written(site)
