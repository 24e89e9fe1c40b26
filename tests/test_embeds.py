"""The embeds' server side: the snippets, the no-JavaScript sign-up another site's form
posts to, the banner fragment, CORS for the API, and the admin's copy-paste code. (The
browser tests drive the same snippets on another origin in Chromium.)"""

import re
import time
from html import unescape
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from subscriptions.abuse import bot_traps
from subscriptions.membership import members, milestones
from subscriptions.models import MembershipGoal, Newsletter, Subscriber, Subscription
from subscriptions.signup import selectors
from subscriptions.web import embeds
from tests.factories import NewsletterFactory

pytestmark = pytest.mark.django_db
EMBED = "/subscribe/embed/"
HOST = "https://dailyriver.example"


@pytest.fixture
def digest() -> Newsletter:
    return NewsletterFactory(name="The Daily Digest", slug="daily-digest")


@pytest.fixture
def csrf_client() -> Client:
    # Another site's form carries none of our cookies or tokens.
    return Client(enforce_csrf_checks=True)


def test_the_script_snippet_is_a_placeholder_the_script_fills_from_this_site(digest) -> None:
    snippet = embeds.signup_script_snippet([digest])

    fragment = re.search(r'data-newsroom-signup="([^"]+)"', snippet).group(1)
    assert unescape(fragment) == (
        "https://news.example.org/embed/signup/?newsletters=daily-digest&lang=en"
    )
    assert 'src="https://news.example.org/static/subscriptions/signup.js"' in snippet
    assert 'href="https://news.example.org/static/subscriptions/embed.css"' in snippet
    # Without JavaScript the placeholder is a link to the newsletter's page.
    assert (
        '<a href="https://news.example.org/newsletters/daily-digest/?lang=en">'
        "Sign up for The Daily Digest</a>" in snippet
    )
    assert "<form" not in snippet
    assert "{%" not in snippet and "{{" not in snippet


def test_the_plain_html_snippet_is_a_form_posting_to_this_site_with_no_script(digest) -> None:
    snippet = embeds.signup_html_snippet([digest])

    assert 'action="https://news.example.org/subscribe/embed/?lang=en"' in snippet
    assert '<input type="hidden" name="newsletters" value="daily-digest">' in snippet
    assert 'href="https://news.example.org/static/subscriptions/embed.css"' in snippet
    assert "<script" not in snippet and "data-api" not in snippet
    assert "{%" not in snippet and "{{" not in snippet


def test_a_snippet_for_several_newsletters_offers_each_as_a_checkbox() -> None:
    first = NewsletterFactory(slug="first")
    second = NewsletterFactory(slug="second")

    snippet = embeds.signup_html_snippet([first, second])
    fragment = unescape(
        re.search(
            r'data-newsroom-signup="([^"]+)"', embeds.signup_script_snippet([first, second])
        ).group(1)
    )

    assert re.findall(r'type="checkbox" name="newsletters" value="([^"]+)"', snippet) == [
        "first",
        "second",
    ]
    assert fragment.endswith("/embed/signup/?newsletters=first&newsletters=second&lang=en")
    ids = re.findall(r'id="([^"]+)"', snippet)
    assert len(ids) == len(set(ids))


def test_a_newsletter_name_cannot_inject_markup_into_the_snippets() -> None:
    nasty = NewsletterFactory(name='<script>alert("x")</script>', slug="nasty")

    for snippet in (embeds.signup_script_snippet([nasty]), embeds.signup_html_snippet([nasty])):
        assert "<script>alert" not in snippet
        assert "&lt;script&gt;alert" in snippet


def test_the_form_fragment_answers_inline_in_the_asked_language(client, digest) -> None:
    response = client.get("/embed/signup/?newsletters=daily-digest&lang=uk")

    html = response.content.decode()
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "public" in response["Cache-Control"]
    assert not response.cookies
    assert 'data-api="https://news.example.org/api/v1/subscriptions"' in html
    assert 'data-lang="uk"' in html
    assert 'action="https://news.example.org/subscribe/embed/?lang=uk"' in html
    assert "Адреса електронної пошти" in html
    assert 'aria-live="polite"' in html
    assert 'data-error-for="email"' in html


def test_the_form_fragment_keeps_the_order_given_and_leaves_out_private_newsletters(
    client, digest
) -> None:
    NewsletterFactory(slug="weekly")
    NewsletterFactory(slug="hidden", is_public=False)

    html = client.get(
        "/embed/signup/?newsletters=weekly&newsletters=hidden&newsletters=daily-digest"
    ).content.decode()

    assert re.findall(r'name="newsletters" value="([^"]+)"', html) == ["weekly", "daily-digest"]


