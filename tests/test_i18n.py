"""English and Ukrainian: pages follow `?lang=`, the language cookie, then
Accept-Language; the API follows the body's `lang`; a subscriber keeps the language
they signed up in, and their emails (and the pages those emails link to) use it. The
catalog holds every marked string, translated, and the committed .mo matches it."""

import gettext
import json
import os
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import translation

from subscriptions.abuse import ratelimit
from subscriptions.membership import milestones
from subscriptions.models import (
    ConsentRecord,
    MembershipGoal,
    Newsletter,
    Subscriber,
    Subscription,
)
from subscriptions.privacy import personal_data
from subscriptions.signup import services
from subscriptions.templatetags.membership import members_words
from subscriptions.web import embeds
from subscriptions.web.views import rate_limited_message
from tests.factories import human_form_token, with_form_token

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1/subscriptions"
UK_INVALID = "Будь ласка, введіть правильну адресу електронної пошти"
UK_THANKS = "Дякуємо, що підписалися на цю розсилку. Ми надіслали вам лист для підтвердження."
EN_THANKS = "Thank you for signing up for this newsletter. We've sent you a confirmation email."


@pytest.fixture(autouse=True)
def newsroom(db) -> None:
    from django.core.management import call_command

    call_command("load_demo_newsletters", verbosity=0)


def api_post(client: Client, body: dict, *, path: str = API, **headers: str):
    return client.post(
        path, json.dumps(with_form_token(body)), content_type="application/json", **headers
    )


def page_text(response) -> str:
    return response.content.decode()


# Pages ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/newsletters/", "/newsletters/daily-digest/"])
def test_pages_speak_ukrainian_to_a_browser_that_asks_for_it(client, path) -> None:
    response = client.get(path, HTTP_ACCEPT_LANGUAGE="uk-UA,uk;q=0.9,en;q=0.5")

    html = page_text(response)
    assert response.status_code == 200
    assert response["Content-Language"] == "uk"
    assert '<html lang="uk">' in html
    assert "* позначає обов’язкове поле" in html
    assert "Адреса електронної пошти" in html
    assert "Підписатися" in html
    assert "Щодня" in html  # the Daily Digest's cadence
    assert "indicates required" not in html


def test_pages_are_english_by_default_and_for_a_language_we_do_not_have(client) -> None:
    for accept in ("", "fr-FR,fr;q=0.9", "x" * 500):
        html = page_text(client.get("/newsletters/", HTTP_ACCEPT_LANGUAGE=accept))
        assert '<html lang="en">' in html
        assert "* indicates required" in html
        assert "Підписатися" not in html


def test_the_demo_article_stays_english_content_marked_as_such(client) -> None:
    html = page_text(client.get("/", HTTP_ACCEPT_LANGUAGE="uk"))

    assert '<article class="article" lang="en"' in html
    assert "Останні новини" in html
    # The sign-up box inside the English article says which language it speaks.
    assert '<aside class="article__inline-signup" lang="uk"' in html


def test_lang_in_the_url_wins_over_accept_language_and_nonsense_is_ignored(client) -> None:
    ukrainian = client.get("/newsletters/?lang=uk", HTTP_ACCEPT_LANGUAGE="en")
    assert '<html lang="uk">' in page_text(ukrainian)
    assert ukrainian["Content-Language"] == "uk"

    for nonsense in ("xx", "", "uk\r\nSet-Cookie: a=b", "u" * 5000, "../../etc"):
        response = client.get("/newsletters/", {"lang": nonsense}, HTTP_ACCEPT_LANGUAGE="en")
        assert response.status_code == 200
        assert '<html lang="en">' in page_text(response)
        assert "Set-Cookie: a=b" not in str(response.headers)


