"""The edge to the ESPs: anymail's webhook views, and its tracking and inbound signals.

Every anymail webhook URL keeps its shape (/anymail/<esp>/tracking/, .../inbound/), but
each view is wrapped (`ConfiguredWebhook`): a provider this site does not use answers
404; with DEBUG off and no ANYMAIL_WEBHOOK_SECRET every event is refused; a body
anymail cannot read answers 400, not 500. anymail then checks the basic-auth secret
and any provider signature, and normalises each provider's payload to one
`AnymailTrackingEvent`. The receivers below narrow that, with each provider's rule in
`subscriptions.deliverability.esp_rules`, to the events that change something for us and store them;
the work happens in a Celery task, so the ESP gets its 200 quickly and does not time
out and retry.
"""

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, ClassVar

from anymail import urls as anymail_urls
from anymail.exceptions import (
    AnymailAPIError,
    AnymailConfigurationError,
    AnymailWebhookValidationFailure,
)
from anymail.signals import AnymailInboundEvent, AnymailTrackingEvent, inbound, tracking
from anymail.utils import get_anymail_setting
from django.conf import settings
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import URLPattern

from subscriptions.deliverability import delivery_events, esp_rules
from subscriptions.exceptions import TokenInvalid
from subscriptions.signup import services
from subscriptions.tokens import unsubscribe_token

logger = logging.getLogger(__name__)

_BACKENDS = "anymail.backends."


def _esp_of(view_class: type) -> str:
    # anymail keeps one module per provider, named as in its URLs and its backends
    # (anymail.webhooks.amazon_ses, /anymail/amazon_ses/, anymail.backends.amazon_ses).
    return view_class.__module__.rpartition(".")[2]


# Every provider anymail has webhooks for, as named in /anymail/<esp>/.
WEBHOOK_ESPS = frozenset(
    _esp_of(pattern.callback.view_class) for pattern in anymail_urls.urlpatterns
)


def configured_esps() -> frozenset[str]:
    """The providers this site uses: EMAIL_BACKEND's, when it is one of anymail's, and
    those ESP_WEBHOOKS lists. Read per request, so a settings change needs no reload."""
    names = {name.strip().lower() for name in settings.ESP_WEBHOOKS}
    backend_module = settings.EMAIL_BACKEND.rpartition(".")[0]
    if backend_module.startswith(_BACKENDS):
        names.add(backend_module.removeprefix(_BACKENDS))
    names.discard("")
    return frozenset(names)


def mounted_esps() -> frozenset[str]:
    """The configured providers that have webhooks (SMTP and anymail's test backend
    have none)."""
    return configured_esps() & WEBHOOK_ESPS


def webhook_secret_is_set() -> bool:
    """Whether anymail has basic-auth credentials to check (read as anymail reads them)."""
    secret = get_anymail_setting("webhook_secret", default=None)
    return bool(secret) if isinstance(secret, str) else any(secret or ())


# What anymail's parsers raise on a body they cannot read: JSON that does not parse, or
# undecodable bytes (ValueError); JSON of another shape, such as [] where an object
# belongs (TypeError, KeyError, IndexError, AttributeError); an unknown charset
# (LookupError); nesting deeper than the parser's stack (RecursionError); a broken
# multipart form.
_UNREADABLE = (
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    RecursionError,
    MultiPartParserError,
)


@contextmanager
def _unreadable_body_is_bad_request(esp: str) -> Iterator[None]:
    """A body anymail cannot read becomes a 400 (anymail's validation failure is a
    SuspiciousOperation): to a 500 the ESP would send it again and again."""
    try:
        yield
    except _UNREADABLE as exc:
        raise AnymailWebhookValidationFailure(f"The {esp} webhook cannot read this body.") from exc
    except AnymailConfigurationError as exc:
        # A package missing here (AnymailImproperlyInstalled) is ours to fix: a 500.
        if isinstance(exc, ImportError):
            raise
        # Otherwise anymail says what the body is instead ("...set Postmark's *inbound*
        # webhook to the *tracking* URL"), which is the ESP's side to fix.
        raise AnymailWebhookValidationFailure(f"The {esp} webhook: {exc}") from exc
    except AnymailAPIError as exc:
        # The SES view raises the class itself for an SNS body it cannot read; its
        # subclasses are a provider's API failing as an inbound message is fetched,
        # which the ESP should retry.
        if type(exc) is not AnymailAPIError:
            raise
        raise AnymailWebhookValidationFailure(f"The {esp} webhook cannot read this body.") from exc


