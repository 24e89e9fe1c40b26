"""Checks on a sign-up form's body that must run before anything parses it.

CsrfViewMiddleware reads request.POST before any view runs, so a check in the view
comes too late: by then Django has parsed up to its own cap (2.5 MB), which file parts
do not even count towards. For views marked with `checks_form_body` this middleware,
placed before CsrfViewMiddleware, refuses a body over SIGNUP_MAX_BODY_BYTES (413), a
body that is not a form (400) and a form that is not UTF-8 (400), each with a page.
The JSON API checks its own body (subscriptions/api.py).
"""

from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
TOO_LARGE_MESSAGE = _(
    "The form was too large to send. Please sign up with just your email address."
)
NOT_A_FORM_MESSAGE = _("Please sign up with the form on our pages.")
NOT_UTF8_MESSAGE = _("The form could not be read: it was not sent as UTF-8 text.")

View = TypeVar("View", bound=Callable[..., HttpResponse])


def checks_form_body(view: View) -> View:
    """Mark a view whose POST body FormBodyCheckMiddleware checks before it is parsed."""
    view.checks_form_body = True  # type: ignore[attr-defined]
    return view


class FormBodyCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict
    ) -> HttpResponse | None:
        if request.method != "POST" or not getattr(view_func, "checks_form_body", False):
            return None
        refusal = _refusal(request)
        if refusal is None:
            return None
        status, message = refusal
        return render(
            request, "subscriptions/form_refused.html", {"message": message}, status=status
        )


def _refusal(request: HttpRequest) -> tuple[int, str] | None:
    """(status, message) if the body must be refused, else None."""
    if request.content_type not in (URLENCODED, MULTIPART):
        return 400, NOT_A_FORM_MESSAGE
    charset = request.content_params.get("charset", "utf-8").lower()
    if charset not in ("utf-8", "utf8"):
        return 400, NOT_UTF8_MESSAGE
    cap = settings.SIGNUP_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0  # Django then reads no body at all
    if declared > cap:
        return 413, TOO_LARGE_MESSAGE
    # Under WSGI Django reads no more than Content-Length; under ASGI it reads what came.
    if len(request.body) > cap:
        return 413, TOO_LARGE_MESSAGE
    if not _is_utf8(request):
        return 400, NOT_UTF8_MESSAGE
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
