"""Fifty simultaneous sign-ups of one address, on the real PostgreSQL, leave one
subscriber, one subscription per newsletter and at most one confirmation email."""

import threading

import pytest
from django.db import connection, connections

from subscriptions.models import (
    OutboundEmail,
    Subscriber,
    Subscription,
)
from subscriptions.signup import services
from tests.factories import NewsletterFactory, SubscriberFactory, SubscriptionFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 50


@pytest.mark.parametrize("known_address", [False, True], ids=["new-address", "known-address"])
def test_fifty_concurrent_signups_of_one_address_create_one_of_everything(known_address):
    newsletters = [NewsletterFactory(), NewsletterFactory()]
    if known_address:
        # The subscriber row exists already, so nothing but the row lock serialises the
        # requests: no unique-index wait on the insert holds them back.
        ann = SubscriberFactory(email="Ann.Reader@example.org")
        SubscriptionFactory(
            subscriber=ann, newsletter=newsletters[0], status=Subscription.Status.UNSUBSCRIBED
        )
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def sign_up(i: int) -> None:
        try:
            start.wait(timeout=30)
            # Different spellings of the same address must still meet on one row.
            email = "Ann.Reader@EXAMPLE.org" if i % 2 else "Ann.Reader@example.org"
            services.subscribe(
                email=email,
                newsletters=newsletters,
                source=Subscription.Source.API,
                consent=services.ConsentContext(ip_address=f"198.51.100.{i}"),
            )
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert connection.vendor == "postgresql"
    assert Subscriber.objects.count() == 1
    assert Subscription.objects.count() == 2
    assert OutboundEmail.objects.filter(kind=OutboundEmail.Kind.CONFIRMATION).count() == 1
    assert Subscriber.objects.get().email == "Ann.Reader@example.org"
