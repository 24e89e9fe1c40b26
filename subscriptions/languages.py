"""Which language a reader is spoken to in.

In order: the page's own (`?lang=` on the URL: an embed's `lang`, a link in an email
written in the subscriber's language; `lang` in an API body), else the language switcher's
cookie or the browser's Accept-Language (Django's LocaleMiddleware), else the site's
default. The embeds' script puts its `lang` on the API's URL as well as in the body:
the API answers a client over its rate limit before it reads the body. A subscriber
keeps the language they last signed up in, and their emails use it.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

LANG_PARAMETER = "lang"


def supported(code: object) -> str | None:
    """The site's language for a code such as "uk" or "uk-UA", or None."""
    if not isinstance(code, str) or not code.strip() or len(code) > 35:
        return None
    wanted = code.strip().lower().replace("_", "-")
    available = [language for language, _ in settings.LANGUAGES]
    if wanted in available:
        return wanted
    base = wanted.split("-", 1)[0]
    return base if base in available else None


@contextmanager
def speaking(request: HttpRequest, code: object = None) -> Iterator[str]:
    """Answer this request in the language asked for, if the site speaks it, else in
    the one already chosen for it."""
    language = supported(code) or translation.get_language() or settings.LANGUAGE_CODE
    previous = getattr(request, "LANGUAGE_CODE", None)
    with translation.override(language):
        request.LANGUAGE_CODE = language
        try:
            yield language
        finally:
            if previous is not None:
                request.LANGUAGE_CODE = previous


def remember(response: HttpResponse, language: str) -> None:
    """Set the cookie LocaleMiddleware reads, as Django's set_language view does."""
    response.set_cookie(
        settings.LANGUAGE_COOKIE_NAME,
        language,
        max_age=settings.LANGUAGE_COOKIE_AGE,
        path=settings.LANGUAGE_COOKIE_PATH,
        domain=settings.LANGUAGE_COOKIE_DOMAIN,
        secure=settings.LANGUAGE_COOKIE_SECURE,
        httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
        samesite=settings.LANGUAGE_COOKIE_SAMESITE,  # type: ignore[arg-type] # "Lax"
    )


def of_subscriber(language: str) -> str:
    """The language to write to a subscriber in."""
    return supported(language) or settings.LANGUAGE_CODE


def requested(request: HttpRequest) -> str | None:
    """The language the URL asks for, if the site speaks it."""
    return supported(request.GET.get(LANG_PARAMETER))


def with_language(url: str, language: str | None) -> str:
    """The URL asking for this language (so a page reached from it speaks it)."""
    if not language:
        return url
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{urlencode({LANG_PARAMETER: language})}"


class RequestedLanguageMiddleware:
    """`?lang=` wins over the cookie and Accept-Language. Placed after LocaleMiddleware,
    which has chosen a language by then; reads only the query string, so a form's body
    stays unparsed for the checks that run before CSRF."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = requested(request)
        if language is None:
            return self.get_response(request)
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        # LocaleMiddleware only sets it when it is missing.
        response.headers.setdefault("Content-Language", language)
        return response
