"""Editors write, preview, test and send issues in the admin. Sending needs a
permission of its own: an editor without it drafts and tests, nothing more."""

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from django.test import Client
from django.urls import reverse

from subscriptions.admin.roles import EDITORS_GROUP
from subscriptions.issues import services
from subscriptions.models import Issue
from tests.factories import NewsletterFactory
from tests.issue_support import draft, readers

pytestmark = pytest.mark.django_db(transaction=True)


def logged_in(*, can_send: bool) -> Client:
    editor = User.objects.create_user("olena", "olena@news.example.org", is_staff=True)
    editor.groups.add(Group.objects.get(name=EDITORS_GROUP))
    if can_send:
        editor.user_permissions.add(Permission.objects.get(codename="send_issue"))
    client = Client()
    client.force_login(editor)
    return client


@pytest.fixture
def newsletter():
    newsletter = NewsletterFactory(name="Explaining Ukraine", slug="explaining-ukraine")
    readers(newsletter, 12)
    return newsletter


def url(name: str, issue: Issue) -> str:
    return reverse(f"admin:subscriptions_issue_{name}", args=[issue.pk])


def test_an_editor_writes_a_draft_in_the_admin(newsletter):
    client = logged_in(can_send=False)

    response = client.post(
        reverse("admin:subscriptions_issue_add"),
        {"newsletter": newsletter.pk, "subject": "Thursday", "body": "Hello **all**."},
    )

    assert response.status_code == 302
    issue = Issue.objects.get()
    assert (issue.status, issue.created_by) == ("draft", "admin:olena")


def test_a_draft_without_subject_or_body_shows_the_errors_and_stores_nothing(newsletter):
    client = logged_in(can_send=False)

    response = client.post(
        reverse("admin:subscriptions_issue_add"),
        {"newsletter": newsletter.pk, "subject": " ", "body": ""},
    )

    assert response.status_code == 200
    assert not Issue.objects.exists()
    assert b"This field is required." in response.content or b"An issue needs" in response.content


def test_the_preview_shows_both_widths_and_the_text_part(newsletter):
    issue = draft(newsletter, body="Hello **all**.\n\n<script>alert(1)</script>")
    client = logged_in(can_send=False)

    page = client.get(url("preview", issue))
    frame = client.get(url("html", issue))

    assert page.status_code == 200
    assert page.content.count(b"<iframe") == 2
    assert b"Phone (360 px)" in page.content
    assert b"Hello **all**." in page.content  # the text part
    assert frame.status_code == 200
    assert b"<strong>all</strong>" in frame.content and b"<script" not in frame.content
    assert "frame-ancestors 'self'" in frame["Content-Security-Policy"]
    assert "script-src" not in frame["Content-Security-Policy"]  # default-src 'none'
    assert frame["X-Frame-Options"] == "SAMEORIGIN"


def test_an_editor_sends_a_test_to_their_own_address_through_the_provider(newsletter):
    issue = draft(newsletter, subject="Thursday")
    client = logged_in(can_send=False)

    response = client.post(url("test", issue))

    assert response.status_code == 302
    assert [m.to for m in mail.outbox] == [["olena@news.example.org"]]
    assert mail.outbox[0].subject == "[Test] Thursday"
    issue.refresh_from_db()
    assert issue.status == Issue.Status.DRAFT


def test_an_editor_without_the_permission_cannot_send(newsletter):
    issue = draft(newsletter)
    client = logged_in(can_send=False)

    page = client.get(url("change", issue))
    refused = client.post(url("send", issue), {"when": "now"})

    assert b"Send or schedule" not in page.content
    assert refused.status_code == 403
    assert client.post(url("control", issue), {"action": "cancel"}).status_code == 403
    assert mail.outbox == []