@pytest.mark.parametrize("query", ["", "?newsletters=hidden", "?newsletters=nope"])
def test_the_form_fragment_of_no_public_newsletter_is_not_found(client, query) -> None:
    NewsletterFactory(slug="hidden", is_public=False)

    response = client.get("/embed/signup/" + query)

    assert response.status_code == 404
    assert response.content == b""
    assert response["Access-Control-Allow-Origin"] == "*"


def test_another_sites_plain_form_signs_up_after_the_reader_confirms_on_our_page(
    csrf_client, digest, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    """The plain-HTML snippet cannot carry a fresh form token (it is pasted once into
    another site's page), so its reader confirms on our page, which can: the same traps
    as our own form, and never a false "we've sent you an email"."""
    response = csrf_client.post(
        EMBED,
        {"email": "olena@example.org", "newsletters": "daily-digest", "page_url": HOST + "/a"},
        HTTP_REFERER=HOST + "/a",
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Confirm you want to subscribe" in page
    assert not Subscriber.objects.exists()
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page))
    assert fields["email"] == "olena@example.org"
    assert fields["newsletters"] == "daily-digest"
    assert unescape(fields["page_url"]) == HOST + "/a"

    now = time.time()
    monkeypatch.setattr(bot_traps, "_now", lambda: now + 5)  # the reader reads and presses
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = csrf_client.post(re.search(r'action="([^"]+)"', page).group(1), fields)

    assert confirmed.status_code == 302
    assert confirmed["Location"] == "/subscribe/thanks/"
    subscription = Subscription.objects.get(subscriber__email="olena@example.org")
    assert subscription.newsletter == digest
    assert subscription.status == Subscription.Status.PENDING
    assert subscription.consent_records.get().page_url == HOST + "/a"


def test_our_own_form_still_needs_its_csrf_token(csrf_client, digest) -> None:
    response = csrf_client.post(
        "/subscribe/", {"email": "olena@example.org", "newsletters": "daily-digest"}
    )
    assert response.status_code == 403
    assert not Subscriber.objects.exists()


@pytest.mark.parametrize(
    "email", ["", "not-an-address", "a@b", "olena@example.org\r\nBcc: x@example.org", "é" * 300]
)
def test_a_bad_address_from_another_site_gets_the_error_page_and_stores_nothing(
    csrf_client, digest, email
) -> None:
    response = csrf_client.post(EMBED, {"email": email, "newsletters": "daily-digest"})

    assert response.status_code == 400
    assert "Please, enter correct email address" in response.content.decode()
    assert not Subscriber.objects.exists()


def test_a_filled_honeypot_is_answered_as_a_success_and_nothing_is_stored(
    csrf_client, digest
) -> None:
    response = csrf_client.post(
        EMBED, {"email": "bot@example.org", "newsletters": "daily-digest", "website": "spam"}
    )

    assert response.status_code == 302
    assert not Subscriber.objects.exists()


def test_an_oversized_post_from_another_site_is_refused_before_it_is_read(
    csrf_client, digest
) -> None:
    response = csrf_client.post(
        EMBED, {"email": "olena@example.org", "newsletters": "daily-digest", "x": "a" * 50_000}
    )

    assert response.status_code == 413
    assert not Subscriber.objects.exists()


def test_the_embed_only_takes_posts(client) -> None:
    assert client.get(EMBED).status_code == 405


def test_the_banner_fragment_is_public_and_points_back_at_us(client) -> None:
    milestones.save_goal(MembershipGoal(target=500, headline="Help us reach 500 members"))
    members.add_member(email="m@example.org", actor="test")

    response = client.get("/embed/goal/")

    html = response.content.decode()
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "public" in response["Cache-Control"]
    assert "Help us reach 500 members" in html
    assert 'data-goal-api="https://news.example.org/api/v1/goal"' in html
    assert '<progress class="membership-progress" max="500" value="1"' in html
    assert not response.cookies


def test_the_banner_fragment_is_empty_without_an_active_goal(client) -> None:
    response = client.get("/embed/goal/")

    assert response.status_code == 200
    assert response.content.decode().strip() == ""
    assert response["Access-Control-Allow-Origin"] == "*"


