"""In a real browser: a reader quicker than the time trap (autofill, then Enter) is asked
to confirm, never told an email was sent when nothing was stored; and the optional human
check shows and passes inside the embed on another site's page."""

import time

import pytest
from playwright.sync_api import expect

from subscriptions.abuse import bot_traps
from subscriptions.models import Newsletter, Subscriber, Subscription
from subscriptions.web import embeds
from subscriptions.web.forms import CHALLENGE_FAILED_MESSAGE, CONFIRM_SIGNUP_MESSAGE
from subscriptions.web.views import SUCCESS_MESSAGE as LAZY_SUCCESS_MESSAGE
from tests.browser_support import screenshot_of
from tests.challenge_stub import ChallengeStub

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SUCCESS_MESSAGE = str(LAZY_SUCCESS_MESSAGE)
SECRET = "stand-in-secret"


@pytest.fixture(autouse=True)
def newsroom(db) -> None:
    from django.core.management import call_command

    call_command("load_demo_newsletters", verbosity=0)


class Clock:
    """The time trap's clock, held still: a page's load in the browser takes a moment
    of its own, which would make "at once" depend on the machine."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def time_trap(site, settings, monkeypatch) -> Clock:
    """The production trap (the browser fixtures turn it off to type at test speed)."""
    settings.SIGNUP_FORM_MIN_SECONDS = 2
    clock = Clock()
    monkeypatch.setattr(bot_traps, "_now", clock)
    return clock


def test_autofill_and_enter_at_once_asks_the_reader_to_confirm_inline(page, site, time_trap):
    page.goto(site + "/")
    box = page.locator("form.signup-form").first
    email = box.get_by_label("Email address")
    assert email.get_attribute("placeholder") == "Enter your email to subscribe"

    email.fill("ann@example.org")
    email.press("Enter")

    message = box.locator(".signup-message")
    expect(message).to_have_text(str(CONFIRM_SIGNUP_MESSAGE))
    assert SUCCESS_MESSAGE not in message.inner_text()
    assert not Subscriber.objects.exists()
    screenshot_of(page.locator("section.signup-box").first, "signup-asked-to-confirm")

    time_trap.now += 3  # the reader reads the message and presses again
    box.get_by_role("button", name="Subscribe").click()
    expect(message).to_have_text(SUCCESS_MESSAGE)
    assert Subscription.objects.get().subscriber.email == "ann@example.org"


def test_without_javascript_a_reader_too_quick_confirms_on_a_page_of_its_own(
    page_without_javascript, site, time_trap
):
    page = page_without_javascript
    page.goto(site + "/")
    page.get_by_label("Email address").first.fill("ann@example.org")
    page.get_by_role("button", name="Subscribe").first.click()

    page.get_by_role("heading", name="Confirm you want to subscribe").wait_for()
    assert page.get_by_label("Email address").input_value() == "ann@example.org"
    assert not Subscriber.objects.exists()
    time_trap.now += 3
    page.get_by_role("button", name="Confirm subscription").click()

    page.get_by_text(SUCCESS_MESSAGE).wait_for()
    assert Subscription.objects.get().subscriber.email == "ann@example.org"


@pytest.fixture
def challenge(site, settings):
    with ChallengeStub(secret=SECRET) as stub:
        settings.SIGNUP_CHALLENGE = "turnstile"
        settings.SIGNUP_CHALLENGE_SITE_KEY = "stand-in-site-key"
        settings.SIGNUP_CHALLENGE_SECRET_KEY = SECRET
        settings.SIGNUP_CHALLENGE_SCRIPT_URL = stub.origin + "/api.js"
        settings.SIGNUP_CHALLENGE_VERIFY_URL = stub.origin + "/siteverify"
        yield stub


def test_the_embed_on_another_site_shows_the_challenge_and_passes_it(
    page, site, another_site, challenge
):
    newsletter = Newsletter.objects.get(slug="explaining-ukraine")
    url = another_site.publish("article.html", embeds.signup_script_snippet([newsletter]))
    page.goto(url)
    form = page.locator(".newsroom-embed form.signup-form")
    message = form.locator(".signup-message")
    human = form.get_by_label("I am human")

    # The widget is there, inside the form, on the other site's page.
    expect(human).to_be_visible()
    form.get_by_label("Email address").fill("dan@example.org")
    form.get_by_role("button", name="Subscribe").click()
    expect(message).to_have_text(str(CHALLENGE_FAILED_MESSAGE))
    assert not Subscriber.objects.exists()

    human.check()
    form.get_by_role("button", name="Subscribe").click()
    expect(message).to_have_text(SUCCESS_MESSAGE)
    screenshot_of(form, "embed-with-challenge-on-another-site")
    assert Subscription.objects.get().subscriber.email == "dan@example.org"
    assert page.url == url
    assert [answer["response"] for answer in challenge.verified][-1] == "stand-in-pass"
