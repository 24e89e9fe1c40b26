"""Each web process remembers the newsletters for a second (lookups.py). A
newsletter another process deleted or archived within that second gets a sign-up the
answer an unknown one gets, a 400 naming it, not a 500, and nothing stored; the process
forgets its copy at once. Outside the suite's per-test transaction, so that the
database's foreign-key check runs at commit as in production."""

import pytest
from django.db import connection
from django.urls import reverse

from subscriptions.models import ConsentRecord, OutboundEmail, Subscriber, Subscription
from subscriptions.signup import lookups
from tests.factories import NewsletterFactory, SubscriberFactory, human_form_token, with_form_token

pytestmark = pytest.mark.django_db(transaction=True)


ELSEWHERE = {
    "deleted": "DELETE FROM subscriptions_newsletter WHERE id = %s",
    "archived": "UPDATE subscriptions_newsletter SET archived_at = CURRENT_TIMESTAMP WHERE id = %s",
}


@pytest.fixture(params=sorted(ELSEWHERE))
def deleted_elsewhere(request, settings, monkeypatch):
    """A public newsletter this process still remembers, deleted or archived as another
    process would do it (no signal reaches this one)."""
    monkeypatch.setattr(lookups, "CACHE_SECONDS", 60)
    newsletter = NewsletterFactory(slug="daily-digest", is_public=True, double_opt_in=True)
    lookups.forget_all()
    assert "daily-digest" in lookups.public_newsletters_by_slug()
    with connection.cursor() as cursor:
        cursor.execute(ELSEWHERE[request.param], [newsletter.pk])
    yield newsletter
    lookups.forget_all()


def stored() -> list[int]:
    return [
        model.objects.count() for model in (Subscriber, Subscription, ConsentRecord, OutboundEmail)
    ]


@pytest.mark.parametrize("known", [False, True], ids=["new address", "known address"])
def test_the_api_answers_400_naming_the_newsletter_and_stores_nothing(
    client, deleted_elsewhere, known: bool
) -> None:
    # A new address takes the one-statement path on PostgreSQL, a known one the other.
    if known:
        SubscriberFactory(email="ann@example.org")
    before = stored()

    response = client.post(
        "/api/v1/subscriptions",
        with_form_token({"email": "ann@example.org", "newsletters": ["daily-digest"]}),
        content_type="application/json",
    )

    assert response.status_code == 400
    assert response.json() == {"errors": {"newsletters": ["Unknown newsletter: daily-digest"]}}
    assert stored() == before == [int(known), 0, 0, 0]
    assert "daily-digest" not in lookups.public_newsletters_by_slug()


def test_the_form_answers_400_naming_the_newsletter_and_stores_nothing(
    client, deleted_elsewhere
) -> None:
    response = client.post(
        reverse("subscriptions:signup"),
        {
            "email": "ann@example.org",
            "newsletters": "daily-digest",
            "form_token": human_form_token(),
        },
    )

    assert response.status_code == 400
    assert "Unknown newsletter: daily-digest" in response.content.decode()
    assert stored() == [0, 0, 0, 0]
