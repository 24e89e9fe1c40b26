"""On the real PostgreSQL an archive and a sign-up to the same newsletter take turns: a
sign-up already under way when an editor archives finishes first (it came before the
archive), and one that starts while the archive commits waits for it and is refused
like an unknown newsletter, with nothing stored. Both sign-up paths: a new address (one
statement) and a known one."""

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection, connections, transaction

from subscriptions.exceptions import UnknownNewsletter
from subscriptions.models import Newsletter, Subscriber, Subscription
from subscriptions.signup import archiving, services
from tests.factories import NewsletterFactory, SubscriberFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

KNOWN = pytest.mark.parametrize("known", [False, True], ids=["new address", "known address"])


def another_session_waits_on_a_lock(timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


def sign_up(newsletter: Newsletter) -> None:
    services.subscribe(
        email="ann@example.org",
        newsletters=[newsletter],
        source=Subscription.Source.API,
        consent=services.ConsentContext(),
    )


def in_thread(work: Callable[[], None], outcome: dict) -> threading.Thread:
    def run() -> None:
        try:
            work()
            outcome["done"] = True
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def holding(work: Callable[[], None], started: threading.Event, release: threading.Event):
    """`work` in a transaction that stays open until `release`."""

    def run() -> None:
        with transaction.atomic():
            work()
            started.set()
            assert release.wait(timeout=10)

    return run


@KNOWN
def test_a_sign_up_that_meets_an_archive_being_committed_waits_and_is_refused(known) -> None:
    # The process's remembered copy: not archived.
    newsletter = NewsletterFactory(slug="daily-digest")
    if known:
        SubscriberFactory(email="ann@example.org")
    archived, release = threading.Event(), threading.Event()
    archiver, signer = {}, {}

    archive_thread = in_thread(
        holding(
            lambda: archiving.archive_newsletters(newsletter_ids=[newsletter.pk]), archived, release
        ),
        archiver,
    )
    assert archived.wait(timeout=10)
    sign_up_thread = in_thread(lambda: sign_up(newsletter), signer)
    waited = another_session_waits_on_a_lock()
    release.set()
    archive_thread.join(timeout=10)
    sign_up_thread.join(timeout=10)

    assert archiver == {"done": True}
    assert waited
    assert isinstance(signer.get("error"), UnknownNewsletter)
    assert signer["error"].slugs == ["daily-digest"]
    assert not Subscription.objects.exists()
    assert Subscriber.objects.count() == int(known)


@KNOWN
def test_archiving_waits_for_a_sign_up_under_way_which_keeps_its_subscription(known) -> None:
    newsletter = NewsletterFactory(slug="daily-digest")
    if known:
        SubscriberFactory(email="ann@example.org")
    signed, release = threading.Event(), threading.Event()
    signer, archiver = {}, {}

    sign_up_thread = in_thread(holding(lambda: sign_up(newsletter), signed, release), signer)
    assert signed.wait(timeout=10)
    archive_thread = in_thread(
        lambda: archiving.archive_newsletters(newsletter_ids=[newsletter.pk]), archiver
    )
    waited = another_session_waits_on_a_lock()
    release.set()
    sign_up_thread.join(timeout=10)
    archive_thread.join(timeout=10)

    assert signer == archiver == {"done": True}
    assert waited
    assert Subscription.objects.filter(newsletter=newsletter).count() == 1
    assert Newsletter.objects.get(pk=newsletter.pk).archived_at is not None
