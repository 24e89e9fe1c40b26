"""A reader's journey in a real browser (headless Chromium), against a live server:
signing up with JavaScript on and off, the inline error, confirming from the email,
the welcome email, one-click unsubscribe, preferences, the live goal banner, the
embeds on another site, keyboard-only use, accessibility (axe-core) and a phone-sized
screen. Screenshots of the key states go to test-artifacts/."""

import re
from collections.abc import Iterator

import pytest
from django.core import mail
from playwright.sync_api import expect

from subscriptions.abuse import ratelimit
from subscriptions.membership import members, milestones
from subscriptions.models import MembershipGoal, Newsletter, Subscriber, Subscription
from subscriptions.tokens import confirmation_token, preferences_token, unsubscribe_token
from subscriptions.web import embeds
from subscriptions.web.forms import CHOOSE_NEWSLETTER_MESSAGE
from subscriptions.web.views import SUCCESS_MESSAGE as LAZY_SUCCESS_MESSAGE
from tests.browser_support import (
    announced_as,
    screenshot,
    screenshot_of,
    serious_accessibility_violations,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
INVALID = "Please, enter correct email address"
# The English text (the browser asks for English: Playwright's default locale, en-US).
SUCCESS_MESSAGE = str(LAZY_SUCCESS_MESSAGE)


@pytest.fixture(autouse=True)
def newsroom(db) -> None:
    from django.core.management import call_command

    call_command("load_demo_newsletters", verbosity=0)


def link_in(message, pattern: str) -> str:
    match = re.search(rf"(http://localhost:\d+/{pattern}/[^/\s]+/)", message.body)
    assert match, message.body
    return match.group(1)


def messages_of(kind: str) -> list:
    return [m for m in mail.outbox if m.metadata["message_type"] == kind]


def test_signing_up_with_javascript_answers_inline(page, site) -> None:
    page.goto(site + "/")
    box = page.locator("form.signup-form").first

    box.get_by_label("Email address").fill("ann@example.org")
    box.get_by_role("button", name="Subscribe").click()

    message = box.locator(".signup-message")
    message.filter(has_text=SUCCESS_MESSAGE).wait_for()
    assert message.get_attribute("aria-live") == "polite"
    assert page.url == site + "/"  # no page load
    screenshot_of(page.locator("section.signup-box").first, "signup-inline-success")
    assert Subscriber.objects.filter(email="ann@example.org").exists()
    assert [m.to for m in messages_of("confirmation")] == [["ann@example.org"]]


def test_a_bad_address_gets_the_inline_error_and_stores_nothing(page, site) -> None:
    page.goto(site + "/")
    box = page.locator("form.signup-form").first
    email = box.get_by_label("Email address")

    # Enter in the field: the focus is already there, so moving it to the field reads
    # nothing out; the error has to announce itself.
    email.fill("ann at example")
    email.press("Enter")

    error = box.locator('[data-error-for="email"]')
    error.filter(has_text=INVALID).wait_for()
    assert email.get_attribute("aria-invalid") == "true"
    assert error.get_attribute("id") in (email.get_attribute("aria-describedby") or "")
    # Shown once, under the field, as a live region a screen reader speaks at once.
    expect(box.get_by_text(INVALID)).to_have_count(1)
    expect(box.locator(".signup-message")).to_be_empty()
    expect(email).to_be_focused()
    error_id = error.get_attribute("id")
    assert announced_as(page, f"#{error_id}") == {
        "role": "alert",
        "live": "assertive",
        "ignored": False,
    }
    screenshot_of(page.locator("section.signup-box").first, "signup-inline-error")
    assert not Subscriber.objects.exists()


def test_signing_up_without_javascript_posts_and_shows_the_thank_you_page(
    page_without_javascript, site
) -> None:
    page = page_without_javascript
    page.goto(site + "/newsletters/")

    page.get_by_label("The Daily Digest").check()
    page.get_by_label("Email address").fill("bob@example.org")
    page.get_by_role("button", name="Subscribe").click()

    page.get_by_text(SUCCESS_MESSAGE).wait_for()
    assert page.url == site + "/subscribe/thanks/"
    screenshot(page, "signup-without-javascript")
    assert Subscription.objects.get(subscriber__email="bob@example.org").status == "pending"


def test_the_whole_journey_sign_up_confirm_welcome_unsubscribe_preferences(page, site) -> None:
    page.goto(site + "/newsletters/")
    page.get_by_label("Explaining Ukraine").check()
    page.get_by_label("Editors' Picks").check()
    page.get_by_label("Email address").fill("cara@example.org")
    page.get_by_role("button", name="Subscribe").click()
    page.get_by_text(SUCCESS_MESSAGE).wait_for()

    (confirmation,) = messages_of("confirmation")
    page.goto(link_in(confirmation, "confirm"))
    screenshot(page, "confirm-page")
    assert set(Subscription.objects.values_list("status", flat=True)) == {"pending"}
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("heading", name="You're subscribed").wait_for()
    assert set(Subscription.objects.values_list("status", flat=True)) == {"active"}

    welcome = messages_of("welcome")
    assert len(welcome) == 2
    assert welcome[0].extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    page.goto(link_in(welcome[0], "unsubscribe"))
    page.get_by_role("button", name=re.compile("Unsubscribe", re.I)).click()
    page.get_by_role("heading", name="Unsubscribed").wait_for()
    screenshot(page, "unsubscribed")
    statuses = dict(Subscription.objects.values_list("newsletter__slug", "status"))
    assert sorted(statuses.values()) == ["active", "unsubscribed"]

    page.get_by_role("link", name="Manage all your newsletters").click()
    still_active = next(slug for slug, status in statuses.items() if status == "active")
    still_active_name = Newsletter.objects.get(slug=still_active).name
    page.get_by_label("The Daily Digest").check()
    page.get_by_label(still_active_name).uncheck()
    page.get_by_role("button", name="Save preferences").click()
    page.get_by_text("Your preferences have been saved.").wait_for()
    screenshot(page, "preferences-saved")
    assert dict(Subscription.objects.values_list("newsletter__slug", "status")) == {
        "explaining-ukraine": "unsubscribed",
        "editors-picks": "unsubscribed",
        "daily-digest": "active",
    }
    # The page shows what was saved.
    expect(page.get_by_label("The Daily Digest")).to_be_checked()
    expect(page.get_by_label(still_active_name)).not_to_be_checked()


def test_the_goal_banner_counts_a_new_member_without_a_reload(page, site) -> None:
    milestones.save_goal(MembershipGoal(target=20_000))
    page.goto(site + "/")
    count = page.locator('.membership-banner [data-goal-field="members"]')
    assert count.inner_text() == "0"

    members.add_member(email="member@example.org", actor="test")

    # The page polls the API every goal_counter.POLL_SECONDS (1 s in these tests).
    expect(count).to_have_text("1", timeout=10_000)
    assert page.locator('[data-goal-field="members-word"]').inner_text() == "member"
    assert page.locator(".membership-progress").get_attribute("value") == "1"
    screenshot_of(page.locator(".membership-banner"), "goal-banner-live")


def test_the_embeds_work_on_another_sites_page(page, site, another_site) -> None:
    milestones.save_goal(MembershipGoal(target=20_000, headline="Help us reach 20,000 members"))
    members.add_member(email="m@example.org", actor="test")
    newsletter = Newsletter.objects.get(slug="explaining-ukraine")
    url = another_site.publish(
        "article.html",
        embeds.goal_snippet() + embeds.signup_script_snippet([newsletter]),
    )

    page.goto(url)
    # The script put the form (fetched from us) into the placeholder.
    form = page.locator(".newsroom-embed[data-newsroom-signup] form.signup-form")
    form.get_by_label("Email address").fill("dan@example.org")
    form.get_by_role("button", name="Subscribe").click()

    form.locator(".signup-message").filter(has_text=SUCCESS_MESSAGE).wait_for()
    banner = page.locator(".newsroom-embed .membership-banner")
    banner.filter(has_text="Help us reach 20,000 members").wait_for()
    count = banner.locator('[data-goal-field="members"]')
    expect(count).to_have_text("1")
    screenshot(page, "embeds-on-another-site")
    subscription = Subscription.objects.get(subscriber__email="dan@example.org")
    assert subscription.newsletter == newsletter
    assert subscription.consent_records.get().page_url == url
    assert page.url == url

    # A member joins: the embedded banner counts them without a reload.
    members.add_member(email="n@example.org", actor="test")
    expect(count).to_have_text("2", timeout=10_000)
    assert banner.locator(".membership-progress").get_attribute("value") == "2"
    screenshot_of(banner, "goal-embed-live-on-another-site")


def test_the_several_newsletters_embed_asks_for_a_choice_then_signs_up(
    page, site, another_site
) -> None:
    every_newsletter = list(Newsletter.objects.order_by("pk"))
    url = another_site.publish("several.html", embeds.signup_script_snippet(every_newsletter))
    page.goto(url)
    form = page.locator(".newsroom-embed form.signup-form")
    email = form.get_by_label("Email address")

    # No newsletter ticked: the error sits with the choices, announced, and nothing is kept.
    email.fill("hana@example.org")
    email.press("Enter")
    choices_error = form.locator('[data-error-for="newsletters"]')
    expect(choices_error).to_have_text(str(CHOOSE_NEWSLETTER_MESSAGE))
    assert announced_as(page, '.newsroom-embed [data-error-for="newsletters"]')["live"] == (
        "assertive"
    )
    assert choices_error.get_attribute("id") in (
        form.locator("fieldset").get_attribute("aria-describedby") or ""
    )
    screenshot_of(form, "embed-several-choose-one")
    assert not Subscriber.objects.exists()

    # Ticking one clears the error; two ticked, the answer comes inline.
    form.get_by_label(every_newsletter[0].name).check()
    expect(choices_error).to_be_hidden()
    form.get_by_label(every_newsletter[2].name).check()
    form.get_by_role("button", name="Subscribe").click()
    form.locator(".signup-message").filter(has_text=SUCCESS_MESSAGE).wait_for()
    assert page.url == url
    assert set(
        Subscription.objects.filter(subscriber__email="hana@example.org").values_list(
            "newsletter", "status"
        )
    ) == {(every_newsletter[0].pk, "pending"), (every_newsletter[2].pk, "pending")}
    (confirmation,) = messages_of("confirmation")
    assert confirmation.to == ["hana@example.org"]


def test_the_plain_html_embed_works_without_javascript(
    page_without_javascript, site, another_site
) -> None:
    newsletter = Newsletter.objects.get(slug="daily-digest")
    url = another_site.publish("plain.html", embeds.signup_html_snippet([newsletter]))
    page = page_without_javascript

    page.goto(url)
    page.get_by_label("Email address").fill("erin@example.org")
    page.get_by_role("button", name="Subscribe").click()

    # Pasted once into another site, the form carries no fresh token: the reader confirms
    # on our page, which says nothing has happened yet.
    page.get_by_role("heading", name="Confirm you want to subscribe").wait_for()
    assert not Subscriber.objects.exists()
    assert page.get_by_label("Email address").input_value() == "erin@example.org"
    page.get_by_role("button", name="Confirm subscription").click()

    page.get_by_text(SUCCESS_MESSAGE).wait_for()
    # The thank-you page speaks the embed's language.
    assert page.url == site + "/subscribe/thanks/?lang=en"
    assert Subscription.objects.get(subscriber__email="erin@example.org").newsletter == newsletter


def test_the_script_embed_without_javascript_links_to_the_newsletters_page(
    page_without_javascript, site, another_site
) -> None:
    newsletter = Newsletter.objects.get(slug="daily-digest")
    url = another_site.publish("script.html", embeds.signup_script_snippet([newsletter]))
    page = page_without_javascript

    page.goto(url)
    page.get_by_role("link", name="Sign up for The Daily Digest").click()

    page.get_by_role("heading", name="The Daily Digest").first.wait_for()
    assert page.url == site + "/newsletters/daily-digest/?lang=en"


@pytest.fixture
def one_api_call_per_network(settings) -> Iterator[None]:
    """The API takes one call per network an hour, counted in this process (which the
    live server shares) from nothing, so no other test's calls count."""
    settings.RATE_LIMIT_REDIS_URL = ""
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api-ip": "1/h"}
    ratelimit._backend_for("").clear()
    yield
    ratelimit._backend_for("").clear()


def test_the_embed_shows_the_rate_limit_inline_in_its_own_language(
    page, site, another_site, one_api_call_per_network
) -> None:
    # An English browser (en-GB) on a page with a Ukrainian embed.
    newsletter = Newsletter.objects.get(slug="daily-digest")
    url = another_site.publish("uk.html", embeds.signup_script_snippet([newsletter], language="uk"))
    page.goto(url)
    form = page.locator(".newsroom-embed form.signup-form")
    message = form.locator(".signup-message")

    form.get_by_label("Адреса електронної пошти").fill("iryna@example.org")
    form.get_by_role("button", name="Підписатися").click()
    message.filter(has_text="Ми надіслали вам лист").wait_for()
    form.get_by_label("Адреса електронної пошти").fill("iryna@example.org")
    form.get_by_role("button", name="Підписатися").click()

    # The API refuses this one before it reads the body: the URL carries the lang.
    expect(message).to_have_text(re.compile(r"^Забагато спроб підписатися\."))
    assert message.get_attribute("aria-live") == "polite"
    assert "is-error" in message.get_attribute("class")
    screenshot_of(form, "embed-rate-limited")
    assert Subscriber.objects.count() == 1


# The accent colour (the button's) and the font of the first sign-up box matching a selector.
LOOK_OF_A_SIGNUP_BOX = """box => {
    const element = document.querySelector(box);
    return {
        accent: getComputedStyle(element.querySelector(".signup-form__submit")).backgroundColor,
        font: getComputedStyle(element).fontFamily,
    };
}"""


def test_the_host_page_restyles_the_embed_through_custom_properties(
    page, site, another_site
) -> None:
    newsletter = Newsletter.objects.get(slug="daily-digest")
    snippet = embeds.signup_script_snippet([newsletter])

    def styles(url: str) -> dict:
        page.goto(url)
        page.locator(".newsroom-embed form.signup-form").wait_for()
        return page.evaluate(LOOK_OF_A_SIGNUP_BOX, ".newsroom-embed")

    plain = styles(another_site.publish("plain.html", snippet))
    from_body = styles(
        another_site.publish(
            "body.html",
            snippet,
            head="<style>body { --newsroom-accent: #1d5c2e; }</style>",
        )
    )
    # In the head, before the snippet's stylesheet, with the same specificity as its
    # rules; and on an ancestor of the embed.
    restyled = styles(
        another_site.publish(
            "restyled.html",
            f'<div style="--newsroom-font: Georgia, serif">{snippet}</div>',
            head="<style>.newsroom-embed { --newsroom-accent: #8a0b2e; }</style>",
        )
    )
    screenshot(page, "embed-restyled-by-host")

    page.goto(site + "/")
    own = page.evaluate(LOOK_OF_A_SIGNUP_BOX, ".signup-box")
    assert plain == own  # the defaults look like our own pages
    assert restyled == {"accent": "rgb(138, 11, 46)", "font": "Georgia, serif"}
    assert from_body == {"accent": "rgb(29, 92, 46)", "font": own["font"]}


# The goal banner's background, text and member colours.
LOOK_OF_THE_BANNER = """() => {
    const banner = document.querySelector(".newsroom-embed .membership-banner");
    return {
        background: getComputedStyle(banner).backgroundColor,
        text: getComputedStyle(banner).color,
        member: getComputedStyle(banner.querySelector(".membership-banner__cta")).backgroundColor,
    };
}"""


def test_the_host_page_restyles_the_goal_banner_through_custom_properties(
    page, site, another_site
) -> None:
    milestones.save_goal(MembershipGoal(target=20_000))

    def look(name: str, head: str = "") -> dict:
        page.goto(another_site.publish(name, embeds.goal_snippet(), head=head))
        page.locator(".newsroom-embed .membership-banner").wait_for()
        return page.evaluate(LOOK_OF_THE_BANNER)

    plain = look("plain.html")
    restyled = look(
        "restyled.html",
        head="<style>body { --newsroom-banner-bg: #003366; --newsroom-banner-text: #fafafa;"
        " --newsroom-member: #ff7f50; }</style>",
    )
    screenshot(page, "goal-embed-restyled-by-host")

    page.goto(site + "/")
    own = page.evaluate(LOOK_OF_THE_BANNER.replace(".newsroom-embed ", ""))
    assert plain == own  # the defaults look like our own banner
    assert restyled == {
        "background": "rgb(0, 51, 102)",
        "text": "rgb(250, 250, 250)",
        "member": "rgb(255, 127, 80)",
    }


def test_a_reader_signs_up_with_the_keyboard_alone(page, site) -> None:
    page.goto(site + "/newsletters/")

    for _ in range(60):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.type") == "checkbox":
            break
    page.keyboard.press("Space")  # the first newsletter
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "email":
            break
    page.keyboard.type("fay@example.org")
    page.keyboard.press("Enter")

    page.get_by_text(SUCCESS_MESSAGE).wait_for()
    assert Subscriber.objects.filter(email="fay@example.org").exists()


def test_no_page_has_serious_accessibility_violations(browser, site, another_site) -> None:
    subscriber = Subscriber.objects.create(email="gus@example.org")
    subscription = Subscription.objects.create(
        subscriber=subscriber, newsletter=Newsletter.objects.first()
    )
    milestones.save_goal(MembershipGoal())
    every_newsletter = list(Newsletter.objects.all())
    pages = {
        "home": site + "/",
        "newsletters": site + "/newsletters/",
        "confirm": f"{site}/confirm/{confirmation_token.make_token([subscription.pk])}/",
        "unsubscribe": f"{site}/unsubscribe/{unsubscribe_token.make_token(subscription.pk)}/",
        "preferences": f"{site}/preferences/{preferences_token.make_token(subscriber.pk)}/",
        "embedded-form": another_site.publish(
            "embed.html", embeds.signup_script_snippet(every_newsletter)
        ),
        "embedded-plain-form": another_site.publish(
            "embed-plain.html", embeds.signup_html_snippet(every_newsletter)
        ),
        "home-in-ukrainian": site + "/?lang=uk",
        "embedded-form-in-ukrainian": another_site.publish(
            "embed-uk.html",
            embeds.signup_script_snippet([Newsletter.objects.first()], language="uk"),
        ),
    }

    rendered_by_script = {"embedded-form", "embedded-form-in-ukrainian"}

    # axe-core is injected as a script, which our own Content-Security-Policy (rightly)
    # refuses; this one context looks past it.
    context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    found = {}
    try:
        for name, url in pages.items():
            page.goto(url)
            page.wait_for_load_state("networkidle")
            if name in rendered_by_script:
                page.locator("form.signup-form").wait_for()
            found[name] = serious_accessibility_violations(page)
            screenshot(page, f"page-{name}")
    finally:
        context.close()

    assert found == dict.fromkeys(pages, [])


def test_a_ukrainian_reader_is_answered_in_ukrainian(browser, site, another_site) -> None:
    milestones.save_goal(MembershipGoal(target=20_000))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="uk-UA")
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        page.goto(site + "/")
        assert page.locator("html").get_attribute("lang") == "uk"
        box = page.locator("form.signup-form").first
        box.get_by_label("Адреса електронної пошти").fill("olena@")
        box.get_by_role("button", name="Підписатися").click()
        expect(box.locator('[data-error-for="email"]')).to_have_text(
            "Будь ласка, введіть правильну адресу електронної пошти"
        )
        box.get_by_label("Адреса електронної пошти").fill("olena@example.org")
        box.get_by_role("button", name="Підписатися").click()
        box.locator(".signup-message").filter(
            has_text="Дякуємо, що підписалися на цю розсилку."
        ).wait_for()
        assert Subscriber.objects.get(email="olena@example.org").language == "uk"

        # The banner's word follows Ukrainian plurals as the count goes live.
        words = page.locator('.membership-banner [data-goal-field="members-word"]')
        joined = 0
        for number, word in ((1, "учасник"), (3, "учасники"), (5, "учасників")):
            while joined < number:
                joined += 1
                members.add_member(email=f"member{joined}@example.org", actor="test")
            expect(words).to_have_text(word, timeout=10_000)
        screenshot(page, "article-in-ukrainian")

        # A Ukrainian embed on an English page answers in Ukrainian.
        english_page = context.new_page()
        url = another_site.publish(
            "uk.html", embeds.signup_script_snippet([Newsletter.objects.first()], language="uk")
        )
        english_page.goto(url)
        form = english_page.locator(".newsroom-embed form.signup-form")
        form.get_by_label("Адреса електронної пошти").fill("taras@example.org")
        form.get_by_role("button", name="Підписатися").click()
        form.locator(".signup-message").filter(has_text="Ми надіслали вам лист").wait_for()
        assert Subscriber.objects.get(email="taras@example.org").language == "uk"
    finally:
        context.close()


