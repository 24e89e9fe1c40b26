"""An issue through a real anymail backend against a local stand-in for the provider's
API: refusals (429, 5xx, no connection) pause the issue and it resumes by itself,
nothing lost or doubled; a refused recipient fails alone."""

import pytest
from django.core import mail

from subscriptions.issues import delivery, selectors, services, transport
from subscriptions.models import Issue, IssueDelivery
from tests.esp_stub import DROP_CONNECTION, PostmarkStub, Reply
from tests.factories import NewsletterFactory
from tests.issue_support import draft, readers, work_until_done

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def postmark(settings, monkeypatch):
    stubs: list[PostmarkStub] = []

    def start(*replies: Reply) -> PostmarkStub:
        stub = PostmarkStub(list(replies)).start()
        stubs.append(stub)
        settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
        settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": "test-token", "POSTMARK_API_URL": stub.api_url}
        return stub

    settings.OUTBOX_RETRY_BASE_SECONDS = 0.2
    settings.OUTBOX_RETRY_MAX_SECONDS = 0.5
    # The test drives the worker's loop itself, waits included.
    monkeypatch.setattr(services, "hand_to_workers", lambda issue_id: None)
    yield start
    for stub in stubs:
        stub.stop()


def delivered_to(stub: PostmarkStub) -> list[str]:
    return [e.body["To"] for e in stub.exchanges if e.status == 200]


def test_429_then_500_then_200_pauses_resumes_and_sends_every_reader_once(postmark):
    stub = postmark(
        Reply(429, {"ErrorCode": 429, "Message": "Rate limit exceeded"}),
        Reply(500, {"ErrorCode": 500, "Message": "Internal error"}),
    )
    newsletter = NewsletterFactory()
    people = readers(newsletter, 40)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")

    waits = work_until_done(issue.pk)

    assert len(waits) == 2  # paused twice, resumed by itself each time
    assert sorted(delivered_to(stub)) == sorted(p.subscriber.email for p in people)
    progress = selectors.progress(issue.pk)
    assert (progress.sent, progress.failed, progress.sent_more_than_once) == (40, 0, 0)
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SENT
    assert issue.provider_refusals == 0
    assert "500" in issue.last_error


def test_a_dropped_connection_mid_batch_gives_back_only_the_unsent(postmark, monkeypatch):
    monkeypatch.setattr(transport, "PER_MESSAGE_BATCH", 10)
    stub = postmark(*([Reply(200)] * 4), DROP_CONNECTION)
    newsletter = NewsletterFactory()
    readers(newsletter, 15)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")

    work_until_done(issue.pk)

    assert len(delivered_to(stub)) == 15
    assert len(set(delivered_to(stub))) == 15
    assert selectors.progress(issue.pk).sent_more_than_once == 0


def test_a_recipient_the_provider_refuses_fails_alone(postmark):
    # Postmark's answer for an address it will not send to (anymail reads the address
    # out of the message).
    refused = {
        "ErrorCode": 406,
        "Message": "You tried to send to a recipient that has been marked as inactive.\n"
        "Found inactive addresses: issue-reader1@example.org.\n"
        "Inactive recipients are ones that have generated a hard bounce or a spam complaint.",
    }
    stub = postmark(Reply(200), Reply(422, refused))
    newsletter = NewsletterFactory()
    readers(newsletter, 5)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")

    work_until_done(issue.pk)

    progress = selectors.progress(issue.pk)
    assert (progress.sent, progress.failed) == (4, 1)
    assert IssueDelivery.objects.get(issue=issue, status="failed").subscriber.email == (
        "issue-reader1@example.org"
    )
    assert len(stub.exchanges) == 5
    assert mail.outbox == []


def test_a_provider_that_keeps_refusing_pauses_the_issue_for_an_editor(postmark, monkeypatch):
    monkeypatch.setattr(delivery, "REFUSALS_BEFORE_PAUSE", 3)
    refusal = Reply(401, {"ErrorCode": 10, "Message": "Bad or missing API token"})
    stub = postmark(refusal, refusal, refusal)
    newsletter = NewsletterFactory()
    readers(newsletter, 4)
    issue = draft(newsletter)
    services.send_now(issue_id=issue.pk, actor="t")

    waits = work_until_done(issue.pk)

    issue.refresh_from_db()
    assert issue.status == Issue.Status.PAUSED
    assert "401" in issue.last_error or "API token" in issue.last_error
    assert len(waits) == 2
    assert selectors.progress(issue.pk).queued == 4  # nothing lost, nothing failed

    services.resume(issue_id=issue.pk, actor="admin:ann")
    work_until_done(issue.pk)

    assert len(delivered_to(stub)) == 4
    assert Issue.objects.get(pk=issue.pk).status == Issue.Status.SENT
