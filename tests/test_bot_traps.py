"""Bots are caught without a reader noticing: a signed render time and a honeypot on the
form (a trapped bot gets the normal answer and nothing is stored or sent), an optional
Turnstile or hCaptcha check that fails closed, and editors' blocked and allowed email
domains."""

import json
import re
import runpy
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import redis
from django.core import mail, signing
from django.urls import reverse

import newsroom.settings
from subscriptions.abuse import bot_traps, challenges, ratelimit
from subscriptions.abuse.bot_traps import form_token_looks_human, make_form_token
from subscriptions.abuse.challenges import Challenge, active_challenge
from subscriptions.models import (
    ConsentRecord,
    EmailDomainRule,
    OutboundEmail,
    Subscriber,
    Subscription,
    SubscriptionEvent,
)
from subscriptions.web.forms import CHALLENGE_FAILED_MESSAGE, CONFIRM_SIGNUP_MESSAGE
from subscriptions.web.views import SUCCESS_MESSAGE
from tests.factories import NewsletterFactory, human_form_token, with_form_token

pytestmark = pytest.mark.django_db

API = "/api/v1/subscriptions"
SIGNUP = reverse("subscriptions:signup")
THANKS = reverse("subscriptions:thanks")
REFUSED_DOMAIN = {"errors": {"email": ["Please, use a different email address"]}}
SETTINGS_FILE = Path(newsroom.settings.__file__)


@pytest.fixture
def newsletter():
    return NewsletterFactory(slug="the-briefing", name="The Briefing")


def post_api(client, payload: dict, **extra):
    """As our script posts: with a form token unless the payload brings its own."""
    payload = with_form_token({"newsletters": ["the-briefing"], **payload})
    return client.post(API, data=json.dumps(payload), content_type="application/json", **extra)


def post_form(client, fields: dict, **extra):
    return client.post(SIGNUP, {"newsletters": "the-briefing", **fields}, **extra)


def stored() -> dict[str, int]:
    return {
        model.__name__: model.objects.count()
        for model in (Subscriber, Subscription, SubscriptionEvent, ConsentRecord, OutboundEmail)
    }


NOTHING = dict.fromkeys(
    ["Subscriber", "Subscription", "SubscriptionEvent", "ConsentRecord", "OutboundEmail"], 0
)


def assert_nothing_stored_or_sent() -> None:
    assert stored() == NOTHING
    assert mail.outbox == []


def assert_signed_up(email: str = "ann@example.org") -> None:
    assert Subscription.objects.get().subscriber.email == email
    assert len(mail.outbox) == 1


# --- the signed render time -------------------------------------------------------------


def _tampered_token() -> str:
    """A bot's edit: an older render time pasted in front of a fresh signature."""
    old_payload = make_form_token(rendered_at=time.time() - 30).split(":", 1)[0]
    fresh_rest = make_form_token(rendered_at=time.time()).split(":", 1)[1]
    return f"{old_payload}:{fresh_rest}"


BAD_TOKENS = {
    "missing": lambda settings: None,
    "empty": lambda settings: "",
    "garbage": lambda settings: "not-a-token",
    "tampered": lambda settings: _tampered_token(),
    "other salt": lambda settings: signing.dumps(int(time.time() - 30), salt="another.salt"),
    "other key": lambda settings: signing.dumps(
        int(time.time() - 30), key="not-our-secret-key", salt=bot_traps._RENDER_TIME_SALT
    ),
    "too fast": lambda settings: make_form_token(rendered_at=time.time() - 0.5),
    "too old": lambda settings: make_form_token(
        rendered_at=time.time() - settings.SIGNUP_FORM_MAX_AGE_SECONDS - 60
    ),
    "from the future": lambda settings: make_form_token(rendered_at=time.time() + 3600),
    "not a number": lambda settings: signing.dumps({"t": 1}, salt=bot_traps._RENDER_TIME_SALT),
}


