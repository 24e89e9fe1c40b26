"""Readers and issues for the issue-sending tests, made in bulk."""

import threading
import time

from django.db import connection
from django.utils import timezone

from subscriptions.issues import delivery, services
from subscriptions.models import Issue, Newsletter, Subscriber, Subscription
from tests.factories import NewsletterFactory


def readers(
    newsletter: Newsletter, count: int, *, status: str = "active", prefix: str = "issue-reader"
) -> list[Subscription]:
    """`count` readers of `newsletter` with subscriptions in `status`."""
    now = timezone.now()
    people = Subscriber.objects.bulk_create(
        Subscriber(email=f"{prefix}{n}@example.org") for n in range(count)
    )
    return Subscription.objects.bulk_create(
        Subscription(
            subscriber=person,
            newsletter=newsletter,
            status=status,
            confirmed_at=now if status == "active" else None,
            pending_since=now,
        )
        for person in people
    )


def draft(newsletter: Newsletter | None = None, **fields: object) -> Issue:
    values: dict = {
        "subject": "Thursday: what the front line looks like",
        "body": "Hello, **readers**.\n\n[Read the story](https://news.example.org/story/)",
        **fields,
    }
    return services.create_issue(
        newsletter=newsletter
        or NewsletterFactory(name="Explaining Ukraine", slug="explaining-ukraine"),
        subject=values.pop("subject"),
        body=values.pop("body"),
        preheader=str(values.pop("preheader", "")),
        actor="test",
    )


def work_until_done(issue_id: int, *, limit: float = 30) -> list[float]:
    """What a worker's task does, again and again, waits included: returns the waits."""
    waits = []
    deadline = time.monotonic() + limit
    while Issue.objects.get(pk=issue_id).status == Issue.Status.SENDING:
        assert time.monotonic() < deadline, "the issue did not finish"
        outcome = delivery.send_batches(issue_id)
        if outcome.wait is not None:
            waits.append(outcome.wait)
            time.sleep(outcome.wait)
    return waits


def workers_at_once(issue_id: int, count: int = 2) -> list[Exception]:
    """`count` workers sending the issue at the same moment, each in a thread with its
    own database connection, as on separate machines; returns what they raised."""
    start = threading.Barrier(count)
    errors: list[Exception] = []

    def worker() -> None:
        try:
            start.wait()
            delivery.send_batches(issue_id)
        except Exception as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
