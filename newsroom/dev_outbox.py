"""A browsable local outbox for development: an email backend that writes each message
to DEV_OUTBOX_DIR as an .eml file, and DEBUG-only pages that list and show them with
their links clickable, so the whole sign-up flow can be walked without an ESP."""

import email
import email.policy
import uuid
from collections.abc import Sequence
from email.message import EmailMessage as MimeMessage
from pathlib import Path

from csp.decorators import csp_update
from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone


class OutboxFileBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        directory = Path(settings.DEV_OUTBOX_DIR)
        directory.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
            name = f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            (directory / name).write_bytes(message.message().as_bytes())
        return len(email_messages)


def _read(path: Path) -> MimeMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def _messages() -> list[tuple[str, MimeMessage]]:
    directory = Path(settings.DEV_OUTBOX_DIR)
    if not directory.is_dir():
        return []
    files = sorted(directory.glob("*.eml"), reverse=True)[:200]
    return [(f.stem, _read(f)) for f in files]


def outbox_list(request: HttpRequest) -> HttpResponse:
    _require_debug()
    return render(request, "dev_outbox/list.html", {"emails": _messages()})


# Email HTML relies on inline styles (mail clients need them); the preview iframe
# inherits this page's policy, so this one development-only page allows them.
@csp_update({"style-src": ["'unsafe-inline'"]})  # type: ignore[arg-type] # untyped decorator
def outbox_detail(request: HttpRequest, name: str) -> HttpResponse:
    _require_debug()
    file = Path(settings.DEV_OUTBOX_DIR) / f"{name}.eml"
    if "/" in name or not file.is_file():
        raise Http404("No such message")
    message = _read(file)
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return render(
        request,
        "dev_outbox/detail.html",
        {
            "message": message,
            "headers": list(message.items()),
            "text": text.get_content() if text else "",
            "html": html.get_content() if html else "",
        },
    )


def _require_debug() -> None:
    # Belt and braces: the URLs are only mounted with DEBUG on, but a page that shows
    # other people's email must never answer in production.
    if not settings.DEBUG:
        raise Http404


app_name = "dev_outbox"
urlpatterns = [
    path("", outbox_list, name="list"),
    path("<str:name>/", outbox_detail, name="detail"),
]
