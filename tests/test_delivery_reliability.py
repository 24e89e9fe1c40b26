"""Nothing is lost and nothing is sent twice, with real parts: a real Celery worker on the
real Redis (in a thread, or in a process of its own to kill), the real PostgreSQL,
anymail's real Postmark backend talking HTTP to a local stand-in for Postmark's API, and
a Redis server of the test's own that it stops and starts again."""

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from unittest import mock

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.core import mail
from django.test import Client

from newsroom.celery import app as celery_app
from subscriptions import tasks
from subscriptions.mail import outbox
from subscriptions.models import OutboundEmail, Subscription
from subscriptions.signup import services
from subscriptions.web.views import SUCCESS_MESSAGE
from tests.db_sessions import end_worker_sessions
from tests.esp_stub import DROP_CONNECTION, HANG, PostmarkStub, Reply
from tests.factories import NewsletterFactory, with_form_token
from tests.redis_server import SpareRedis
from tests.worker_process import WorkerProcess

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]

# A queue of this file's own, so no other worker (a stray one on the machine, or another
# test file's) takes our tasks.
QUEUE = "tests-delivery-reliability"
SERVER_ERROR = Reply(500, {"ErrorCode": 500, "Message": "Internal server error"})
INVALID_REQUEST = Reply(422, {"ErrorCode": 300, "Message": "Invalid email request"})
INVALID_TO = Reply(422, {"ErrorCode": 300, "Message": "Invalid 'To' address: 'ann@example.org'."})
INACTIVE_RECIPIENT = Reply(
    422,
    {
        "ErrorCode": 406,
        "Message": "You tried to send to a recipient that has been marked as inactive.\n"
        "Found inactive addresses: ann@example.org.\n"
        "Inactive recipients are ones that have generated a hard bounce or a spam complaint.",
    },
)
RATE_LIMITED = Reply(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"})


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.05)


@contextmanager
def worker_log_on_failure(worker: "WorkerProcess") -> Iterator[None]:
    """A failure in the block says what the worker process logged."""
    try:
        yield
    except (AssertionError, TimeoutError, ValueError) as failure:
        raise AssertionError(f"{failure}\n--- worker log ---\n{worker.log()}") from failure


def sign_up(email: str = "ann@example.org") -> OutboundEmail:
    """A committed sign-up; its confirmation task is enqueued on commit, as in production."""
    result = services.subscribe(
        email=email,
        newsletters=[NewsletterFactory()],
        source=Subscription.Source.FORM,
        consent=services.ConsentContext(),
    )
    return OutboundEmail.objects.get(pk=result.confirmation_email_id)


def row(outbound: OutboundEmail) -> OutboundEmail:
    return OutboundEmail.objects.get(pk=outbound.pk)


def switch_broker(url: str) -> None:
    celery_app.conf.broker_url = url
    # The app keeps its broker connection pool and producer pool once made (kombu keys
    # them by connection); drop them so the next publish connects to `url`.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@contextmanager
def running_worker(*, pool: str = "solo", concurrency: int = 1) -> Iterator[object]:
    """A real worker in a thread, on whatever broker the app points at now."""
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(QUEUE)
    with start_worker(
        celery_app,
        pool=pool,
        concurrency=concurrency,
        perform_ping_check=False,
        queues=[QUEUE],
        shutdown_timeout=10,
    ) as worker:
        yield worker
    end_worker_sessions()


@pytest.fixture
def own_queue() -> Iterator[None]:
    """Publish for real to this file's queue; conftest restores task_always_eager."""
    original_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = QUEUE
    yield
    celery_app.conf.task_default_queue = original_queue


@pytest.fixture
def worker(own_queue) -> Iterator[object]:
    with running_worker() as running:
        yield running


@pytest.fixture
def outcomes() -> Iterator[list[tuple[object, int]]]:
    """What each send_outbound_email run ended in, as the worker saw it, with the row id:
    the task's return value ("sent", "skipped", "failed") or "RETRY"."""
    seen: list[tuple[object, int]] = []

    def record(sender=None, args=None, retval=None, state=None, **kwargs) -> None:
        if sender is not None and sender.name == tasks.send_outbound_email.name:
            seen.append((retval if state == "SUCCESS" else state, args[0]))

    task_postrun.connect(record, weak=False)
    yield seen
    task_postrun.disconnect(record)