def test_the_language_links_remember_the_choice_and_go_back(client) -> None:
    html = page_text(client.get("/newsletters/"))
    assert 'href="/language/uk/?next=/newsletters/" lang="uk" hreflang="uk"' in html
    assert 'lang="en" hreflang="en" aria-current="true">English</a>' in html

    response = client.get("/language/uk/", {"next": "/newsletters/"})

    assert response.status_code == 302
    assert response["Location"] == "/newsletters/"
    cookie = response.cookies[settings.LANGUAGE_COOKIE_NAME]
    assert cookie.value == "uk"
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    # The cookie beats the browser's Accept-Language from now on.
    html = page_text(client.get("/newsletters/", HTTP_ACCEPT_LANGUAGE="en"))
    assert '<html lang="uk">' in html
    assert 'lang="uk" hreflang="uk" aria-current="true">Українська</a>' in html


def test_the_language_links_refuse_other_sites_and_unknown_languages(client) -> None:
    for target in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        response = client.get("/language/uk/", {"next": target})
        assert response.status_code == 302
        assert response["Location"] == "/"

    response = client.get("/language/fr/", {"next": "/newsletters/"})
    assert response["Location"] == "/newsletters/"
    assert settings.LANGUAGE_COOKIE_NAME not in response.cookies


def test_ordinary_pages_set_no_cookie_in_either_language(client) -> None:
    # The language links are links, not a form: a page without a form of its own sets
    # no CSRF cookie, so shared caches can keep it.
    for language in ("en", "uk"):
        response = client.get("/subscribe/thanks/", HTTP_ACCEPT_LANGUAGE=language)
        assert response.status_code == 200
        assert not response.cookies


def test_a_bad_address_on_the_form_is_refused_in_ukrainian(client) -> None:
    response = client.post(
        "/subscribe/",
        {
            "email": "not-an-address",
            "newsletters": "daily-digest",
            "form_token": human_form_token(),
        },
        HTTP_ACCEPT_LANGUAGE="uk",
    )

    html = page_text(response)
    assert response.status_code == 400
    assert UK_INVALID in html
    assert "З вашою підпискою є проблема" in html
    assert not Subscription.objects.exists()


def test_the_thank_you_page_in_ukrainian(client) -> None:
    html = page_text(client.get("/subscribe/thanks/", HTTP_ACCEPT_LANGUAGE="uk"))
    assert UK_THANKS in html
    assert "Перевірте пошту" in html


def test_a_missing_page_answers_in_the_readers_language(client) -> None:
    response = client.get("/no-such-page/", HTTP_ACCEPT_LANGUAGE="uk")
    assert response.status_code == 404
    assert "Ми не змогли знайти цю сторінку" in page_text(response)


# The API ------------------------------------------------------------------------------


def test_the_api_answers_in_the_language_of_the_body(client) -> None:
    refused = api_post(
        client,
        {"email": "nope", "newsletters": ["daily-digest"], "lang": "uk"},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert refused.status_code == 400
    assert refused.json() == {"errors": {"email": [UK_INVALID]}}
    assert refused["Content-Language"] == "uk"

    accepted = api_post(
        client, {"email": "olena@example.org", "newsletters": ["daily-digest"], "lang": "uk-UA"}
    )
    assert accepted.status_code == 202
    assert accepted.json()["message"] == UK_THANKS

    unknown = api_post(client, {"email": "nope", "newsletters": [], "lang": "uk"})
    assert unknown.json()["errors"]["newsletters"] == ["Оберіть принаймні одну розсилку."]


def test_the_api_falls_back_to_accept_language_when_lang_is_missing_or_nonsense(client) -> None:
    for lang in (None, "fr", 7, ["uk"], {"uk": 1}, "", "u" * 10_000):
        body = {"email": "nope", "newsletters": ["daily-digest"]}
        if lang is not None:
            body["lang"] = lang
        uk = api_post(client, body, HTTP_ACCEPT_LANGUAGE="uk")
        en = api_post(client, body)
        assert uk.status_code == en.status_code == 400, lang
        assert uk.json() == {"errors": {"email": [UK_INVALID]}}, lang
        assert en.json() == {"errors": {"email": ["Please, enter correct email address"]}}, lang


def test_the_wait_is_said_with_ukrainian_plurals() -> None:
    with translation.override("uk"):
        assert rate_limited_message(30).endswith("за хвилину.")
        assert rate_limited_message(120).endswith("за 2 хвилини.")
        assert rate_limited_message(300).endswith("за 5 хвилин.")
        assert rate_limited_message(21 * 60).endswith("за 21 хвилину.")
    with translation.override("en"):
        assert rate_limited_message(300).endswith("in 5 minutes.")


@pytest.fixture
def one_api_call_per_network(settings) -> None:
    # The in-process window, emptied: no other test's calls count against this one.
    settings.RATE_LIMIT_REDIS_URL = ""
    ratelimit._backend_for("").clear()
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "api-ip": "1/h"}
    yield
    ratelimit._backend_for("").clear()


