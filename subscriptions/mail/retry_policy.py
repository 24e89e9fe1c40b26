"""Which failures to send an email are worth another attempt, and when it comes.

A permanent failure marks the outbox row failed at once (an editor can retry it from the
admin once the cause is fixed); anything else is retried with backoff up to
OUTBOX_MAX_ATTEMPTS, so an error we cannot place costs a few attempts, not an email.
"""

import random
import smtplib

from anymail.exceptions import (
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
    AnymailSerializationError,
    AnymailUnsupportedFeature,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# The same message with the same settings fails the same way, whatever the ESP said.
_PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    # The ESP refused every recipient; some (SparkPost, Mandrill, Mailjet...) say so
    # inside a 200 answer, so the status code alone would call it transient.
    AnymailRecipientsRefused,
    AnymailInvalidAddress,
    AnymailUnsupportedFeature,
    AnymailSerializationError,
    # A missing API key, an unknown backend, a package not installed; anymail's
    # AnymailConfigurationError is one of these.
    ImproperlyConfigured,
)

# HTTP 4xx answers that are about the moment, not the request.
_TRANSIENT_CLIENT_ERRORS = frozenset({408, 429})  # Request Timeout, Too Many Requests


def is_permanent_failure(exc: BaseException) -> bool:
    """Whether sending the same message again cannot succeed.

    SMTP is judged by the server's reply code, not the exception's type (RFC 5321 §4.2.1:
    5yz is a permanent negative reply, 4yz a transient one). Connection errors and
    timeouts carry no answer from the other side and are transient.
    """
    if isinstance(exc, _PERMANENT_ERRORS):
        return True
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        # One recipient greylisted (451) while another is unknown (550) may still go
        # through later; only a refusal of every recipient for good is permanent.
        codes = [code for code, _message in exc.recipients.values()]
        return bool(codes) and all(_is_permanent_smtp_reply(code) for code in codes)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _is_permanent_smtp_reply(exc.smtp_code)
    status = _http_status(exc)
    return status is not None and 400 <= status < 500 and status not in _TRANSIENT_CLIENT_ERRORS


def retry_countdown(attempts: int) -> float:
    """Exponential backoff with jitter (spreads retries after an ESP outage).

    The ceiling (OUTBOX_RETRY_MAX_SECONDS) stays well below Redis's visibility_timeout,
    so a retry waiting in the queue is never redelivered as a duplicate.
    """
    base = settings.OUTBOX_RETRY_BASE_SECONDS
    ceiling = min(settings.OUTBOX_RETRY_MAX_SECONDS, base * 2 ** max(attempts - 1, 0))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


def _is_permanent_smtp_reply(code: int) -> bool:
    return 500 <= code < 600


def _http_status(exc: BaseException) -> int | None:
    """The ESP's HTTP status, from anymail's error or the response it carries; None when
    the request got no answer (refused connection, timeout)."""
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None