def test_the_send_step_names_the_audience_then_sends(newsletter):
    issue = draft(newsletter)
    client = logged_in(can_send=True)

    step = client.get(url("send", issue))
    sent = client.post(url("send", issue), {"when": "now"})

    assert b"Send to 12 readers of Explaining Ukraine?" in step.content
    assert sent.status_code == 302
    assert len(mail.outbox) == 12
    progress = client.get(url("progress", issue)).json()
    assert (progress["status"], progress["sent"], progress["percent"]) == ("sent", 12, 100)


def test_scheduling_from_the_admin_takes_the_newsroom_time_and_refuses_the_past(
    newsletter, settings
):
    settings.TIME_ZONE = "Europe/Kyiv"
    issue = draft(newsletter)
    client = logged_in(can_send=True)

    past = client.post(url("send", issue), {"when": "later", "at": "2020-01-01T07:00"})
    later = client.post(url("send", issue), {"when": "later", "at": "2099-12-10T07:00"})

    assert past.status_code == 200 and b"That time has passed" in past.content
    assert later.status_code == 302
    issue.refresh_from_db()
    assert issue.status == Issue.Status.SCHEDULED
    assert issue.scheduled_at.isoformat().startswith("2099-12-10T05:00")  # Kyiv, UTC+2
    assert mail.outbox == []


def test_an_issue_for_a_newsletter_without_readers_is_refused_with_a_message():
    issue = draft(NewsletterFactory(name="Brand new"))
    client = logged_in(can_send=True)

    response = client.post(url("send", issue), {"when": "now"})

    assert response.status_code == 200
    assert b"Brand new has no active readers yet." in response.content
    issue.refresh_from_db()
    assert issue.status == Issue.Status.DRAFT


def test_a_sent_issue_can_no_longer_be_edited(newsletter):
    issue = draft(newsletter, subject="As sent")
    client = logged_in(can_send=True)
    client.post(url("send", issue), {"when": "now"})

    client.post(
        url("change", issue), {"newsletter": newsletter.pk, "subject": "Rewritten", "body": "x"}
    )

    issue.refresh_from_db()
    assert issue.subject == "As sent"


def test_a_save_that_lands_after_sending_started_changes_nothing_and_says_so(newsletter):
    issue = draft(newsletter, subject="As written")
    client = logged_in(can_send=True)
    client.get(url("change", issue))  # the form, opened while it was a draft
    services.send_now(issue_id=issue.pk, actor="another editor")
    Issue.objects.filter(pk=issue.pk).update(status=Issue.Status.SENT)  # and it went out

    response = client.post(
        url("change", issue),
        {"newsletter": newsletter.pk, "subject": "Rewritten", "body": "x"},
        follow=True,
    )

    issue.refresh_from_db()
    assert (issue.subject, issue.status) == ("As written", "sent")
    shown = [str(m) for m in response.context["messages"]]
    assert any("what went out stays as it went out" in m for m in shown), shown
    assert not any("changed successfully" in m for m in shown), shown


def test_a_draft_is_written_and_edited_through_the_service(newsletter, monkeypatch):
    calls: list[str] = []
    for name in ("create_issue", "edit_issue"):
        original = getattr(services, name)
        monkeypatch.setattr(
            services,
            name,
            lambda *a, _name=name, _original=original, **k: (
                calls.append(_name) or _original(*a, **k)
            ),
        )
    client = logged_in(can_send=False)
    client.post(
        reverse("admin:subscriptions_issue_add"),
        {
            "newsletter": newsletter.pk,
            "subject": "Thursday",
            "body": "Hello.",
            "subject_uk": "Четвер",
        },
    )
    issue = Issue.objects.get()
    client.post(
        url("change", issue),
        {
            "newsletter": newsletter.pk,
            "subject": "Friday",
            "body": "Hello.",
            "subject_uk": "Четвер",
        },
    )

    issue.refresh_from_db()
    assert calls == ["create_issue", "edit_issue"]
    assert (issue.subject, issue.subject_uk, issue.created_by) == (
        "Friday",
        "Четвер",
        "admin:olena",
    )
