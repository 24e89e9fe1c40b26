"""Through a real Celery worker on the real Redis, against the real database: the whole
journey once (sign up, the worker sends the confirmation, confirm, the worker sends the
welcome email, unsubscribe in one click), a subscriber import, and an editor's action
on many subscriptions."""

import re
import time

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.core import mail
from django.test import Client
from django.urls import reverse

from newsroom.celery import app as celery_app
from subscriptions import tasks
from subscriptions.admin import bulk_actions
from subscriptions.lists.imports import jobs
from subscriptions.models import OutboundEmail, SubscriberImport, Subscription
from tests.db_sessions import end_worker_sessions
from tests.factories import NewsletterFactory, SubscriptionFactory, with_form_token

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.celery_worker,
    pytest.mark.django_db(transaction=True),
]


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the worker")
        time.sleep(0.05)


@pytest.fixture
def worker():
    celery_app.conf.task_always_eager = False
    # A queue of the test's own, so no stray worker on the machine takes our tasks.
    celery_app.conf.task_default_queue = "tests"
    celery_app.conf.broker_url = celery_app.conf.broker_url
    celery_app.control.purge()
    with start_worker(
        celery_app, pool="solo", perform_ping_check=False, queues=["tests"], shutdown_timeout=10
    ) as running:
        yield running
    celery_app.conf.task_default_queue = "celery"
    end_worker_sessions()


def test_the_journey_through_a_real_worker(worker):
    assert not celery_app.conf.task_always_eager
    assert celery_app.conf.broker_url.startswith("redis://")
    newsletter = NewsletterFactory(name="Explaining Ukraine")
    client = Client()

    response = client.post(
        "/api/v1/subscriptions",
        data=with_form_token({"email": "ann@example.org", "newsletters": [newsletter.slug]}),
        content_type="application/json",
    )
    assert response.status_code == 202
    wait_for(lambda: len(mail.outbox) == 1)
    confirm_path = re.search(r"https://news\.example\.org(/confirm/\S+/)", mail.outbox[0].body)

    client.post(confirm_path.group(1))
    wait_for(lambda: len(mail.outbox) == 2)
    welcome = mail.outbox[1]
    assert welcome.metadata["message_type"] == "welcome"
    unsubscribe_url = welcome.extra_headers["List-Unsubscribe"].strip("<>")

    one_click = Client(enforce_csrf_checks=True).post(
        unsubscribe_url.removeprefix("https://news.example.org"),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert one_click.status_code == 200
    assert Subscription.objects.get().status == Subscription.Status.UNSUBSCRIBED
    assert list(OutboundEmail.objects.values_list("status", flat=True)) == ["sent", "sent"]


def test_an_import_runs_to_the_end_on_a_real_worker(worker, tmp_path, settings):
    settings.IMPORT_DIR = tmp_path
    newsletter = NewsletterFactory()
    upload = tmp_path / "upload-readers.csv"
    upload.write_text(
        "email,name\nann@example.org,Ann\nbob@example.org,Bob\nnot an address,\n"
        "ANN@example.org,Ann again\n"
    )

    ran = []

    def record(task, args, retval, **kwargs) -> None:
        request = task.request
        ran.append((request.is_eager, request.delivery_info["routing_key"], args, retval))

    task_postrun.connect(record, sender=tasks.run_subscriber_import, weak=False)
    # Enqueued when the (autocommit) transaction commits: at once.
    job = jobs.start_import(
        newsletter=newsletter,
        target_status=Subscription.Status.PENDING,
        consent_basis="",
        file_path=upload,
        original_name="readers.csv",
        actor="admin:editor",
    )
    try:
        wait_for(lambda: bool(ran))
    finally:
        task_postrun.disconnect(record, sender=tasks.run_subscriber_import)

    # Taken from the test's own queue by the worker, not run in this process.
    assert ran == [(False, "tests", [job.pk], SubscriberImport.State.DONE)]

    job.refresh_from_db()
    assert (job.rows_read, job.added, job.invalid, job.duplicates) == (4, 2, 1, 1)
    assert job.confirmations_queued == 2
    assert job.started_at is not None and job.error == ""
    assert set(
        Subscription.objects.filter(newsletter=newsletter).values_list(
            "subscriber__email", "status"
        )
    ) == {("ann@example.org", "pending"), ("bob@example.org", "pending")}
    assert not upload.exists()  # imported, so the uploaded copy is gone


def test_an_editors_unsubscribe_of_many_runs_in_batches_on_a_real_worker(
    worker, settings, monkeypatch, admin_user
):
    monkeypatch.setattr(bulk_actions, "INLINE_LIMIT", 2)
    monkeypatch.setattr(bulk_actions, "BATCH", 2)
    subscriptions = SubscriptionFactory.create_batch(5, status=Subscription.Status.ACTIVE)
    ran = []

    def record(task, args, retval, **kwargs) -> None:
        ran.append((task.request.is_eager, task.request.delivery_info["routing_key"], retval))

    task_postrun.connect(record, sender=tasks.unsubscribe_subscriptions, weak=False)
    client = Client()
    client.force_login(admin_user)
    try:
        response = client.post(
            reverse("admin:subscriptions_subscriber_changelist"),
            {
                "action": "unsubscribe_from_all",
                "select_across": "1",
                "index": "0",
                "_selected_action": ["0"],
            },
        )
        wait_for(lambda: len(ran) == 3)
    finally:
        task_postrun.disconnect(record, sender=tasks.unsubscribe_subscriptions)

    assert response.status_code == 302
    # Taken from the test's own queue by the worker, not run in this process.
    assert sorted(ran) == [(False, "tests", 1), (False, "tests", 2), (False, "tests", 2)]
    assert set(
        Subscription.objects.filter(pk__in=[s.pk for s in subscriptions]).values_list(
            "status", flat=True
        )
    ) == {Subscription.Status.UNSUBSCRIBED}
