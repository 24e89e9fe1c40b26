"""What we learn about the reader from the request: address and proof-of-consent context."""

import ipaddress
import unicodedata

from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import Promise

from subscriptions.signup.transitions import (
    DEFAULT_CONSENT_TEXT,
    MAX_CONSENT_TEXT_LENGTH,
    ConsentContext,
)


def client_ip(request: HttpRequest) -> str | None:
    """The reader's IP: the socket peer, or, behind TRUSTED_PROXY_COUNT proxies, the
    address the outermost trusted proxy saw.

    Each proxy appends the address it received the request from to X-Forwarded-For,
    so only the last TRUSTED_PROXY_COUNT entries were written by us; anything to
    their left came from the client and may be forged.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    proxies = settings.TRUSTED_PROXY_COUNT
    if not proxies:
        return peer
    forwarded = [
        part.strip()
        for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        if part.strip()
    ]
    if len(forwarded) < proxies:
        return peer
    candidate = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return peer


def client_network(ip: str | None) -> str:
    """What the per-IP rate limits count a client under: its IPv4 address, or the /64
    its IPv6 address belongs to.

    An IPv6 client is routinely given a whole /64 (SLAAC needs one, and ISPs hand out
    a /64 or more per customer, RFC 6177), so counting single addresses would give one
    client 2^64 fresh limits. An IPv4 address mapped into IPv6 (``::ffff:a.b.c.d``, as
    a dual-stack socket reports it) is that IPv4 client, not a /64 shared by them all.
    """
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def consent_from_request(
    request: HttpRequest,
    *,
    page_url: object = "",
    consent_text: str | Promise = DEFAULT_CONSENT_TEXT,
) -> ConsentContext:
    """The proof-of-consent context: where the reader was, from where, and the words
    they were shown."""
    if not isinstance(page_url, str):
        page_url = ""
    return ConsentContext(
        ip_address=client_ip(request),
        user_agent=_printable(request.META.get("HTTP_USER_AGENT", ""))[:500],
        page_url=_printable(page_url or request.META.get("HTTP_REFERER", ""))[:2000],
        # Line breaks become spaces; other control characters go.
        consent_text=_printable(" ".join(str(consent_text).split()))[:MAX_CONSENT_TEXT_LENGTH],
    )


def _printable(value: str) -> str:
    # Control characters (NUL above all: PostgreSQL refuses it in text) are dropped.
    return "".join(ch for ch in value if unicodedata.category(ch) != "Cc")