def _not_configured() -> JsonResponse:
    return JsonResponse({"errors": {"__all__": ["This webhook is not configured."]}}, status=400)


class ConfiguredWebhook:
    """Mixed in before one of anymail's webhook views. Only the reading of the request
    is guarded: an error in our receivers (the database is down) stays a 5xx, which
    the ESP retries."""

    esp: ClassVar[str]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Callable[..., HttpResponse]:
        view = super().as_view(**initkwargs)  # type: ignore[misc]

        # Checked before anymail builds its view: for a provider without its keys,
        # anymail's __init__ raises ImproperlyConfigured, a 500 to anyone who asks.
        @wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if cls.esp not in configured_esps():
                raise Http404(f"{cls.esp} is not one of this site's ESPs.")
            if not settings.DEBUG and not webhook_secret_is_set():
                # Anyone could post a bounce and suppress any address; refuse everything
                # until a secret is set (as the Stripe webhook does without its secret).
                logger.error(
                    "%s webhook: ANYMAIL_WEBHOOK_SECRET is not set; event refused", cls.esp
                )
                return _not_configured()
            return view(request, *args, **kwargs)

        return guarded

    def run_validators(self, request: HttpRequest) -> None:
        # Some providers' checks read the body (a signature inside the JSON).
        with _unreadable_body_is_bad_request(self.esp):
            super().run_validators(request)  # type: ignore[misc]

    def parse_events(self, request: HttpRequest) -> list:
        with _unreadable_body_is_bad_request(self.esp):
            return list(super().parse_events(request))  # type: ignore[misc]


def _guarded(pattern: URLPattern) -> URLPattern:
    anymail_view = pattern.callback.view_class  # type: ignore[attr-defined]
    view_class = type(
        anymail_view.__name__,
        (ConfiguredWebhook, anymail_view),
        {"esp": _esp_of(anymail_view), "__module__": __name__},
    )
    callback = view_class.as_view(**pattern.callback.view_initkwargs)  # type: ignore[attr-defined]
    return URLPattern(pattern.pattern, callback, pattern.default_args, pattern.name)


# anymail's URLs (and names, under the "anymail" namespace), every view guarded;
# newsroom/urls.py mounts them at /anymail/.
urlpatterns = [_guarded(pattern) for pattern in anymail_urls.urlpatterns]


@receiver(tracking, dispatch_uid="subscriptions.web.esp_webhooks.on_tracking_event")
def on_tracking_event(
    sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: object
) -> None:
    rule = esp_rules.for_esp(esp_name)
    kind = rule.kind(event)
    if kind is None or not event.recipient:
        return
    description, mta_response = rule.details(event)
    delivery_events.record_delivery_event(
        esp=esp_name,
        kind=kind,
        event_id=rule.event_id(event),
        recipient=event.recipient,
        occurred_at=event.timestamp,
        message_id=event.message_id,
        metadata=event.metadata if isinstance(event.metadata, dict) else {},
        description=description,
        mta_response=mta_response,
    )


_UNSUBSCRIBE_SUBJECT = re.compile(r"unsubscribe\s+(?P<token>[A-Za-z0-9_\-:.]+)", re.IGNORECASE)


@receiver(inbound, dispatch_uid="subscriptions.web.esp_webhooks.on_inbound_email")
def on_inbound_email(
    sender: object, event: AnymailInboundEvent, esp_name: str, **kwargs: object
) -> None:
    """Mail to UNSUBSCRIBE_MAILTO (the List-Unsubscribe mailto:) ends the subscription
    named by the token in its subject; anything else is ignored."""
    message = event.message
    if message is None or not settings.UNSUBSCRIBE_MAILTO:
        return
    recipients = {address.addr_spec.lower() for address in message.to or []}
    if settings.UNSUBSCRIBE_MAILTO.lower() not in recipients:
        return
    match = _UNSUBSCRIBE_SUBJECT.search(message.subject or "")
    if match is None:
        return
    try:
        subscription_id = unsubscribe_token.read_token(match.group("token"))
    except TokenInvalid:
        logger.info("ignored an unsubscribe email with a bad token")
        return
    services.unsubscribe(subscription_id=subscription_id, actor=f"esp:{esp_name}", via="mailto")