@pytest.fixture
def postmark(settings) -> Iterator[Callable[..., PostmarkStub]]:
    """Start the Postmark stand-in with a script of replies and send through anymail's
    real Postmark backend to it, with quick retries."""
    stubs: list[PostmarkStub] = []

    def start(*replies: Reply) -> PostmarkStub:
        stub = PostmarkStub(list(replies)).start()
        stubs.append(stub)
        # After conftest's autouse fixture, which chose anymail's test backend.
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "test-token", "POSTMARK_API_URL": stub.api_url}
        return stub

    settings.OUTBOX_RETRY_BASE_SECONDS = 0.2
    settings.OUTBOX_RETRY_MAX_SECONDS = 1
    yield start
    for stub in stubs:
        stub.stop()


def test_server_errors_are_retried_until_postmark_accepts_the_message(worker, postmark, outcomes):
    stub = postmark(SERVER_ERROR, SERVER_ERROR)

    outbound = sign_up()

    wait_for(lambda: row(outbound).status == OutboundEmail.Status.SENT, what="the row to be sent")
    # The row is committed a moment before the task returns and task_postrun records it.
    wait_for(lambda: len(outcomes) == 3, what="the third run to end")
    sent = row(outbound)
    posts = stub.exchanges
    assert [exchange.status for exchange in posts] == [500, 500, 200]
    assert {exchange.path for exchange in posts} == {"/email"}
    assert sent.attempts == 3
    assert sent.esp_message_id == posts[-1].reply["MessageID"]
    assert sent.last_error == ""
    assert sent.sent_at is not None
    assert [result for result, _ in outcomes] == ["RETRY", "RETRY", "sent"]
    accepted = posts[-1]
    assert accepted.headers["X-Postmark-Server-Token"] == "test-token"
    assert accepted.body["To"] == "ann@example.org"
    assert accepted.body["Tag"] == "confirmation"
    assert accepted.body["Metadata"]["message_type"] == "confirmation"
    assert accepted.body["Metadata"]["outbound_email_id"] == str(outbound.pk)


@pytest.mark.parametrize(
    ("rejection", "error"),
    [
        (INVALID_REQUEST, "422"),
        # anymail turns these two into AnymailRecipientsRefused, which carries the
        # response but no status_code of its own.
        (INVALID_TO, "rejected or invalid"),
        (INACTIVE_RECIPIENT, "rejected or invalid"),
    ],
    ids=["invalid-request", "invalid-to", "inactive-recipient"],
)
def test_a_rejected_request_fails_the_row_after_one_attempt(
    worker, postmark, outcomes, settings, rejection, error
):
    stub = postmark(rejection)

    outbound = sign_up()

    wait_for(lambda: outcomes, what="the send task to finish")
    # Longer than any retry countdown could be, so a retry would have shown by now.
    time.sleep(settings.OUTBOX_RETRY_MAX_SECONDS + 0.5)
    failed = row(outbound)
    assert outcomes == [("failed", outbound.pk)]
    assert (failed.status, failed.attempts) == (OutboundEmail.Status.FAILED, 1)
    assert error in failed.last_error
    assert failed.sent_at is None
    assert len(stub.exchanges) == 1


def test_rate_limiting_is_retried(worker, postmark, outcomes):
    stub = postmark(RATE_LIMITED)

    outbound = sign_up()

    wait_for(lambda: row(outbound).status == OutboundEmail.Status.SENT, what="the row to be sent")
    assert row(outbound).attempts == 2
    assert [exchange.status for exchange in stub.exchanges] == [429, 200]
    assert [result for result, _ in outcomes] == ["RETRY", "sent"]


def test_a_connection_dropped_without_an_answer_is_retried(worker, postmark):
    stub = postmark(DROP_CONNECTION)

    outbound = sign_up()

    wait_for(lambda: row(outbound).status == OutboundEmail.Status.SENT, what="the row to be sent")
    sent = row(outbound)
    assert (sent.attempts, sent.last_error) == (2, "")
    assert [exchange.status for exchange in stub.exchanges] == [None, 200]
    assert sent.esp_message_id == stub.exchanges[-1].reply["MessageID"]


def test_an_unreachable_esp_is_retried_once_it_is_back(worker, postmark, settings):
    stub = postmark()
    stub.stop()
    # Countdowns of 1-2 s: time enough to bring the ESP back before the retry.
    settings.OUTBOX_RETRY_BASE_SECONDS = 2
    settings.OUTBOX_RETRY_MAX_SECONDS = 2

    outbound = sign_up()

    wait_for(lambda: row(outbound).last_error, what="the refused connection to be recorded")
    waiting = row(outbound)
    assert (waiting.status, waiting.attempts) == (OutboundEmail.Status.QUEUED, 1)
    assert "ConnectionError" in waiting.last_error or "Error posting" in waiting.last_error
    stub.start()
    wait_for(lambda: row(outbound).status == OutboundEmail.Status.SENT, what="the row to be sent")
    assert row(outbound).attempts == 2
    assert len(stub.exchanges) == 1