def test_the_network_rate_limit_answer_speaks_the_embeds_lang_not_the_browsers(
    client, one_api_call_per_network
) -> None:
    # The embed's script puts its lang on the URL: this limit answers before the body
    # (and its lang) is read.
    body = {"email": "olena@example.org", "newsletters": ["daily-digest"], "lang": "uk"}
    first = api_post(client, body, HTTP_ACCEPT_LANGUAGE="en", path=API + "?lang=uk")

    response = api_post(client, body, HTTP_ACCEPT_LANGUAGE="en", path=API + "?lang=uk")

    assert first.status_code == 202
    assert response.status_code == 429
    assert response.json()["errors"]["__all__"][0].startswith("Забагато спроб підписатися.")
    assert response["Content-Language"] == "uk"


def test_the_network_rate_limit_answer_without_a_lang_follows_accept_language(
    client, one_api_call_per_network
) -> None:
    body = {"email": "olena@example.org", "newsletters": ["daily-digest"]}
    api_post(client, body)

    english = api_post(client, body, HTTP_ACCEPT_LANGUAGE="en")
    ukrainian = api_post(client, body, HTTP_ACCEPT_LANGUAGE="uk")

    assert english.json()["errors"]["__all__"][0].startswith("Too many sign-up attempts.")
    assert ukrainian.json()["errors"]["__all__"][0].startswith("Забагато спроб підписатися.")


@pytest.mark.parametrize(
    ("content_type", "body", "english", "ukrainian"),
    [
        (
            "text/plain",
            "{}",
            "Send a JSON body with Content-Type: application/json.",
            "Надішліть тіло запиту в JSON із Content-Type: application/json.",
        ),
        (
            "application/json",
            "{",
            "The body is not valid JSON.",
            "Тіло запиту не є правильним JSON.",
        ),
        ("application/json", "[]", "Send a JSON object.", "Надішліть об’єкт JSON."),
        (
            "application/json",
            "x" * 100_000,
            "The request body is too large.",
            "Тіло запиту завелике.",
        ),
    ],
)
def test_the_apis_answers_to_a_bad_body_are_translated(
    client, content_type, body, english, ukrainian
) -> None:
    for path, accept_language, expected in (
        (API, "en", english),
        (API, "uk", ukrainian),
        (API + "?lang=uk", "en", ukrainian),
    ):
        response = client.post(
            path, body, content_type=content_type, HTTP_ACCEPT_LANGUAGE=accept_language
        )
        assert response.json() == {"errors": {"__all__": [expected]}}, (path, accept_language)


def test_the_goal_apis_no_goal_answer_is_translated(
    client, django_capture_on_commit_callbacks
) -> None:
    goal = MembershipGoal.objects.get(is_active=True)  # the demo's
    goal.is_active = False
    with django_capture_on_commit_callbacks(execute=True):
        milestones.save_goal(goal)

    english = client.get("/api/v1/goal", HTTP_ACCEPT_LANGUAGE="en")
    ukrainian = client.get("/api/v1/goal?lang=uk", HTTP_ACCEPT_LANGUAGE="en")

    assert english.status_code == ukrainian.status_code == 404
    assert english.json() == {"errors": {"__all__": ["There is no active membership goal."]}}
    assert ukrainian.json() == {
        "errors": {"__all__": ["Зараз немає активної мети щодо кількості учасників."]}
    }