def test_the_api_allows_the_listed_origins_only(client, settings) -> None:
    settings.CORS_ALLOWED_ORIGINS = [HOST]
    preflight = {
        "HTTP_ORIGIN": HOST,
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
        "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "content-type",
    }

    allowed = client.options("/api/v1/subscriptions", **preflight)
    refused = client.options(
        "/api/v1/subscriptions", **{**preflight, "HTTP_ORIGIN": "https://evil.example"}
    )

    assert allowed["Access-Control-Allow-Origin"] == HOST
    assert "Access-Control-Allow-Credentials" not in allowed
    assert "Access-Control-Allow-Origin" not in refused


def embed_boxes(html: str) -> dict[str, str]:
    return {
        label: unescape(code)
        for label, code in re.findall(
            r'<textarea[^>]*aria-label="([^"]+)"[^>]*>(.*?)</textarea>', html, re.S
        )
    }


def test_the_newsletter_admin_shows_both_snippets_in_each_language(admin_client, digest):
    response = admin_client.get(reverse("admin:subscriptions_newsletter_change", args=[digest.pk]))

    assert embed_boxes(response.content.decode()) == {
        "Script embed code, English": embeds.signup_script_snippet([digest], language="en"),
        "Plain HTML embed code, English": embeds.signup_html_snippet([digest], language="en"),
        "Script embed code, Українська": embeds.signup_script_snippet([digest], language="uk"),
        "Plain HTML embed code, Українська": embeds.signup_html_snippet([digest], language="uk"),
    }


def test_the_embeds_page_gives_the_form_for_every_public_newsletter_and_the_banner(
    admin_client, digest
) -> None:
    NewsletterFactory(slug="weekly")
    NewsletterFactory(slug="private-list", is_public=False)

    response = admin_client.get(reverse("admin:subscriptions_embeds"))

    assert response.status_code == 200
    boxes = embed_boxes(response.content.decode())
    public = list(selectors.public_newsletters())
    assert {n.slug for n in public} == {"daily-digest", "weekly"}
    assert boxes == {
        **{
            f"Script embed code, {name}": embeds.signup_script_snippet(public, language=code)
            for code, name in settings.LANGUAGES
        },
        **{
            f"Plain HTML embed code, {name}": embeds.signup_html_snippet(public, language=code)
            for code, name in settings.LANGUAGES
        },
        **{
            f"Embed code, {name}": embeds.goal_snippet(language=code)
            for code, name in settings.LANGUAGES
        },
    }
    assert "private-list" not in "".join(boxes.values())


def test_the_embeds_page_gives_the_form_for_the_ticked_newsletters(admin_client, digest) -> None:
    weekly = NewsletterFactory(slug="weekly", position=1)
    morning = NewsletterFactory(slug="morning", position=2)
    NewsletterFactory(slug="private-list", is_public=False)
    url = reverse("admin:subscriptions_embeds")

    # In the newsletters' own order, whatever the order ticked; private or unknown
    # slugs are left out.
    response = admin_client.get(
        url, {"newsletters": [morning.slug, "private-list", "no-such-list", digest.slug]}
    )

    boxes = embed_boxes(response.content.decode())
    chosen = [digest, morning]  # positions 0 and 2
    assert boxes["Script embed code, English"] == embeds.signup_script_snippet(chosen)
    assert boxes["Plain HTML embed code, English"] == embeds.signup_html_snippet(chosen)
    assert "weekly" not in boxes["Script embed code, English"]
    assert "private-list" not in boxes["Script embed code, English"]
    page = response.content.decode()
    assert re.search(r'value="morning" checked', page)
    assert re.search(r'value="weekly">', page)
    assert not re.search(r'value="private-list"', page)

    # Nothing public ticked: every public newsletter, as before.
    nothing = embed_boxes(admin_client.get(url, {"newsletters": ["private-list"]}).content.decode())
    public = list(selectors.public_newsletters())
    assert public == [digest, weekly, morning]
    assert nothing["Script embed code, English"] == embeds.signup_script_snippet(public)


def test_the_embeds_page_is_for_editors_only(client) -> None:
    response = client.get(reverse("admin:subscriptions_embeds"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_the_readmes_example_is_the_code_the_admin_shows() -> None:
    newsletter = NewsletterFactory(name="Explaining Ukraine", slug="explaining-ukraine")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Embedding on your own site", 1)[1].split("\n## ", 1)[0]

    script, plain = re.findall(r"```html\n(.*?)\n```", section, re.S)

    assert script == embeds.signup_script_snippet([newsletter])
    assert plain == embeds.signup_html_snippet([newsletter])
