"""Checks on a reader-facing POST's body that must run before anything parses it.

CsrfViewMiddleware reads request.POST before any view runs, so a check in the view
comes too late: by then Django has parsed up to its own cap (2.5 MB), which file parts
do not even count towards. This middleware, placed before CsrfViewMiddleware, refuses a
body over SIGNUP_MAX_BODY_BYTES (413) for every view marked `limits_body_size`: each
reader-facing view that takes a POST (tests/test_body_limits.py walks the URLconf for
them), as a page, or as JSON on the API. Views marked `checks_form_body`, the sign-up
forms, must also send a form (400) in UTF-8 (400), each refused with a page.
"""

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from subscriptions.web.outage import answers_in_json

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FORM_TITLE = _("We could not read that form")
SIGNUP_TITLE = _("We could not read that sign-up")
TOO_LARGE_MESSAGE = _("The form was too large to send.")
SIGNUP_TOO_LARGE_MESSAGE = _(
    "The form was too large to send. Please sign up with just your email address."
)
JSON_TOO_LARGE_MESSAGE = _("The request body is too large.")
NOT_A_FORM_MESSAGE = _("Please sign up with the form on our pages.")
NOT_UTF8_MESSAGE = _("The form could not be read: it was not sent as UTF-8 text.")

View = TypeVar("View", bound=Callable[..., HttpResponse])


def limits_body_size(view: View) -> View:
    """Mark a view whose POST body is refused over the cap before anything parses it."""
    view.limits_body_size = True  # type: ignore[attr-defined]
    return view


def checks_form_body(view: View) -> View:
    """Mark a sign-up form's view: its POST body is capped, and must be a UTF-8 form."""
    view.checks_form_body = True  # type: ignore[attr-defined]
    return limits_body_size(view)


class FormBodyCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict
    ) -> HttpResponse | None:
        if request.method != "POST" or not getattr(view_func, "limits_body_size", False):
            return None
        signup = getattr(view_func, "checks_form_body", False)
        if _too_large(request):
            if answers_in_json(request):
                return JsonResponse({"errors": {"__all__": [JSON_TOO_LARGE_MESSAGE]}}, status=413)
            message = SIGNUP_TOO_LARGE_MESSAGE if signup else TOO_LARGE_MESSAGE
            return _refused(request, 413, message, signup=signup)
        if signup and (problem := _not_a_utf8_form(request)) is not None:
            return _refused(request, 400, problem, signup=True)
        return None


def _refused(request: HttpRequest, status: int, message: Promise, *, signup: bool) -> HttpResponse:
    title = SIGNUP_TITLE if signup else FORM_TITLE
    return render(
        request,
        "subscriptions/form_refused.html",
        {"title": title, "message": message},
        status=status,
    )


def _too_large(request: HttpRequest) -> bool:
    cap = settings.SIGNUP_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0  # Django then reads no body at all
    if declared > cap:
        return True
    # Under WSGI Django reads no more than Content-Length; under ASGI it reads what came.
    return len(request.body) > cap


def _not_a_utf8_form(request: HttpRequest) -> Promise | None:
    """Why the body is no sign-up form we can read, or None."""
    if request.content_type not in (URLENCODED, MULTIPART):
        return NOT_A_FORM_MESSAGE
    charset = (request.content_params or {}).get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8") or not _is_utf8(request):
        return NOT_UTF8_MESSAGE
    return None


def _is_utf8(request: HttpRequest) -> bool:
    """Django decodes form fields forgivingly (a bad urlencoded body as Latin-1, bad
    bytes in a multipart field as U+FFFD), so a garbled value would be stored."""
    if request.content_type == URLENCODED:
        try:
            parse_qsl(request.body.decode("utf-8"), keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            return False
        return True
    try:
        fields = request.POST
    except MultiPartParserError:
        return False
    return not any(
        "\ufffd" in name or any("\ufffd" in value for value in values)
        for name, values in fields.lists()
    )