# A subscriber's language ---------------------------------------------------------------


def test_the_sign_up_language_is_stored_with_the_words_the_reader_saw(client) -> None:
    api_post(client, {"email": "olena@example.org", "newsletters": ["daily-digest"], "lang": "uk"})

    subscriber = Subscriber.objects.get(email="olena@example.org")
    assert subscriber.language == "uk"
    consent = ConsentRecord.objects.get(subscription__subscriber=subscriber)
    assert consent.consent_text.startswith("Спершу ми надішлемо вам посилання")
    # What we hold about them includes it, so the data export shows it.
    assert personal_data.subscriber_data(subscriber)["subscriber"]["language"] == "uk"

    # Signing up again from an English page: the latest sign-up says how they read.
    client.post(
        "/subscribe/",
        {
            "email": "olena@example.org",
            "newsletters": "explaining-ukraine",
            "form_token": human_form_token(),
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    subscriber.refresh_from_db()
    assert subscriber.language == "en"


def test_an_editor_adding_someone_leaves_their_language_alone() -> None:
    digest = Newsletter.objects.get(slug="daily-digest")
    services.subscribe(
        email="olena@example.org",
        newsletters=[digest],
        source=Subscription.Source.FORM,
        consent=services.ConsentContext(),
        language="uk",
    )
    services.add_by_editor(
        email="olena@example.org",
        newsletters=[Newsletter.objects.get(slug="editors-picks")],
        actor="admin:ed",
        consent_basis="Asked at our event",
        activate=True,
    )
    assert Subscriber.objects.get(email="olena@example.org").language == "uk"


def test_an_unsupported_language_is_not_stored() -> None:
    services.subscribe(
        email="olena@example.org",
        newsletters=[Newsletter.objects.get(slug="daily-digest")],
        source=Subscription.Source.FORM,
        consent=services.ConsentContext(),
        language="fr",
    )
    assert Subscriber.objects.get(email="olena@example.org").language == ""


def confirmation_link(message) -> str:
    return re.search(r"https://news\.example\.org(/confirm/\S+)", message.body).group(1)


def test_a_ukrainian_subscriber_reads_ukrainian_email_and_pages_from_it(
    client, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        api_post(
            client, {"email": "olena@example.org", "newsletters": ["daily-digest"], "lang": "uk"}
        )
    (confirmation,) = mail.outbox
    assert confirmation.subject == "Підтвердьте підписку на «The Daily Digest»"
    assert "Хтось, сподіваємося, що ви" in confirmation.body
    assert "Посилання діє 7 днів." in confirmation.body
    html, _ = confirmation.alternatives[0]
    assert '<html lang="uk">' in html
    assert "Підтвердити підписку" in html

    link = confirmation_link(confirmation)
    assert link.endswith("/?lang=uk")
    # The browser asks for English, but the email's link opens the page in Ukrainian.
    page = page_text(client.get(link, HTTP_ACCEPT_LANGUAGE="en"))
    assert "Ще один крок" in page
    assert "Підтвердьте підписку на: The Daily Digest" in page
    assert f'action="{link}"' in page  # the button keeps the language
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(link, HTTP_ACCEPT_LANGUAGE="en")
    assert "Ви підписалися" in page_text(confirmed)
    assert ConsentRecord.objects.get(kind=ConsentRecord.Kind.CONFIRMATION).consent_text == (
        "Підтвердьте підписку на: The Daily Digest"
    )

    welcome = mail.outbox[1]
    assert welcome.subject == "Ласкаво просимо до «The Daily Digest»"
    assert "Як часто: Щодня." in welcome.body
    unsubscribe = re.search(r"Відписатися: https://news\.example\.org(\S+)", welcome.body).group(1)
    assert unsubscribe.endswith("?lang=uk")
    assert welcome.extra_headers["List-Unsubscribe"].startswith("<https://news.example.org/")
    page = page_text(client.get(unsubscribe, HTTP_ACCEPT_LANGUAGE="en"))
    assert "Відписатися від «The Daily Digest»?" in page
    done = page_text(client.post(unsubscribe, HTTP_ACCEPT_LANGUAGE="en"))
    assert "Ви відписалися від «The Daily Digest»." in done
    assert "?lang=uk" in re.search(r'href="(/preferences/[^"]+)"', done).group(1)


def test_an_english_subscriber_reads_english_email(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True), translation.override("uk"):
        # Whatever language the worker happens to be in, the subscriber's own is used.
        services.subscribe(
            email="ann@example.org",
            newsletters=[Newsletter.objects.get(slug="daily-digest")],
            source=Subscription.Source.FORM,
            consent=services.ConsentContext(),
            language="en",
        )
    (message,) = mail.outbox
    assert message.subject == "Confirm your subscription to The Daily Digest"
    assert confirmation_link(message).endswith("?lang=en")


def test_a_subscriber_with_no_language_gets_the_sites(django_capture_on_commit_callbacks, settings):
    settings.LANGUAGE_CODE = "uk"
    with django_capture_on_commit_callbacks(execute=True):
        services.subscribe(
            email="ann@example.org",
            newsletters=[Newsletter.objects.get(slug="daily-digest")],
            source=Subscription.Source.FORM,
            consent=services.ConsentContext(),
        )
    assert mail.outbox[0].subject.startswith("Підтвердьте підписку")


# Embeds ----------------------------------------------------------------------------------


def test_the_ukrainian_embed_speaks_ukrainian_on_both_paths(client) -> None:
    daily = Newsletter.objects.get(slug="daily-digest")
    script = embeds.signup_script_snippet([daily], language="uk")
    snippet = embeds.signup_html_snippet([daily], language="uk")

    # The script's form, fetched from us, whatever the browser asks for.
    assert 'lang="uk"' in script
    assert "Підписатися на «The Daily Digest»" in script  # the link shown without JavaScript
    fragment_url = unescape(re.search(r'data-newsroom-signup="([^"]+)"', script).group(1))
    fragment = page_text(
        client.get(fragment_url.removeprefix("https://news.example.org"), HTTP_ACCEPT_LANGUAGE="en")
    )
    assert "Адреса електронної пошти" in fragment
    assert "Забагато спроб. Зачекайте кілька хвилин" in fragment  # the inline rate-limit text

    # The plain form.
    assert 'lang="uk"' in snippet
    assert "Адреса електронної пошти" in snippet
    action = re.search(r'action="([^"]+)"', snippet).group(1)
    assert action == "https://news.example.org/subscribe/embed/?lang=uk"

    # Without JavaScript the form posts to that action; the pages after it speak Ukrainian
    # whatever the browser asks for.
    path = action.removeprefix("https://news.example.org")
    refused = client.post(
        path, {"email": "nope", "newsletters": "daily-digest"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert UK_INVALID in page_text(refused)
    second_step = page_text(
        client.post(
            path,
            {"email": "olena@example.org", "newsletters": "daily-digest"},
            HTTP_ACCEPT_LANGUAGE="en",
        )
    )
    # The plain form carries no fresh token: the reader confirms on our page, in Ukrainian.
    assert "Підтвердьте, що хочете підписатися" in second_step
    assert 'action="/subscribe/?lang=uk"' in second_step
    accepted = client.post(
        "/subscribe/?lang=uk",
        {
            "email": "olena@example.org",
            "newsletters": "daily-digest",
            "form_token": human_form_token(),
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert accepted["Location"] == "/subscribe/thanks/?lang=uk"
    assert UK_THANKS in page_text(client.get(accepted["Location"], HTTP_ACCEPT_LANGUAGE="en"))
    assert Subscriber.objects.get(email="olena@example.org").language == "uk"


def test_the_ukrainian_goal_embed_and_its_plural_words(client) -> None:
    snippet = embeds.goal_snippet(language="uk")
    assert "Стати учасником" in snippet
    fragment_url = re.search(r'data-newsroom-goal="([^"]+)"', snippet).group(1)
    assert fragment_url.endswith("/embed/goal/?lang=uk")

    fragment = page_text(client.get(fragment_url.removeprefix("https://news.example.org")))
    assert '<section class="membership-banner" lang="uk"' in fragment
    assert 'data-members-word-one="учасник"' in fragment
    assert 'data-members-word-few="учасники"' in fragment
    assert 'data-members-word-many="учасників"' in fragment
    assert "Стати учасником" in fragment


def test_the_banners_words_follow_each_languages_plural_rules() -> None:
    with translation.override("en"):
        assert members_words() == {
            "one": "member",
            "few": "members",
            "many": "members",
            "other": "members",
        }
    with translation.override("uk"):
        words = members_words()
    assert (words["one"], words["few"], words["many"]) == ("учасник", "учасники", "учасників")


# The catalog ----------------------------------------------------------------------------

MESSAGE_SOURCES = ["manage.py", "newsroom", "subscriptions", "templates", "locale"]


def _tools_present() -> bool:
    return all(shutil.which(tool) for tool in ("xgettext", "msgmerge", "msgfmt"))


needs_gettext = pytest.mark.skipif(
    not _tools_present() and os.environ.get("CI", "").lower() != "true",
    reason="needs GNU gettext (xgettext, msgmerge, msgfmt); .ci/run installs it",
)


def _msgfmt() -> str:
    return shutil.which("msgfmt") or "msgfmt"


def _statistics(po: Path) -> str:
    result = subprocess.run(  # noqa: S603 - gettext's own tool and our files
        [_msgfmt(), "--check", "--statistics", "-o", os.devnull, str(po)],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stderr


@needs_gettext
def test_every_marked_string_is_in_the_catalog_and_translated(tmp_path) -> None:
    # Extract afresh from a copy of the sources, merging into a copy of the catalog:
    # anything marked but missing from it shows up untranslated.
    for name in MESSAGE_SOURCES:
        source = ROOT / name
        target = tmp_path / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target)
    env = {**os.environ, "DEBUG": "true", "DJANGO_SETTINGS_MODULE": "newsroom.settings"}
    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "--all", "--no-obsolete"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        check=True,
    )

    for language, _ in settings.LANGUAGES:
        if language == settings.LANGUAGE_CODE:
            continue
        stats = _statistics(tmp_path / "locale" / language / "LC_MESSAGES" / "django.po")
        assert re.fullmatch(r"\d+ translated messages\.\n", stats), f"{language}: {stats}"


@needs_gettext
def test_the_committed_mo_files_match_their_catalogs(tmp_path) -> None:
    for language, _ in settings.LANGUAGES:
        if language == settings.LANGUAGE_CODE:
            continue
        folder = ROOT / "locale" / language / "LC_MESSAGES"
        compiled = tmp_path / f"{language}.mo"
        subprocess.run(  # noqa: S603 - gettext's own tool and our files
            [_msgfmt(), "--check", "-o", str(compiled), str(folder / "django.po")], check=True
        )
        with open(compiled, "rb") as fresh, open(folder / "django.mo", "rb") as committed:
            fresh_catalog = gettext.GNUTranslations(fresh)._catalog
            committed_catalog = gettext.GNUTranslations(committed)._catalog
        assert committed_catalog == fresh_catalog, f"run `make messages` for {language}"


def test_every_supported_language_but_the_default_ships_a_catalog() -> None:
    for language, _ in settings.LANGUAGES:
        if language != settings.LANGUAGE_CODE:
            assert (ROOT / "locale" / language / "LC_MESSAGES" / "django.mo").is_file()