def test_a_task_delivered_twice_sends_once(worker, postmark, outcomes):
    stub = postmark()
    with mock.patch("subscriptions.mail.outbox.enqueue"):
        outbound = sign_up()

    # Redis redelivers an unacknowledged message with the same task id.
    first = tasks.send_outbound_email.delay(outbound.pk)
    tasks.send_outbound_email.apply_async(args=[outbound.pk], task_id=first.id)

    wait_for(lambda: len(outcomes) == 2, what="both deliveries of the task to run")
    assert sorted(result for result, _ in outcomes) == ["sent", "skipped"]
    assert len(stub.exchanges) == 1
    sent = row(outbound)
    assert (sent.status, sent.attempts) == (OutboundEmail.Status.SENT, 1)


def test_a_duplicate_task_arriving_mid_send_is_skipped(own_queue, postmark, outcomes):
    stub = postmark(Reply(200, delay=1.5))
    with mock.patch("subscriptions.mail.outbox.enqueue"):
        outbound = sign_up()

    # Two tasks at once, so the duplicate arrives while the ESP is still answering.
    with running_worker(pool="threads", concurrency=2):
        tasks.send_outbound_email.delay(outbound.pk)
        wait_for(lambda: stub.exchanges, what="the first delivery to reach the ESP")
        tasks.send_outbound_email.delay(outbound.pk)
        wait_for(lambda: len(outcomes) == 2, what="both deliveries of the task to run")

    assert sorted(result for result, _ in outcomes) == ["sent", "skipped"]
    assert len(stub.exchanges) == 1
    sent = row(outbound)
    assert (sent.status, sent.attempts) == (OutboundEmail.Status.SENT, 1)


def test_a_redelivered_task_arriving_mid_send_is_skipped(own_queue, postmark, outcomes):
    stub = postmark(Reply(200, delay=1.5))
    with mock.patch("subscriptions.mail.outbox.enqueue"):
        outbound = sign_up()

    # Redis gives an unacknowledged message out again, same task id, once its
    # visibility_timeout passes or the consumer's connection drops, whether or not the
    # first delivery is still running.
    with running_worker(pool="threads", concurrency=2):
        first = tasks.send_outbound_email.delay(outbound.pk)
        wait_for(lambda: stub.exchanges, what="the first delivery to reach the ESP")
        tasks.send_outbound_email.apply_async(args=[outbound.pk], task_id=first.id)
        wait_for(lambda: len(outcomes) == 2, what="both deliveries of the task to run")

    assert len(stub.exchanges) == 1
    assert sorted(result for result, _ in outcomes) == ["sent", "skipped"]
    assert row(outbound).attempts == 1


