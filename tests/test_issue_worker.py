"""An issue sent by a real Celery worker (production's thread pool) through anymail's
Postmark backend pointed at a local stand-in, and the worker killed (SIGKILL) in the
middle: after a new worker takes over, every reader has the issue, at most the one
batch in flight went out twice, and the issue's report counts those copies."""

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from newsroom.celery import app as celery_app
from subscriptions.issues import delivery, selectors, services, transport
from subscriptions.models import Issue, IssueDelivery
from tests.esp_stub import PostmarkStub, Reply
from tests.factories import NewsletterFactory
from tests.issue_support import draft, readers
from tests.worker_process import WorkerProcess

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]

# A queue of this file's own, so no other worker takes our tasks.
QUEUE = "tests-issue-worker"
# More than two batches, so both of the issue's tasks have one to send at once.
READERS = 1200


def wait_for(condition: Callable[[], object], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def own_queue(settings) -> Iterator[None]:
    original = celery_app.conf.task_default_queue
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = QUEUE
    settings.ISSUE_QUEUE = QUEUE
    with celery_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(QUEUE)
    yield
    celery_app.conf.task_default_queue = original


@pytest.fixture
def start_worker(own_queue, tmp_path) -> Iterator[Callable[[str], WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(api_url: str) -> WorkerProcess:
        worker = WorkerProcess(
            arguments=[
                # As production runs it (docker-compose.yml): a thread pool, so the
                # issue's two tasks can land in one process at once.
                *("-P", "threads", "-c", "8", "-Q", QUEUE, "-l", "info"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat"),
                *("-n", f"issue-worker-{len(started)}-{os.getpid()}@%h"),
            ],
            environment={
                "REDIS_URL": celery_app.conf.broker_url,
                "ISSUE_QUEUE": QUEUE,
                "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
                "ANYMAIL": (
                    f'{{"POSTMARK_SERVER_TOKEN": "test-token", "POSTMARK_API_URL": "{api_url}"}}'
                ),
            },
            log_path=tmp_path / f"worker-{len(started)}.log",
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_a_worker_killed_mid_issue_leaves_no_reader_without_it_and_counts_the_repeats(
    start_worker,
):
    # Each answer takes a little while, so the kill lands inside a batch.
    with PostmarkStub([Reply(200, delay=0.003)] * (READERS * 2)) as stub:
        newsletter = NewsletterFactory()
        people = readers(newsletter, READERS)
        issue = draft(newsletter)
        first = start_worker(stub.api_url)

        services.send_now(issue_id=issue.pk, actor="test")
        try:
            wait_for(
                lambda: len(stub.exchanges) >= 150,
                timeout=60,
                what="the worker to be inside a batch",
            )
        except TimeoutError as failure:
            raise AssertionError(f"{failure}\n--- worker log ---\n{first.log()}") from failure
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
        in_flight = IssueDelivery.objects.filter(issue=issue, status="sending").count()
        assert 0 < in_flight <= transport.PER_MESSAGE_BATCH
        # As if the lease ran out with no worker moving the issue.
        lapse = timedelta(seconds=delivery.LEASE_SECONDS + 1)
        IssueDelivery.objects.filter(issue=issue, status="sending").update(
            claimed_at=F("claimed_at") - lapse
        )
        Issue.objects.filter(pk=issue.pk).update(progressed_at=timezone.now() - lapse)
        second = start_worker(stub.api_url)

        assert services.requeue_quiet_issues() == 1
        try:
            wait_for(
                lambda: Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT,
                timeout=90,
                what="the issue to finish",
            )
        except TimeoutError as failure:
            raise AssertionError(f"{failure}\n--- worker log ---\n{second.log()}") from failure
        time.sleep(0.5)  # a stray copy would have reached the stand-in by now
        accepted = Counter(e.body["To"] for e in stub.exchanges if e.status == 200)

    assert set(accepted) == {p.subscriber.email for p in people}  # no one skipped
    repeats = sum(count - 1 for count in accepted.values())
    progress = selectors.progress(issue.pk)
    assert progress.sent == READERS
    assert repeats <= progress.sent_more_than_once == in_flight <= transport.PER_MESSAGE_BATCH
