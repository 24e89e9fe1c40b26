"""The JSON API, for the newsroom's other sites and the inline form. Same validation
and the same answer as the HTML form; errors as `{"errors": {field: [messages]}}`.
A body over SIGNUP_MAX_BODY_BYTES is refused (413) before the view, by
FormBodyCheckMiddleware, as for every reader-facing POST."""

import json

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.cache import add_never_cache_headers, patch_cache_control
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from subscriptions import languages
from subscriptions.abuse import ratelimit
from subscriptions.abuse.bot_traps import make_form_token
from subscriptions.abuse.ratelimit import RateLimited
from subscriptions.membership import goal_counter
from subscriptions.models import Subscription
from subscriptions.web import openapi
from subscriptions.web.form_body import limits_body_size
from subscriptions.web.forms import CONFIRM_SIGNUP_MESSAGE, SignupForm, SignupOutcome
from subscriptions.web.request_info import client_ip, client_network
from subscriptions.web.views import SUCCESS_MESSAGE, mailbox_of, rate_limited_message


def _error(field: str, message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"errors": {field: [message]}}, status=status)


# No cookies are needed or used: the API is called cross-origin from other sites, so
# CSRF protection (which guards cookie-authenticated requests) does not apply.
@csrf_exempt
@limits_body_size
@require_POST
def create_subscription(request: HttpRequest) -> JsonResponse:
    ip = client_ip(request)
    per_client = ("api-ip", client_network(ip))
    try:
        payload = _json_object(request)
    except BadPayload as exc:
        # A flood of bad bodies is a flood: it counts against the client all the same.
        # This answer comes before the body's `lang` is read, so it speaks the URL's
        # `?lang=` (which the embed's script sends) or Accept-Language.
        limited = _limited([per_client])
        return limited or _error("__all__", exc.message)
    # The body's `lang` (the embedding page's language) wins over Accept-Language.
    with languages.speaking(request, payload.get("lang")) as language:
        response = _sign_up(request, payload, ip, per_client)
    response.headers.setdefault("Content-Language", language)
    return response


def _sign_up(
    request: HttpRequest, payload: dict, ip: str | None, per_client: tuple[str, str]
) -> JsonResponse:
    # Both limits in one round trip, before the form reads the database (or asks a
    # challenge provider): the client's, and the mailbox's when the address is one.
    limits = [per_client]
    if (mailbox := mailbox_of(payload.get("email"))) is not None:
        limits.append(("api-email", mailbox))
    if (limited := _limited(limits)) is not None:
        return limited
    form = SignupForm(data=payload, remote_ip=ip)
    outcome = SignupOutcome.INVALID
    if form.is_valid():
        outcome = form.submit(request, source=Subscription.Source.API, caller_consent_text=True)
    if outcome is SignupOutcome.DONE:
        return JsonResponse({"status": "pending", "message": SUCCESS_MESSAGE}, status=202)
    if outcome is SignupOutcome.CONFIRM:
        # Nothing was stored. Our script shows the message and sends again, with the
        # fresh token, when the reader presses the button.
        return JsonResponse(
            {
                "errors": {"form_token": [str(CONFIRM_SIGNUP_MESSAGE)]},
                "form_token": make_form_token(),
            },
            status=400,
        )
    errors = {
        field: [error["message"] for error in field_errors]
        for field, field_errors in form.errors.get_json_data().items()
    }
    return JsonResponse({"errors": errors}, status=400)


def _limited(limits: list[tuple[str, str]]) -> JsonResponse | None:
    try:
        ratelimit.enforce_all(limits)
    except RateLimited as exc:
        return _rate_limited(exc)
    return None


def _rate_limited(exc: RateLimited) -> JsonResponse:
    response = _error("__all__", rate_limited_message(exc.retry_after), status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


# GET only and cookie-free: CSRF has nothing to protect, and exempting it lets any other
# method get its honest 405.
@csrf_exempt
@require_GET
def form_token(request: HttpRequest) -> JsonResponse:
    """A fresh form token for a sign-up form that is not on our pages (`signup.js`
    asks for one when it renders an embed; another site's server may pass one to its
    own form). Public and cookie-free, so open to every origin; never cached, since each
    token serves one address."""
    response = JsonResponse(
        {"form_token": make_form_token(), "min_seconds": settings.SIGNUP_FORM_MIN_SECONDS}
    )
    add_never_cache_headers(response)
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_GET
def goal(request: HttpRequest) -> JsonResponse:
    """The membership goal and the live count, for banners on this and other sites.

    Read from Redis with no SQL; cacheable for a few seconds, and open to every origin
    (it is public and needs no credentials).
    """
    snapshot = goal_counter.read_snapshot()
    if snapshot is None:
        response = _error("__all__", gettext("There is no active membership goal."), status=404)
    else:
        response = JsonResponse(snapshot.as_json())
        patch_cache_control(response, public=True, max_age=goal_counter.PUBLIC_MAX_AGE_SECONDS)
    response["Access-Control-Allow-Origin"] = "*"
    return response


@require_GET
def schema(request: HttpRequest) -> JsonResponse:
    """The OpenAPI description of this API."""
    return JsonResponse(openapi.api_description(), json_dumps_params={"indent": 2})


class BadPayload(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _json_object(request: HttpRequest) -> dict:
    """The body as a JSON object, or `BadPayload` saying what is wrong with it."""
    if request.content_type != "application/json":
        raise BadPayload(gettext("Send a JSON body with Content-Type: application/json."))
    try:
        payload = json.loads(request.body.decode("utf-8"))
    # RecursionError: deeply nested arrays or objects exhaust the parser's stack.
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadPayload(gettext("The body is not valid JSON.")) from exc
    if not isinstance(payload, dict):
        raise BadPayload(gettext("Send a JSON object."))
    return payload
