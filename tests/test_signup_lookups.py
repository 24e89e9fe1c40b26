"""What every sign-up looks up (the public newsletters, the domain rules) is read once
a second per web process, not twice a request; an editor's change is seen at once by
the process that saved it and within that second by every other."""

import json
import re
from types import SimpleNamespace

import pytest
from django.test import Client

from subscriptions.models import EmailDomainRule, Newsletter, Subscriber
from subscriptions.signup import lookups
from tests.factories import NewsletterFactory, with_form_token

pytestmark = pytest.mark.django_db
API = "/api/v1/subscriptions"


@pytest.fixture
def remembered(settings, monkeypatch) -> SimpleNamespace:
    """The lookups kept for a minute, on a clock the test moves."""
    monkeypatch.setattr(lookups, "CACHE_SECONDS", 60)
    clock = SimpleNamespace(now=1_000.0)
    monkeypatch.setattr(lookups, "time", SimpleNamespace(monotonic=lambda: clock.now))
    lookups.forget_all()
    yield clock
    lookups.forget_all()


def sign_up(email: str, slug: str):
    return Client().post(
        API,
        json.dumps(with_form_token({"email": email, "newsletters": [slug]})),
        content_type="application/json",
    )


def test_a_second_sign_up_reads_neither_newsletters_nor_rules(
    remembered, django_assert_max_num_queries
) -> None:
    newsletter = NewsletterFactory()
    assert sign_up("first@example.org", newsletter.slug).status_code == 202

    # The write alone (one statement on PostgreSQL; the general path's queries on SQLite).
    with django_assert_max_num_queries(1_000) as captured:
        assert sign_up("second@example.org", newsletter.slug).status_code == 202

    queries = [query["sql"] for query in captured.captured_queries]
    # The write itself still asks whether the newsletters it names are open (neither
    # deleted nor archived since they were looked up: archiving.hold_open), by their
    # ids; nothing reads the list of public newsletters again.
    reads = [q for q in queries if "subscriptions_newsletter" in q.replace("newsletter_id", "")]
    assert all(re.search(r'archived_at"? IS NULL', q) for q in reads)
    assert not any("is_public" in q for q in queries)
    assert "subscriptions_emaildomainrule" not in " ".join(queries)


def test_an_editors_change_in_this_process_is_seen_at_once(remembered) -> None:
    newsletter = NewsletterFactory()
    assert sign_up("first@example.org", newsletter.slug).status_code == 202

    newsletter.is_public = False
    newsletter.save()
    EmailDomainRule.objects.create(domain="blocked.example", kind=EmailDomainRule.Kind.BLOCK)

    assert sign_up("second@example.org", newsletter.slug).status_code == 400
    other = NewsletterFactory()
    refused = sign_up("ann@blocked.example", other.slug)
    assert refused.status_code == 400
    assert "email" in refused.json()["errors"]


def test_a_change_made_by_another_process_is_seen_once_the_copy_is_old(remembered) -> None:
    newsletter = NewsletterFactory()
    assert sign_up("first@example.org", newsletter.slug).status_code == 202
    # As another process saves it: no signal reaches this one.
    Newsletter.objects.filter(pk=newsletter.pk).update(is_public=False)

    remembered.now += 59
    assert sign_up("second@example.org", newsletter.slug).status_code == 202
    remembered.now += 2
    assert sign_up("third@example.org", newsletter.slug).status_code == 400

    assert set(Subscriber.objects.values_list("email", flat=True)) == {
        "first@example.org",
        "second@example.org",
    }