def assert_asked_to_confirm(response, email: str = "ann@example.org") -> str:
    """The second step: a page that says nothing happened yet, with the address filled
    in and a fresh token; returns that token."""
    assert response.status_code == 200
    page = response.content.decode()
    assert "Confirm you want to subscribe" in page
    assert "we have not signed you up yet" in page
    assert f'name="email" value="{email}"' in page
    (token,) = re.findall(r'name="form_token" value="([^"]*)"', page)
    assert bot_traps.read_form_token(token) is not None
    return token


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_a_form_that_may_not_be_a_person_gets_a_second_step_and_stores_nothing(
    client, settings, newsletter, django_capture_on_commit_callbacks, kind: str
) -> None:
    settings.SIGNUP_FORM_MIN_SECONDS = 2
    token = BAD_TOKENS[kind](settings)
    fields = {"email": "ann@example.org"}
    if token is not None:
        fields["form_token"] = token

    with django_capture_on_commit_callbacks(execute=True):
        response = post_form(client, fields)

    # Never "we've sent you an email" when nothing was stored.
    assert_asked_to_confirm(response)
    assert_nothing_stored_or_sent()


def test_the_form_rendered_thirty_seconds_ago_signs_the_reader_up(
    client, newsletter, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_form(
            client, {"email": "ann@example.org", "form_token": human_form_token(30)}
        )

    assert response.status_code == 302
    assert response["Location"] == THANKS
    assert_signed_up()


def test_the_render_time_window_follows_the_settings(settings, monkeypatch) -> None:
    settings.SIGNUP_FORM_MIN_SECONDS = 2
    settings.SIGNUP_FORM_MAX_AGE_SECONDS = 600
    token = make_form_token(rendered_at=1_000_000)

    for age, human in [(0, False), (1, False), (2, True), (600, True), (601, False)]:
        monkeypatch.setattr(bot_traps, "_now", lambda age=age: 1_000_000 + age)
        assert form_token_looks_human(token) is human, age


@pytest.mark.parametrize("url", ["/", "/newsletters/"])
def test_rendered_pages_carry_a_token_that_turns_human_after_a_few_seconds(
    client, newsletter, monkeypatch, url: str
) -> None:
    NewsletterFactory(slug="weekend-reads")
    page = client.get(url).content.decode()

    tokens = re.findall(r'<input type="hidden" name="form_token" value="([^"]*)">', page)
    assert tokens
    assert page.count('name="form_token"') == len(tokens)
    for token in tokens:
        assert not form_token_looks_human(token)  # submitted at once: a bot
    now = time.time()
    monkeypatch.setattr(bot_traps, "_now", lambda: now + 5)
    assert all(form_token_looks_human(token) for token in tokens)


def test_a_form_submitted_at_once_gets_a_second_step_and_confirming_signs_the_reader_up(
    client, newsletter, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    # Autofill and Enter within a second of the page loading: maybe a person.
    page = client.get("/newsletters/").content.decode()
    (token,) = re.findall(r'name="form_token" value="([^"]*)"', page)

    fresh = assert_asked_to_confirm(
        post_form(client, {"email": "ann@example.org", "form_token": token})
    )
    assert_nothing_stored_or_sent()

    now = time.time()
    monkeypatch.setattr(bot_traps, "_now", lambda: now + 5)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_form(client, {"email": "ann@example.org", "form_token": fresh})
    assert response["Location"] == THANKS
    assert_signed_up()


# --- the honeypot -----------------------------------------------------------------------


def test_the_form_with_the_honeypot_filled_gets_the_normal_answer_and_stores_nothing(
    client, newsletter, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_form(
            client,
            {"email": "ann@example.org", "form_token": human_form_token(), "website": "x"},
        )

    assert response.status_code == 302
    assert response["Location"] == THANKS
    assert_nothing_stored_or_sent()


@pytest.mark.parametrize("website", ["x", "https://spam.example", ["x"], 1, 0, {}, []])
def test_the_api_with_the_honeypot_filled_gets_the_normal_answer_and_stores_nothing(
    client, newsletter, django_capture_on_commit_callbacks, website
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_api(client, {"email": "ann@example.org", "website": website})

    assert response.status_code == 202
    assert response.json() == {"status": "pending", "message": SUCCESS_MESSAGE}
    assert_nothing_stored_or_sent()


# --- the API and the render time --------------------------------------------------------


def assert_api_asks_to_confirm(response) -> str:
    """Nothing was stored; the answer says so and carries a fresh token."""
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"errors", "form_token"}
    assert body["errors"] == {"form_token": [str(CONFIRM_SIGNUP_MESSAGE)]}
    assert bot_traps.read_form_token(body["form_token"]) is not None
    return body["form_token"]


def test_the_api_without_a_form_token_signs_no_one_up_and_hands_a_fresh_one(
    client, newsletter, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        fresh = assert_api_asks_to_confirm(
            post_api(client, {"email": "ann@example.org", "form_token": ""})
        )
    assert_nothing_stored_or_sent()

    now = time.time()
    monkeypatch.setattr(bot_traps, "_now", lambda: now + 5)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_api(client, {"email": "ann@example.org", "form_token": fresh})
    assert response.status_code == 202
    assert_signed_up()


def test_the_api_accepts_a_human_form_token(
    client, newsletter, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_api(client, {"email": "ann@example.org", "form_token": human_form_token()})

    assert response.status_code == 202
    assert_signed_up()


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_the_api_signs_no_one_up_with_a_form_token_that_may_not_be_a_person(
    client, settings, newsletter, django_capture_on_commit_callbacks, kind: str
) -> None:
    token = BAD_TOKENS[kind](settings)
    payload = {"email": "ann@example.org", "form_token": token if token is not None else ""}
    with django_capture_on_commit_callbacks(execute=True):
        assert_api_asks_to_confirm(post_api(client, payload))
    assert_nothing_stored_or_sent()


# --- one token, one mailbox -------------------------------------------------------------


def test_one_form_token_signs_up_one_mailbox_and_a_replay_for_another_is_refused(
    client, newsletter, django_capture_on_commit_callbacks
) -> None:
    """A token taken from a page once signed up four addresses and stayed valid for two
    days; now it serves the first mailbox it signs up."""
    token = human_form_token()
    with django_capture_on_commit_callbacks(execute=True):
        first = post_api(client, {"email": "ann@example.org", "form_token": token})
        again = post_api(client, {"email": "Ann+news@Example.org", "form_token": token})
        others = [
            post_api(client, {"email": email, "form_token": token})
            for email in ("bob@example.org", "carol@example.org", "dan@example.org")
        ]
        by_form = post_form(client, {"email": "eve@example.org", "form_token": token})

    assert first.status_code == 202
    # The same mailbox may send it again (a double click, a retry).
    assert again.status_code == 202
    for response in others:
        assert_api_asks_to_confirm(response)
    assert_asked_to_confirm(by_form, "eve@example.org")
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "Ann+news@example.org",
        "ann@example.org",
    ]


def test_a_token_that_failed_validation_still_serves_the_corrected_address(
    client, newsletter, django_capture_on_commit_callbacks
) -> None:
    token = human_form_token()
    typo = post_api(client, {"email": "ann@example", "form_token": token})
    with django_capture_on_commit_callbacks(execute=True):
        corrected = post_api(client, {"email": "ann@example.org", "form_token": token})

    assert typo.status_code == 400
    assert typo.json() == {"errors": {"email": ["Please, enter correct email address"]}}
    assert corrected.status_code == 202
    assert_signed_up()


def test_a_form_token_lives_an_hour_by_default(settings) -> None:
    assert settings.SIGNUP_FORM_MAX_AGE_SECONDS == 3600
    assert form_token_looks_human(human_form_token(3590))
    assert not form_token_looks_human(human_form_token(3610))


def test_a_page_left_open_longer_gets_a_second_step_not_a_false_success(
    client, newsletter, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_form(
            client, {"email": "ann@example.org", "form_token": human_form_token(2 * 3600)}
        )

    assert_asked_to_confirm(response)
    assert_nothing_stored_or_sent()


def test_another_site_fetches_a_fresh_token_that_no_cache_may_keep(client, monkeypatch) -> None:
    response = client.get("/api/v1/form-token", HTTP_ORIGIN="https://www.example.org")

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "no-store" in response["Cache-Control"]
    assert "Set-Cookie" not in response
    token = response.json()["form_token"]
    assert response.json()["min_seconds"] == 2
    assert client.get("/api/v1/form-token").json()["form_token"] != token
    assert not form_token_looks_human(token)  # posted at once: maybe a bot
    now = time.time()
    monkeypatch.setattr(bot_traps, "_now", lambda: now + 3)
    assert form_token_looks_human(token)


@pytest.mark.redis
def test_with_redis_down_a_token_is_not_checked_for_reuse_and_that_is_logged(
    spare_redis, settings, newsletter, client, caplog, django_capture_on_commit_callbacks
) -> None:
    settings.RATE_LIMIT_REDIS_URL = spare_redis.url
    token = human_form_token()
    spare_redis.stop()

    with django_capture_on_commit_callbacks(execute=True):
        first = post_api(client, {"email": "ann@example.org", "form_token": token})
        second = post_api(client, {"email": "bob@example.org", "form_token": token})

    # A reader's sign-up matters more than a missed check; the time trap still stood.
    assert (first.status_code, second.status_code) == (202, 202)
    assert "Redis unavailable (unreachable" in caplog.text
    assert "for form-token" in caplog.text
    assert ratelimit.fail_open_counts()[("form-token", "unreachable")] >= 2


@pytest.mark.redis
def test_the_mailbox_a_token_serves_is_kept_in_redis_hashed(
    spare_redis, settings, newsletter, client, django_capture_on_commit_callbacks
) -> None:
    settings.RATE_LIMIT_REDIS_URL = spare_redis.url
    with django_capture_on_commit_callbacks(execute=True):
        assert post_api(client, {"email": "ann@example.org"}).status_code == 202

    store = redis.Redis.from_url(spare_redis.url, decode_responses=True)
    (key,) = store.keys("form-token:*")
    assert "ann" not in store.get(key)
    assert 0 < store.ttl(key) <= settings.SIGNUP_FORM_MAX_AGE_SECONDS + 60


# --- the challenge ----------------------------------------------------------------------

SITE_KEY = "0x4AAAAAAA-site-key"
SECRET = "0x4AAAAAAA-secret"


class _Verifier(BaseHTTPRequestHandler):
    """Stands in for the provider's siteverify endpoint."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        fields = dict(parse_qsl(self.rfile.read(length).decode()))
        self.server.seen.append(fields)
        ok = fields.get("response") == "good-token" and fields.get("secret") == SECRET
        verdict = self.server.verdict if self.server.verdict is not None else {"success": ok}
        body = json.dumps(verdict).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def verifier():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Verifier)
    server.seen = []
    server.verdict = None  # set to answer with that JSON instead of the honest one
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/siteverify"
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def use_challenge(settings, name: str, verify_url: str) -> None:
    settings.SIGNUP_CHALLENGE = name
    settings.SIGNUP_CHALLENGE_SITE_KEY = SITE_KEY
    settings.SIGNUP_CHALLENGE_SECRET_KEY = SECRET
    settings.SIGNUP_CHALLENGE_VERIFY_URL = verify_url


@pytest.fixture
def turnstile(settings, verifier):
    use_challenge(settings, "turnstile", verifier.url)
    return verifier


def csp_directives(response) -> dict[str, list[str]]:
    return {
        name: values
        for name, *values in (
            part.split() for part in response["Content-Security-Policy"].split(";") if part.strip()
        )
    }


def test_the_challenge_is_off_by_default(client, settings, newsletter) -> None:
    assert settings.SIGNUP_CHALLENGE == ""
    assert active_challenge() is None
    NewsletterFactory(slug="weekend-reads")

    for url in ("/", "/newsletters/"):
        response = client.get(url)
        page = response.content.decode()
        for marker in ("cf-turnstile", "h-captcha", "challenges.cloudflare.com", "hcaptcha.com"):
            assert marker not in page
            assert marker not in response["Content-Security-Policy"]

    assert post_api(client, {"email": "ann@example.org"}).status_code == 202
    assert post_form(client, {"email": "bob@example.org", "form_token": human_form_token()})[
        "Location"
    ] == (THANKS)
    assert Subscriber.objects.count() == 2


def test_a_genuine_turnstile_answer_signs_the_reader_up(
    client, newsletter, turnstile, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_api(
            client,
            {"email": "ann@example.org", "cf-turnstile-response": "good-token"},
            REMOTE_ADDR="203.0.113.77",
        )

    assert response.status_code == 202
    assert_signed_up()
    assert turnstile.seen == [
        {"secret": SECRET, "response": "good-token", "remoteip": "203.0.113.77"}
    ]


def test_the_form_passes_the_turnstile_answer_on_too(client, newsletter, turnstile) -> None:
    response = post_form(
        client,
        {
            "email": "ann@example.org",
            "form_token": human_form_token(),
            "cf-turnstile-response": "good-token",
        },
    )

    assert response["Location"] == THANKS
    assert Subscriber.objects.get().email == "ann@example.org"
    assert [seen["response"] for seen in turnstile.seen] == ["good-token"]


@pytest.mark.parametrize("answer", ["bad", "", None, ["good-token"], "x" * 5000])
def test_a_failed_or_missing_turnstile_answer_is_refused_and_stores_nothing(
    client, newsletter, turnstile, answer
) -> None:
    payload = {"email": "ann@example.org"}
    if answer is not None:
        payload["cf-turnstile-response"] = answer

    response = post_api(client, payload)

    assert response.status_code == 400
    assert response.json() == {
        "errors": {"__all__": ["Please confirm you're not a robot and try again."]}
    }
    assert CHALLENGE_FAILED_MESSAGE == "Please confirm you're not a robot and try again."
    assert_nothing_stored_or_sent()
    # Only a plausible answer is worth a call to the provider.
    assert len(turnstile.seen) == (1 if answer == "bad" else 0)


def test_a_failed_turnstile_answer_on_the_form_shows_the_message(
    client, newsletter, turnstile
) -> None:
    response = post_form(
        client,
        {
            "email": "ann@example.org",
            "form_token": human_form_token(),
            "cf-turnstile-response": "x",
        },
    )

    assert response.status_code == 400
    assert "Please confirm you&#x27;re not a robot and try again." in response.content.decode()
    assert_nothing_stored_or_sent()


def test_the_challenge_fails_closed_when_the_provider_is_unreachable(
    client, settings, newsletter
) -> None:
    use_challenge(settings, "turnstile", "http://127.0.0.1:1/siteverify")

    response = post_api(client, {"email": "ann@example.org", "cf-turnstile-response": "good-token"})

    assert response.status_code == 400
    assert response.json() == {"errors": {"__all__": [CHALLENGE_FAILED_MESSAGE]}}
    assert_nothing_stored_or_sent()


def test_a_trapped_bot_costs_no_call_to_the_provider(client, newsletter, turnstile) -> None:
    response = post_api(
        client, {"email": "ann@example.org", "website": "x", "cf-turnstile-response": "bad"}
    )

    assert response.status_code == 202
    assert turnstile.seen == []
    assert_nothing_stored_or_sent()


def test_pages_show_one_turnstile_widget_per_form_and_load_its_script(
    client, newsletter, turnstile
) -> None:
    NewsletterFactory(slug="weekend-reads")
    widget = f'<div class="cf-turnstile" data-sitekey="{SITE_KEY}"></div>'
    script = '<script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer>'

    for url in ("/", "/newsletters/", "/newsletters/the-briefing/"):
        page = client.get(url).content.decode()
        forms = page.count('<form class="signup-form')
        assert forms >= 1
        assert page.count(widget) == forms, url
        assert page.count(script) == 1


def test_the_content_security_policy_lets_the_configured_challenge_load(
    client, settings, newsletter, monkeypatch, turnstile
) -> None:
    """CONTENT_SECURITY_POLICY is built from SIGNUP_CHALLENGE when settings load, so load
    them the way a deployment with SIGNUP_CHALLENGE=turnstile would."""
    monkeypatch.setenv("SIGNUP_CHALLENGE", "turnstile")
    deployed = runpy.run_path(str(SETTINGS_FILE))
    settings.CONTENT_SECURITY_POLICY = deployed["CONTENT_SECURITY_POLICY"]

    directives = csp_directives(client.get("/"))

    assert "https://challenges.cloudflare.com" in directives["script-src"]
    assert "https://challenges.cloudflare.com" in directives["frame-src"]
    assert "'unsafe-inline'" not in directives["script-src"]
    assert directives["default-src"] == ["'self'"]


def test_hcaptcha_works_the_same_way_with_its_own_field(
    client, settings, newsletter, verifier, monkeypatch
) -> None:
    use_challenge(settings, "hcaptcha", verifier.url)

    wrong_field = post_api(
        client, {"email": "ann@example.org", "cf-turnstile-response": "good-token"}
    )
    assert wrong_field.status_code == 400
    assert wrong_field.json() == {"errors": {"__all__": [CHALLENGE_FAILED_MESSAGE]}}
    assert Subscriber.objects.count() == 0

    right = post_api(client, {"email": "ann@example.org", "h-captcha-response": "good-token"})
    assert right.status_code == 202
    assert Subscriber.objects.get().email == "ann@example.org"
    assert verifier.seen[-1]["response"] == "good-token"

    page = client.get("/newsletters/").content.decode()
    assert f'<div class="h-captcha" data-sitekey="{SITE_KEY}"></div>' in page
    assert '<script src="https://js.hcaptcha.com/1/api.js" async defer>' in page

    monkeypatch.setenv("SIGNUP_CHALLENGE", "hcaptcha")
    policy = runpy.run_path(str(SETTINGS_FILE))["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]
    assert {"https://hcaptcha.com", "https://*.hcaptcha.com"} <= set(policy["script-src"])
    assert {"https://hcaptcha.com", "https://*.hcaptcha.com"} <= set(policy["frame-src"])


def test_hcaptcha_verification_names_our_site_key(client, settings, newsletter, verifier) -> None:
    use_challenge(settings, "hcaptcha", verifier.url)

    response = post_api(
        client,
        {"email": "ann@example.org", "h-captcha-response": "good-token"},
        REMOTE_ADDR="203.0.113.77",
    )

    assert response.status_code == 202
    assert verifier.seen == [
        {
            "secret": SECRET,
            "response": "good-token",
            "remoteip": "203.0.113.77",
            "sitekey": SITE_KEY,
        }
    ]


@pytest.mark.parametrize(
    "verdict",
    [{"success": "false"}, {"success": 1}, [{"success": True}], "success", {}],
    ids=["string-false", "one", "list", "string", "empty"],
)
def test_only_a_literal_success_from_the_provider_lets_a_reader_in(
    client, newsletter, turnstile, verdict
) -> None:
    turnstile.verdict = verdict

    response = post_api(client, {"email": "ann@example.org", "cf-turnstile-response": "good-token"})

    assert response.status_code == 400
    assert response.json() == {"errors": {"__all__": [CHALLENGE_FAILED_MESSAGE]}}
    assert_nothing_stored_or_sent()


class _AlwaysRefuses(Challenge):
    """A provider of our own, recording what it was asked."""

    name = "always-refuses"
    response_field = "always-refuses-response"
    script_url = "https://challenge.example/widget.js"
    widget_class = "always-refuses"
    asked: list[tuple[object, str | None]] = []

    def verify(self, response: object, *, remote_ip: str | None) -> bool:
        self.asked.append((response, remote_ip))
        return False


def test_a_new_challenge_needs_only_the_interface(
    client, settings, newsletter, monkeypatch
) -> None:
    """The form and the pages use nothing but `Challenge`: a provider of our own plugs in."""
    monkeypatch.setitem(challenges.CHALLENGES, "always-refuses", _AlwaysRefuses)
    monkeypatch.setattr(_AlwaysRefuses, "asked", [])
    settings.SIGNUP_CHALLENGE = "always-refuses"
    settings.SIGNUP_CHALLENGE_SITE_KEY = SITE_KEY

    refused = post_api(
        client,
        {"email": "ann@example.org", "always-refuses-response": "an answer"},
        REMOTE_ADDR="203.0.113.8",
    )
    page = client.get("/newsletters/").content.decode()

    assert refused.status_code == 400
    assert refused.json() == {"errors": {"__all__": [CHALLENGE_FAILED_MESSAGE]}}
    assert _AlwaysRefuses.asked == [("an answer", "203.0.113.8")]
    assert f'<div class="always-refuses" data-sitekey="{SITE_KEY}"></div>' in page
    assert '<script src="https://challenge.example/widget.js" async defer>' in page
    assert_nothing_stored_or_sent()


def test_an_unknown_challenge_name_is_a_clear_error(client, settings, newsletter) -> None:
    settings.SIGNUP_CHALLENGE = "recaptcha"

    with pytest.raises(
        ValueError, match=r"SIGNUP_CHALLENGE must be one of \['hcaptcha', 'turnstile'\]"
    ):
        active_challenge()
    with pytest.raises(ValueError, match="SIGNUP_CHALLENGE"):
        client.get("/")


# --- email domain rules -----------------------------------------------------------------


@pytest.mark.parametrize(
    "email", ["a@spam.example", "a@mail.spam.example", "A@Deep.Mail.SPAM.example"]
)
def test_a_blocked_domain_and_its_subdomains_are_refused(client, newsletter, email: str) -> None:
    EmailDomainRule.objects.create(domain="spam.example", kind=EmailDomainRule.Kind.BLOCK)

    api = post_api(client, {"email": email})
    form = post_form(client, {"email": email, "form_token": human_form_token()})

    assert api.status_code == 400
    assert api.json() == REFUSED_DOMAIN
    assert form.status_code == 400
    assert "Please, use a different email address" in form.content.decode()
    assert_nothing_stored_or_sent()


def test_a_block_covers_only_whole_labels(client, newsletter) -> None:
    EmailDomainRule.objects.create(domain="spam.example", kind=EmailDomainRule.Kind.BLOCK)

    assert post_api(client, {"email": "a@notspam.example"}).status_code == 202
    assert post_api(client, {"email": "b@spam.example.org"}).status_code == 202
    assert Subscriber.objects.count() == 2


def test_disposable_domains_are_refused_only_when_the_setting_is_on(
    client, settings, newsletter
) -> None:
    settings.BLOCK_DISPOSABLE_EMAIL_DOMAINS = True
    refused = post_api(client, {"email": "a@mailinator.com"})
    assert refused.status_code == 400
    assert refused.json() == REFUSED_DOMAIN
    assert Subscriber.objects.count() == 0

    EmailDomainRule.objects.create(domain="mailinator.com", kind=EmailDomainRule.Kind.ALLOW)
    assert post_api(client, {"email": "a@mailinator.com"}).status_code == 202
    assert Subscriber.objects.get().email == "a@mailinator.com"

    EmailDomainRule.objects.all().delete()
    settings.BLOCK_DISPOSABLE_EMAIL_DOMAINS = False
    assert post_api(client, {"email": "b@mailinator.com"}).status_code == 202
    assert Subscriber.objects.filter(email="b@mailinator.com").exists()


def test_a_rule_on_a_subdomain_overrides_its_parent(client, newsletter) -> None:
    EmailDomainRule.objects.create(domain="example.net", kind=EmailDomainRule.Kind.BLOCK)
    EmailDomainRule.objects.create(domain="staff.example.net", kind=EmailDomainRule.Kind.ALLOW)

    assert post_api(client, {"email": "a@staff.example.net"}).status_code == 202
    assert post_api(client, {"email": "a@other.example.net"}).json() == REFUSED_DOMAIN


ADD_RULE = reverse("admin:subscriptions_emaildomainrule_add")


def test_the_admin_stores_a_rule_domain_normalised(admin_client, client, newsletter) -> None:
    response = admin_client.post(
        ADD_RULE, {"domain": "  @Example.ORG. ", "kind": "block", "note": "spam wave"}
    )

    assert response.status_code == 302
    rule = EmailDomainRule.objects.get()
    assert (rule.domain, rule.kind) == ("example.org", "block")
    assert post_api(client, {"email": "x@news.example.org"}).json() == REFUSED_DOMAIN


@pytest.mark.parametrize(
    "domain", ["localhost", "not a domain", "<b>x</b>.org", "exa_mple.org", "a..b", "@", "."]
)
def test_the_admin_refuses_a_rule_that_is_not_a_domain(admin_client, domain: str) -> None:
    response = admin_client.post(ADD_RULE, {"domain": domain, "kind": "block", "note": ""})

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["domain"] == [
        "Enter a domain such as example.org."
    ]
    assert not EmailDomainRule.objects.exists()


def test_the_admin_refuses_a_second_rule_for_the_same_domain_in_another_spelling(
    admin_client,
) -> None:
    EmailDomainRule.objects.create(domain="example.org", kind=EmailDomainRule.Kind.BLOCK)

    response = admin_client.post(ADD_RULE, {"domain": "EXAMPLE.org.", "kind": "allow"})

    assert response.status_code == 200
    assert "domain" in response.context["adminform"].form.errors
    assert list(EmailDomainRule.objects.values_list("domain", "kind")) == [("example.org", "block")]
