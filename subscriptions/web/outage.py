"""What readers, callers and ESPs get while the database cannot be reached: 503 with
Retry-After, never a 500.

The project's `handler500` (newsroom/urls.py). Django calls it, outside DEBUG, inside
the `except` block of any exception a view or a middleware raised, so one place sees
them all: the form's newsletter lookup, the one-statement sign-up, a page's query. A
database that does not answer (OperationalError: refused, dropped, a statement cancelled
or a deadlock; InterfaceError: a connection already closed) gets 503, as the documented
`{"errors": {...}}` JSON on the API and the webhooks (whose senders retry a 5xx) and as
a static page elsewhere; any other exception keeps the plain 500 page.
"""

import logging
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext
from django.views.defaults import server_error as plain_server_error

logger = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
# Long enough for a database restart or a failover to finish; short enough that a mail
# provider or a partner's form comes back while the reader still cares.
RETRY_AFTER_SECONDS = 30
# Paths whose callers are programs reading JSON: the API, and the ESP and Stripe webhooks.
JSON_PATHS = ("/api/", "/anymail/", "/webhooks/")


def answers_in_json(request: HttpRequest) -> bool:
    return request.path.startswith(JSON_PATHS)


def is_database_unavailable(exc: BaseException | None) -> bool:
    """The exception, or one it was raised from, says the database did not answer."""
    while exc is not None:
        if isinstance(exc, DATABASE_UNAVAILABLE):
            return True
        exc = exc.__cause__
    return False


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    if not is_database_unavailable(exc):
        return plain_server_error(request)
    # One line per request instead of Django's "Service Unavailable" with a traceback:
    # during an outage every request fails the same way. The route, not the path, so
    # the tokens in links from emails stay out of it.
    match = request.resolver_match
    reason = str(exc).strip().splitlines()
    logger.error(
        "database unavailable: %s /%s answered 503 (%s: %s)",
        request.method,
        match.route if match is not None else request.path.lstrip("/"),
        type(exc).__name__,
        reason[0] if reason else "",
    )
    response = unavailable(request)
    # Read by django.utils.log: this 503 is logged once, above, not again as an error.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def unavailable(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After. The page is rendered without the request, so no context
    processor runs and nothing on it can need the database."""
    if answers_in_json(request):
        message = gettext("The site is briefly unavailable. Please try again in a minute.")
        response: HttpResponse = JsonResponse({"errors": {"__all__": [message]}}, status=503)
    else:
        response = HttpResponse(render_to_string("503.html"), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
