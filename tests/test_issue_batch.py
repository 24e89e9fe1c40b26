"""Where the provider has a batch API (Mailgun's and SendGrid's, through anymail, each
against a stand-in that speaks its format), one call carries up to 1,000 readers, each
with their own links, List-Unsubscribe and metadata; a refused call pauses the issue
and nothing is lost or doubled."""

import re
from collections import Counter
from urllib.parse import urlsplit

import pytest
from django.test import Client

from subscriptions.issues import selectors, services
from subscriptions.models import Issue, Subscriber
from subscriptions.tokens import unsubscribe_token
from tests.factories import NewsletterFactory
from tests.issue_support import draft, readers, work_until_done
from tests.mailgun_stub import MailgunStub
from tests.sendgrid_stub import SendGridStub

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailNotSupportedWarning"),
]


def _mailgun(stub: MailgunStub) -> dict[str, str]:
    return {
        "MAILGUN_API_KEY": "test-key",
        "MAILGUN_SENDER_DOMAIN": "mg.news.example.org",
        "MAILGUN_API_URL": stub.api_url,
    }


def _sendgrid(stub: MailgunStub) -> dict[str, str]:
    return {"SENDGRID_API_KEY": "test-key", "SENDGRID_API_URL": stub.api_url}


PROVIDERS = {
    "mailgun": (MailgunStub, "anymail.backends.mailgun.EmailBackend", _mailgun),
    "sendgrid": (SendGridStub, "anymail.backends.sendgrid.EmailBackend", _sendgrid),
}


# anymail warns, once per connection, that SendGrid is no longer among its officially
# supported providers (anymail issue 432); the backend is still in it, and works.
@pytest.fixture(params=sorted(PROVIDERS))
def provider(request, settings, monkeypatch):
    stubs: list[MailgunStub] = []
    stand_in, backend, options = PROVIDERS[request.param]

    def start(*replies: int) -> MailgunStub:
        stub = stand_in(replies=list(replies)).start()
        stubs.append(stub)
        settings.EMAIL_BACKEND = backend
        settings.ANYMAIL = options(stub)
        return stub

    settings.OUTBOX_RETRY_BASE_SECONDS = 0.2
    settings.OUTBOX_RETRY_MAX_SECONDS = 0.5
    monkeypatch.setattr(services, "hand_to_workers", lambda issue_id: None)
    yield start
    for stub in stubs:
        stub.stop()


def test_batches_of_a_thousand_reach_every_reader_once_with_their_own_links(provider):
    stub = provider()
    newsletter = NewsletterFactory(slug="explaining-ukraine")
    english = readers(newsletter, 1700)
    ukrainian = readers(newsletter, 600, prefix="uk-reader")
    Subscriber.objects.filter(email__startswith="uk-reader").update(language="uk")
    issue = draft(newsletter, subject="Thursday", body="Hello.")
    Issue.objects.filter(pk=issue.pk).update(subject_uk="Четвер", body_uk="Привіт.")
    services.send_now(issue_id=issue.pk, actor="t")

    work_until_done(issue.pk)

    everyone = {s.subscriber.email for s in english + ukrainian}
    assert stub.recipients == Counter(everyone)  # each once
    assert stub.problems == []
    assert max(len(call.to) for call in stub.calls) == 1000
    assert len(stub.calls) == 4  # 1,000 + 1,000 + 300 in claims of 1,000, split by language
    by_subject = Counter(call.fields["subject"] for call in stub.calls for _ in call.to)
    assert by_subject == {"Thursday": 1700, "Четвер": 600}
    call = stub.calls[0]
    assert 'href="%recipient.unsubscribe%"' in call.fields["html"]
    assert call.fields["h:List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert call.fields["v:issue_id"] == str(issue.pk)
    progress = selectors.progress(issue.pk)
    assert (progress.sent, progress.left, progress.sent_more_than_once) == (2300, 0, 0)
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT


def test_each_readers_variables_unsubscribe_that_reader_by_one_click(provider):
    stub = provider()
    newsletter = NewsletterFactory()
    first, second = readers(newsletter, 2)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")
    work_until_done(issue.pk)

    variables = stub.calls[0].variables[first.subscriber.email]
    url = re.match(r"<([^>]+)>", variables["h:List-Unsubscribe"]).group(1)
    assert url == variables["unsubscribe"]
    token = urlsplit(url).path.rstrip("/").split("/")[-1]
    assert unsubscribe_token.read_token(token) == first.pk
    assert variables["v:subscriber_id"] == str(first.subscriber_id)
    parts = urlsplit(url)
    Client().post(
        f"{parts.path}?{parts.query}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == ("unsubscribed", "active")
    assert selectors.report(issue.pk).unsubscribed == 1


def test_a_429_then_a_500_pause_the_issue_and_every_reader_gets_it_once(provider):
    stub = provider(429, 500)
    newsletter = NewsletterFactory()
    people = readers(newsletter, 1500)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")

    waits = work_until_done(issue.pk)

    assert len(waits) == 2
    assert stub.recipients == Counter(p.subscriber.email for p in people)
    assert selectors.progress(issue.pk).sent == 1500