def test_the_article_page_fits_a_360px_phone(browser, site) -> None:
    milestones.save_goal(MembershipGoal())
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True)
    phone = context.new_page()
    try:
        phone.goto(site + "/")
        width = phone.evaluate("document.documentElement.scrollWidth")
        screenshot(phone, "home-360px")
        for region in PARTS_OF_THE_ARTICLE_PAGE:
            assert phone.locator(region).first.is_visible(), region
    finally:
        context.close()

    assert width <= 360


# What makes the demo page an article page of a news site.
PARTS_OF_THE_ARTICLE_PAGE = (
    "header.site-header nav.site-nav",
    "article h1",
    "article .membership-banner",
    "article form.signup-form",  # a sign-up box in the article
    "aside.sidebar form.signup-form",  # and in the sidebar
    ".latest-news li a",  # the news feed column
    "footer.site-footer",
)


def test_the_article_page_has_the_parts_of_a_news_site_side_by_side(page, site) -> None:
    milestones.save_goal(MembershipGoal())
    page.goto(site + "/")  # 1280 px wide

    boxes = {part: page.locator(part).first.bounding_box() for part in PARTS_OF_THE_ARTICLE_PAGE}
    assert all(boxes.values()), boxes  # every part is there and shown
    article = page.locator("article").first.bounding_box()
    sidebar = page.locator("aside.sidebar").first.bounding_box()
    # On a desktop the sidebar is a column beside the article, not below it.
    assert sidebar["x"] >= article["x"] + article["width"] - 1
    assert sidebar["y"] < article["y"] + article["height"]
    assert page.locator(".latest-news li").count() >= 3


def test_the_accessibility_check_does_find_violations(browser, another_site) -> None:
    """The check above passes because the pages are clean, not because axe never ran."""
    url = another_site.publish("broken.html", '<img src="x.png"><input type="text">')
    context = browser.new_context(bypass_csp=True)
    page = context.new_page()
    try:
        page.goto(url)
        found = {violation["id"] for violation in serious_accessibility_violations(page)}
    finally:
        context.close()

    assert {"image-alt", "label"} <= found
