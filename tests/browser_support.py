"""A real Chromium for the browser tests: Debian's, driven by Playwright (a test tool's
own browser download does not work here). Without a Chromium the browser tests skip,
saying so; with CI=true they fail instead, so CI never passes without them.

Also: screenshots into test-artifacts/, axe-core (from the npm registry) run inside a
page, and a second web server for pages of "another site" that embed our forms.
"""

import http.server
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from subscriptions.membership import goal_counter

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
IN_CI = os.environ.get("CI", "").lower() == "true"
# Without the background-networking flags Chromium keeps calling Google's hosts, which
# this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs Chromium)")
    pytest.skip(f"browser tests skipped: {reason}")


@pytest.fixture(scope="session", autouse=True)
def _plain_http_live_server() -> Iterator[None]:
    """The live server is made once per session, and Django's SecurityMiddleware reads
    SECURE_SSL_REDIRECT when it is made: without this, every page would redirect the
    browser to an https:// the test server does not speak. (Each test turns the
    redirect off anyway; the redirect has tests of its own.)"""
    from django.test.utils import override_settings

    with override_settings(SECURE_SSL_REDIRECT=False):
        yield


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """One Chromium per test module: Playwright keeps an event loop running in this
    thread while it lives, so it must be gone before other modules' tests run."""
    executable = chromium_path()
    if executable is None:
        _unavailable("no Chromium found (install Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed")
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        # The tests call the ORM, synchronously, beside Playwright's event loop: safe
        # here, and allowed only for these tests (a deploy check run as a subprocess
        # by another test would rightly refuse the variable).
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def site(live_server, settings, monkeypatch) -> str:
    """Our site, served by a live server; emails link back to it."""
    settings.SITE_URL = live_server.url
    # Bot traps have tests of their own; a test types faster than the trap allows.
    settings.SIGNUP_FORM_MIN_SECONDS = 0
    monkeypatch.setattr(goal_counter, "POLL_SECONDS", 1)
    # The browser keeps the goal API's answer this long; with the production 10 s a
    # banner may show a count up to that old, longer than a test waits for each step.
    monkeypatch.setattr(goal_counter, "PUBLIC_MAX_AGE_SECONDS", 1)
    return live_server.url


@pytest.fixture
def page(browser, site) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def page_without_javascript(browser, site) -> Iterator[object]:
    context = browser.new_context(java_script_enabled=False, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def screenshot(page: object, name: str) -> Path:
    """Save the whole page as it looks now, for people to look at after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def screenshot_of(element: object, name: str) -> Path:
    """Save one part of the page (a form, a banner) as it looks now: the state a test
    reached, wherever on the page it is (Playwright scrolls it into view)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    element.screenshot(path=str(path))
    return path


def serious_accessibility_violations(page: object, *, context: str | None = None) -> list:
    """axe-core's serious and critical findings for the page (or one part of it)."""
    if not AXE.is_file():
        _unavailable("axe-core is not installed (npm ci)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate(
        "context => axe.run(context || document, {resultTypes: ['violations']})", context
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def announced_as(page: object, selector: str) -> dict:
    """How Chromium's accessibility tree exposes the first element matching selector
    to a screen reader: its role and live-region setting ("assertive", "polite" or
    "off"), read through the DevTools protocol rather than from our own attributes."""
    session = page.context.new_cdp_session(page)
    try:
        document = session.send("DOM.getDocument", {"depth": 0})
        found = session.send(
            "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": selector}
        )
        node = session.send("Accessibility.getPartialAXTree", {"nodeId": found["nodeId"]})
    finally:
        session.detach()
    element = node["nodes"][0]
    properties = {p["name"]: p["value"].get("value") for p in element.get("properties", [])}
    return {
        "role": element.get("role", {}).get("value"),
        "live": properties.get("live", "off"),
        "ignored": element.get("ignored", False),
    }


class AnotherSite:
    """A web server on another origin, serving pages that embed our snippets."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        handler = _quiet_handler(folder)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def publish(self, name: str, body: str, *, head: str = "") -> str:
        (self.folder / name).write_text(
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Another site</title>{head}</head><body><main><h1>A partner's article</h1>"
            f"{body}</main></body></html>",
            encoding="utf-8",
        )
        return f"{self.origin}/{name}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _quiet_handler(folder: Path) -> type:
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Quiet: the test says what failed."""

    return Handler


@pytest.fixture
def another_site(tmp_path, settings) -> Iterator[AnotherSite]:
    server = AnotherSite(tmp_path)
    settings.CORS_ALLOWED_ORIGINS = [server.origin]
    yield server
    server.stop()
