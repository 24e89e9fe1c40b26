"""The newcomer's local outbox: every email lands as an .eml file, browsable with its
links clickable while DEBUG is on, and never shown otherwise; the whole sign-up can be
walked from it without an ESP."""

import email
import email.policy
import importlib
import re
from email.message import EmailMessage as MimeMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.mail import EmailMessage, EmailMultiAlternatives, get_connection
from django.http import Http404
from django.urls import clear_url_caches, include, path

from newsroom import urls as root_urls
from newsroom.dev_outbox import outbox_detail
from subscriptions.models import ConsentRecord, Subscription
from tests.factories import NewsletterFactory, with_form_token

BACKEND = "newsroom.dev_outbox.OutboxFileBackend"
CONFIRM_URL = "https://news.example.org/confirm/eyJzIjpbMV19:1tTest:AbC-dEf_123/"

# The outbox is mounted only when DEBUG is on at import time of newsroom.urls, which the
# test settings never are; this URLconf mounts it regardless, so the views' own DEBUG
# check is what the tests below exercise.
urlpatterns = [
    path("dev/outbox/", include("newsroom.dev_outbox")),
    *root_urls.urlpatterns,
]
with_outbox_urls = pytest.mark.urls(__name__)


@pytest.fixture
def outbox_dir(settings, tmp_path: Path) -> Path:
    settings.DEV_OUTBOX_DIR = tmp_path / "outbox"
    return settings.DEV_OUTBOX_DIR


def outbox_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.eml")) if directory.is_dir() else []


def read_eml(file: Path) -> MimeMessage:
    return email.message_from_bytes(file.read_bytes(), policy=email.policy.default)


def send(*messages: EmailMessage) -> int:
    return get_connection(BACKEND).send_messages(list(messages))


# --- the backend ------------------------------------------------------------------------


def test_the_file_backend_writes_one_eml_file_per_message(outbox_dir: Path) -> None:
    html = EmailMultiAlternatives(
        "Confirm your subscription", "Plain body", "from@example.org", ["ann@example.org"]
    )
    html.attach_alternative("<p>HTML body</p>", "text/html")
    plain = EmailMessage("Welcome", "Hello Bob", "from@example.org", ["bob@example.org"])

    sent = send(html, plain)

    assert sent == 2
    files = outbox_files(outbox_dir)
    assert len(files) == 2
    by_to = {read_eml(f)["To"]: read_eml(f) for f in files}
    assert set(by_to) == {"ann@example.org", "bob@example.org"}
    assert by_to["ann@example.org"]["Subject"] == "Confirm your subscription"
    assert by_to["ann@example.org"].get_body(("html",)).get_content().strip() == (
        "<p>HTML body</p>"
    )
    assert by_to["bob@example.org"].get_body(("plain",)).get_content().strip() == "Hello Bob"


# --- the pages --------------------------------------------------------------------------