@pytest.fixture
def worker_process(own_queue, tmp_path) -> Iterator[Callable[[str], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(postmark_api_url: str, pool: str = "prefork", *, purge: bool = True) -> WorkerProcess:
        if purge:
            with celery_app.connection_for_write() as connection:
                connection.default_channel.queue_purge(QUEUE)
        # As production runs it (a prefork parent and one pool child, or threads),
        # anymail's Postmark backend pointed at the stand-in.
        worker = WorkerProcess(
            arguments=[
                *("-P", pool, "-c", "1", "-Q", QUEUE, "-l", "info"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
                *("-n", f"killed-mid-task-{os.getpid()}@%h"),
            ],
            environment={
                "REDIS_URL": celery_app.conf.broker_url,
                "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
                "ANYMAIL": json.dumps(
                    {"POSTMARK_SERVER_TOKEN": "test-token", "POSTMARK_API_URL": postmark_api_url}
                ),
            },
            log_path=tmp_path / f"worker-{len(started)}.log",
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_a_worker_killed_mid_send_leads_to_one_redelivery_and_one_email(worker_process, postmark):
    # The first request to Postmark never gets its answer: the worker is killed while it
    # waits. Postmark never accepted that one, so the email must go out exactly once more.
    stub = postmark(HANG)
    with mock.patch("subscriptions.mail.outbox.enqueue"):
        outbound = sign_up()
    worker = worker_process(stub.api_url)

    task = tasks.send_outbound_email.delay(outbound.pk)
    with worker_log_on_failure(worker):
        wait_for(lambda: stub.exchanges, timeout=30, what="the worker to reach Postmark")
        (child,) = worker.pool_children()
        claimed = row(outbound)
        assert (claimed.status, claimed.attempts) == (OutboundEmail.Status.SENDING, 1)
        os.kill(child, signal.SIGKILL)

        # task_reject_on_worker_lost: the parent puts the message back on the queue and
        # its new pool child runs it again, under the same task id. The first child's
        # send lease (an advisory lock) died with its database connection.
        wait_for(
            lambda: row(outbound).status == OutboundEmail.Status.SENT,
            timeout=20,
            what="the redelivered task to send the row",
        )

    time.sleep(0.5)  # a stray third delivery would have reached the stub by now
    sent = row(outbound)
    assert [exchange.status for exchange in stub.exchanges] == [None, 200]
    assert (sent.status, sent.attempts, sent.claimed_by_task) == (
        OutboundEmail.Status.SENT,
        2,
        task.id,
    )
    assert sent.esp_message_id == stub.exchanges[-1].reply["MessageID"]
    assert child not in worker.pool_children()


def test_a_threads_worker_killed_mid_send_leaves_the_row_to_the_sweeper_and_one_email(
    worker_process, postmark, settings
):
    """Production's pool (threads): a killed worker takes no process with it to notice,
    so its message waits out Redis's visibility timeout; the sweeper hands the row to a
    worker once its claim is stale, and the email goes out once."""
    stub = postmark(HANG)
    with mock.patch("subscriptions.mail.outbox.enqueue"):
        outbound = sign_up()
    first = worker_process(stub.api_url, pool="threads")

    tasks.send_outbound_email.delay(outbound.pk)
    with worker_log_on_failure(first):
        wait_for(lambda: stub.exchanges, timeout=30, what="the worker to reach Postmark")
        claimed = row(outbound)
        assert (claimed.status, claimed.attempts) == (OutboundEmail.Status.SENDING, 1)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    # As if OUTBOX_STALE_AFTER_SECONDS passed: the claim is abandoned.
    stale = timedelta(seconds=settings.OUTBOX_STALE_AFTER_SECONDS + 1)
    OutboundEmail.objects.filter(pk=outbound.pk).update(claimed_at=claimed.claimed_at - stale)
    second = worker_process(stub.api_url, pool="threads", purge=False)

    assert outbox.requeue_stale() == 1
    with worker_log_on_failure(second):
        wait_for(
            lambda: row(outbound).status == OutboundEmail.Status.SENT,
            timeout=30,
            what="the swept row to be sent",
        )

    time.sleep(0.5)  # a stray further delivery would have reached the stub by now
    assert [exchange.status for exchange in stub.exchanges] == [None, 200]
    assert (row(outbound).status, row(outbound).attempts) == (OutboundEmail.Status.SENT, 2)


@pytest.fixture
def broker_on_spare_redis(spare_redis, own_queue, settings) -> Iterator[SpareRedis]:
    original_url = celery_app.conf.broker_url
    switch_broker(spare_redis.url)
    # Production shares one Redis between the broker and the rate limits; both go down.
    settings.RATE_LIMIT_REDIS_URL = spare_redis.url
    try:
        yield spare_redis
    finally:
        for pool in (celery_app._pool, celery_app.amqp._producer_pool):
            if pool is not None:
                pool.force_close_all()
        switch_broker(original_url)


def test_a_signup_while_the_broker_is_down_is_sent_once_it_is_back(broker_on_spare_redis):
    broker = broker_on_spare_redis
    assert f":{broker.port}/" in celery_app.connection_for_write().as_uri()
    # Warm the producer pool, so the outage breaks a connection the app already holds.
    with celery_app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)
    newsletter = NewsletterFactory()
    broker.stop()

    started = time.monotonic()
    response = Client().post(
        "/api/v1/subscriptions",
        data=with_form_token({"email": "ann@example.org", "newsletters": [newsletter.slug]}),
        content_type="application/json",
    )
    elapsed = time.monotonic() - started

    assert response.status_code == 202
    assert response.json() == {"status": "pending", "message": SUCCESS_MESSAGE}
    assert elapsed < 5, f"the sign-up took {elapsed:.1f}s with the broker down"
    outbound = OutboundEmail.objects.get()
    assert (outbound.status, outbound.attempts) == (OutboundEmail.Status.QUEUED, 0)
    assert outbound.kind == OutboundEmail.Kind.CONFIRMATION
    assert mail.outbox == []

    # The sign-up knows its enqueue failed: the row is due at once, not once it looks lost.
    assert outbound.next_attempt_at is not None

    broker.start()
    with running_worker():
        # The worker sweeps the outbox as it connects: no beat, no waiting for the row
        # to look lost.
        wait_for(lambda: row(outbound).status == OutboundEmail.Status.SENT, what="the send")
        assert len(mail.outbox) == 1
        assert mail.outbox[0].to == ["ann@example.org"]
        assert mail.outbox[0].metadata["outbound_email_id"] == str(outbound.pk)

        assert tasks.requeue_stale_work() == 0
        time.sleep(0.5)

    assert len(mail.outbox) == 1
    assert row(outbound).attempts == 1
