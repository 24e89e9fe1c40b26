"""The broker goes away while the worker is busy sending, three times, and comes back
without the messages it held: the worker, run exactly as docker-compose.yml runs it
(`--pool threads --concurrency 8`), stays alive, and every email queued before or
during an outage leaves within 30 seconds of the broker's return, once.

Real parts: a redis-server of the test's own (stopped and started, without
persistence, as a cache-style Redis is run), the real PostgreSQL, the worker in a
process of its own, and an SMTP server that takes a quarter of a second per message,
with sign-ups arriving at about ten a second throughout.
"""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from django.db import close_old_connections, connection

from newsroom.celery import app as celery_app
from subscriptions.models import OutboundEmail, Subscription
from subscriptions.signup import services
from tests.db_sessions import end_worker_sessions
from tests.factories import NewsletterFactory
from tests.redis_server import SpareRedis
from tests.smtp_stub import SMTPStub
from tests.worker_process import WorkerProcess

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]

# The promise, in seconds after the broker answers again.
RECOVERY_SECONDS = 30
OUTAGES = 3
OUTAGE_SECONDS = 5
SIGNUPS_PER_SECOND = 10


class SignUps:
    """Readers signing up at a steady pace in a thread, as web requests would."""

    def __init__(self, newsletter_id: int) -> None:
        self._newsletter_id = newsletter_id
        self._stop = threading.Event()
        self.count = 0
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SignUps":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        from subscriptions.models import Newsletter

        try:
            newsletter = Newsletter.objects.get(pk=self._newsletter_id)
            while not self._stop.wait(1 / SIGNUPS_PER_SECOND):
                self.count += 1
                services.subscribe(
                    email=f"reader{self.count}@example.org",
                    newsletters=[newsletter],
                    source=Subscription.Source.API,
                    consent=services.ConsentContext(),
                )
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.errors.append(error)
        finally:
            connection.close()


def unsent_before(moment: float) -> int:
    close_old_connections()
    return (
        OutboundEmail.objects.filter(created_at__lt=_aware(moment))
        .exclude(status=OutboundEmail.Status.SENT)
        .count()
    )


def _aware(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, tz=UTC)


def seconds_until_all_sent(queued_before: float, *, since: float) -> float:
    """Wait until every email queued before `queued_before` is sent; the seconds that
    took, counted from `since`, or a failure past the promise."""
    deadline = since + RECOVERY_SECONDS
    while unsent_before(queued_before):
        if time.time() > deadline:
            raise AssertionError(
                f"{unsent_before(queued_before)} emails queued before the broker came back "
                f"were still unsent {RECOVERY_SECONDS}s after it did"
            )
        time.sleep(0.2)
    return time.time() - since


@pytest.fixture
def broker(spare_redis: SpareRedis) -> Iterator[SpareRedis]:
    """The app (this test's sign-ups) and the worker both on the spare Redis."""
    original_url = celery_app.conf.broker_url
    celery_app.conf.broker_url = spare_redis.url
    celery_app.conf.task_always_eager = False
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    try:
        yield spare_redis
    finally:
        for pool in (celery_app._pool, celery_app.amqp._producer_pool):
            if pool is not None:
                pool.force_close_all()
        celery_app.conf.broker_url = original_url
        celery_app._pool = None
        celery_app.amqp._producer_pool = None


def test_the_worker_outlives_three_broker_outages_and_sends_each_email_once_within_30s(
    broker, tmp_path, settings
):
    settings.RATE_LIMIT_REDIS_URL = broker.url
    newsletter = NewsletterFactory()
    with SMTPStub([], seconds_per_message=0.25) as smtp:
        worker = WorkerProcess(
            arguments=["--pool", "threads", "--concurrency", "8"],
            environment={
                "REDIS_URL": broker.url,
                "DEBUG": "false",
                "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(smtp.port),
            },
            log_path=tmp_path / "worker.log",
        )
        recoveries = []
        try:
            with SignUps(newsletter.pk) as signups:
                for _ in range(OUTAGES):
                    time.sleep(3)  # sending under load
                    broker.stop()
                    time.sleep(OUTAGE_SECONDS)
                    broker.start()
                    back = time.time()
                    recoveries.append(seconds_until_all_sent(back, since=back))
                    assert worker.process.poll() is None, "the worker exited"
            assert not signups.errors, signups.errors
            seconds_until_all_sent(time.time(), since=time.time())
            time.sleep(1)  # a duplicate would have reached the server by now
            alive = worker.process.poll() is None
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n--- worker log ---\n{worker.log()}") from failure
        finally:
            worker.stop()
            end_worker_sessions()

    assert alive, worker.log()
    print(f"seconds from each return to the last email sent: {recoveries}")
    assert len(recoveries) == OUTAGES
    queued = list(OutboundEmail.objects.values_list("to_email", flat=True))
    assert len(queued) == signups.count
    assert set(OutboundEmail.objects.values_list("status", flat=True)) == {"sent"}
    # Every reader got their confirmation, and nobody got two.
    deliveries = Counter(smtp.delivered)
    assert set(deliveries) == set(queued)
    assert max(deliveries.values()) == 1, deliveries.most_common(3)
