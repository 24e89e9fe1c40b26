"""The issue pages in a real browser (Chromium): the public archive and an issue's page
on a 360 px phone with no serious accessibility finding, and an editor writing,
previewing and sending an issue in the admin, the progress page following it live."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from subscriptions.issues import services
from subscriptions.models import Issue, IssueDelivery
from tests.browser_support import screenshot, serious_accessibility_violations
from tests.factories import NewsletterFactory
from tests.issue_support import draft, readers

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BODY = (
    "Good morning.\n\n## The front line\n\nA paragraph with [a link](https://example.org/a).\n\n"
    "> A quotation.\n\n| Day | Events |\n|---|---|\n| Monday | Three |\n"
)


@pytest.fixture
def sent_issue():
    newsletter = NewsletterFactory(name="Explaining Ukraine", slug="explaining-ukraine")
    readers(newsletter, 3)
    issue = draft(newsletter, subject="Thursday's letter", body=BODY)
    services.send_now(issue_id=issue.pk, actor="t")
    return issue


def test_the_archive_and_an_issue_read_well_on_a_phone(browser, site, sent_issue):
    context = browser.new_context(
        bypass_csp=True, viewport={"width": 360, "height": 740}, locale="en-GB"
    )
    page = context.new_page()
    try:
        found = {}
        page.goto(site + reverse("subscriptions:issue_archive", args=["explaining-ukraine"]))
        expect(page.get_by_role("link", name="Thursday's letter")).to_be_visible()
        found["archive"] = serious_accessibility_violations(page)
        screenshot(page, "issue-archive-360")
        page.get_by_role("link", name="Thursday's letter").click()
        expect(page.get_by_role("heading", name="The front line")).to_be_visible()
        found["issue"] = serious_accessibility_violations(page)
        # Nothing wider than the phone: no sideways scrolling to read it.
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        screenshot(page, "issue-page-360")
    finally:
        context.close()

    assert found == {"archive": [], "issue": []}


def test_an_editor_writes_previews_and_sends_an_issue_and_watches_it_go(page, site, monkeypatch):
    newsletter = NewsletterFactory(name="Explaining Ukraine", slug="explaining-ukraine")
    readers(newsletter, 25)
    editor = User.objects.create_user(
        "olena", "olena@news.example.org", is_staff=True, is_superuser=True
    )
    editor.user_permissions.add(Permission.objects.get(codename="send_issue"))
    client = Client()
    client.force_login(editor)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": site,
            }
        ]
    )
    # The workers are held back until the test has seen the progress page waiting.
    held: list[int] = []
    monkeypatch.setattr(services, "hand_to_workers", held.append)

    page.goto(site + reverse("admin:subscriptions_issue_add"))
    page.locator("#id_newsletter").select_option(label="Explaining Ukraine")
    page.locator("#id_subject").fill("Thursday")
    page.locator("#id_body").fill("Hello, **readers**.")
    page.get_by_role("button", name="Save and continue editing").click()
    issue = Issue.objects.get()

    page.get_by_role("link", name="Preview").click()
    frame = page.frame_locator("iframe[title='The issue at phone width']")
    expect(frame.get_by_text("readers")).to_be_visible()
    expect(page.get_by_text("Hello, **readers**.")).to_be_visible()  # the text part
    screenshot(page, "issue-preview")

    page.goto(site + reverse("admin:subscriptions_issue_change", args=[issue.pk]))
    page.get_by_role("link", name="Send or schedule…").click()
    expect(
        page.get_by_role("heading", name="Send to 25 readers of Explaining Ukraine?")
    ).to_be_visible()
    page.get_by_label("Send now").check()
    page.get_by_role("button", name="Send to 25 readers").click()

    expect(page.locator('[data-value="left"]')).to_have_text("25")
    # The provider asks us to wait: the page says so as it polls, without a reload.
    Issue.objects.filter(pk=issue.pk).update(
        paused_until=timezone.now() + timedelta(minutes=1),
        last_error="The provider said: AnymailRequestsAPIError: 429 Too Many Requests",
    )
    expect(page.locator("[data-note]")).to_have_text(
        "The provider said: AnymailRequestsAPIError: 429 Too Many Requests"
    )
    Issue.objects.filter(pk=issue.pk).update(paused_until=None)
    from subscriptions.issues import delivery

    delivery.send_batches(held[0])  # a worker takes it
    expect(page.locator('[data-value="sent"]')).to_have_text("25")  # after the reload
    expect(page.get_by_role("heading", name="Sent")).to_be_visible()
    assert IssueDelivery.objects.filter(issue=issue, status="sent").count() == 25
    assert len(mail.outbox) == 25
    screenshot(page, "issue-sent")