@with_outbox_urls
def test_the_list_shows_each_message_subject_when_debug_is_on(
    client, settings, outbox_dir: Path
) -> None:
    settings.DEBUG = True
    send(EmailMessage("Confirm your subscription to The Briefing", "Body", to=["a@example.org"]))
    send(EmailMessage("Welcome to Weekend Reads", "Body", to=["b@example.org"]))

    response = client.get("/dev/outbox/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Confirm your subscription to The Briefing" in page
    assert "Welcome to Weekend Reads" in page
    for file in outbox_files(outbox_dir):
        assert f'href="/dev/outbox/{file.stem}/"' in page


@with_outbox_urls
def test_the_detail_page_shows_the_text_body_with_the_link_clickable(
    client, settings, outbox_dir: Path
) -> None:
    settings.DEBUG = True
    send(
        EmailMessage(
            "Confirm your subscription",
            f"Please confirm:\n{CONFIRM_URL}\n\nThanks.",
            to=["ann@example.org"],
        )
    )
    (file,) = outbox_files(outbox_dir)

    response = client.get(f"/dev/outbox/{file.stem}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Please confirm:" in page
    assert f'<a href="{CONFIRM_URL}"' in page


@with_outbox_urls
def test_markup_in_a_message_is_escaped_on_the_pages(client, settings, outbox_dir: Path) -> None:
    settings.DEBUG = True
    send(EmailMessage("<script>alert(1)</script>", "<script>alert(2)</script>", to=["a@x.org"]))
    (file,) = outbox_files(outbox_dir)

    listing = client.get("/dev/outbox/").content.decode()
    detail = client.get(f"/dev/outbox/{file.stem}/").content.decode()

    assert "<script>alert(1)</script>" not in listing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "<script>alert(2)</script>" not in detail
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in detail


@with_outbox_urls
def test_a_message_not_in_the_outbox_is_not_found(client, settings, outbox_dir: Path) -> None:
    settings.DEBUG = True
    send(EmailMessage("Hello", "Body", to=["a@example.org"]))

    assert client.get("/dev/outbox/no-such-message/").status_code == 404


def test_the_detail_view_never_reads_outside_the_outbox(rf, settings, outbox_dir: Path) -> None:
    settings.DEBUG = True
    send(EmailMessage("Hello", "Body", to=["a@example.org"]))
    outside = outbox_dir.parent / "secret.eml"
    outside.write_bytes(b"Subject: secret\r\n\r\nnot for the outbox\r\n")

    with pytest.raises(Http404):
        outbox_detail(rf.get("/"), name="../secret")


@with_outbox_urls
def test_both_pages_answer_404_when_debug_is_off(client, settings, outbox_dir: Path) -> None:
    settings.DEBUG = False
    send(EmailMessage("Confirm your subscription", CONFIRM_URL, to=["ann@example.org"]))
    (file,) = outbox_files(outbox_dir)

    assert client.get("/dev/outbox/").status_code == 404
    assert client.get(f"/dev/outbox/{file.stem}/").status_code == 404


def test_the_outbox_urls_are_mounted_only_when_debug_is_on_at_import(settings) -> None:
    try:
        settings.DEBUG = True
        with_debug = [str(p.pattern) for p in importlib.reload(root_urls).urlpatterns]
        settings.DEBUG = False
        without_debug = [str(p.pattern) for p in importlib.reload(root_urls).urlpatterns]
    finally:
        settings.DEBUG = False
        importlib.reload(root_urls)
        clear_url_caches()

    assert "dev/outbox/" in with_debug
    assert "dev/outbox/" not in without_debug


# --- end to end -------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_confirm_link_in_the_outbox_confirms_the_signup(
    client, settings, outbox_dir: Path, django_capture_on_commit_callbacks
) -> None:
    settings.EMAIL_BACKEND = BACKEND
    newsletter = NewsletterFactory(name="The Briefing")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/subscriptions",
            with_form_token({"email": "ann@example.org", "newsletters": [newsletter.slug]}),
            content_type="application/json",
        )
    assert response.status_code == 202

    (file,) = outbox_files(outbox_dir)
    message = read_eml(file)
    assert message["To"] == "ann@example.org"
    assert message["Subject"] == "Confirm your subscription to The Briefing"
    text = message.get_body(("plain",)).get_content()
    (confirm_url,) = re.findall(r"https?://\S+/confirm/\S+", text)
    assert confirm_url.startswith(f"{settings.SITE_URL}/confirm/")
    confirm_path = urlsplit(confirm_url).path

    shown = client.get(confirm_path)
    assert shown.status_code == 200
    assert Subscription.objects.get().status == Subscription.Status.PENDING

    with django_capture_on_commit_callbacks(execute=True):
        confirmed = client.post(confirm_path)

    assert confirmed.status_code == 200
    subscription = Subscription.objects.get()
    assert subscription.status == Subscription.Status.ACTIVE
    assert subscription.consent_records.filter(kind=ConsentRecord.Kind.CONFIRMATION).exists()
    welcome = [read_eml(f) for f in outbox_files(outbox_dir) if f != file]
    assert [(m["To"], m["List-Unsubscribe-Post"]) for m in welcome] == [
        ("ann@example.org", "List-Unsubscribe=One-Click")
    ]
