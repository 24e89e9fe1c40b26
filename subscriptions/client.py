"""What we learn about the reader from the request: address and proof-of-consent context."""

import unicodedata

from django.http import HttpRequest

from subscriptions.transitions import DEFAULT_CONSENT_TEXT, ConsentContext


def client_ip(request: HttpRequest) -> str | None:
    # X-Forwarded-For is not trusted: any client can set it. The socket peer is what
    # we know for sure.
    return request.META.get("REMOTE_ADDR") or None


def consent_from_request(request: HttpRequest, *, page_url: object = "") -> ConsentContext:
    if not isinstance(page_url, str):
        page_url = ""
    return ConsentContext(
        ip_address=client_ip(request),
        user_agent=_printable(request.META.get("HTTP_USER_AGENT", ""))[:500],
        page_url=_printable(page_url or request.META.get("HTTP_REFERER", ""))[:2000],
        consent_text=DEFAULT_CONSENT_TEXT,
    )


def _printable(value: str) -> str:
    # Control characters (NUL above all: PostgreSQL refuses it in text) are dropped.
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cc")
