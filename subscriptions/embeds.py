"""Sign-up forms and the goal banner on the newsroom's other sites.

An embed is a copy-paste snippet (shown in the admin): a plain HTML form that posts to
`/subscribe/embed/` and works with JavaScript off, plus our `signup.js`, which turns it
into an inline form posting to the JSON API (allowed by CORS_ALLOWED_ORIGINS). The goal
banner's snippet loads its markup from `/embed/goal/` and `goal.js` keeps it live.
Both take their look from `embed.css`, whose CSS custom properties a host page can
override.
"""

from collections.abc import Sequence

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.cache import patch_cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from subscriptions import languages
from subscriptions.middleware import checks_form_body
from subscriptions.models import Newsletter
from subscriptions.templatetags.membership import banner_context
from subscriptions.transitions import DEFAULT_CONSENT_TEXT
from subscriptions.views import form_signup


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def signup_snippet(newsletters: Sequence[Newsletter], *, language: str = "en") -> str:
    """The HTML to paste where a sign-up box should appear: one newsletter as a hidden
    field, several as checkboxes."""
    with translation.override(language):
        return render_to_string(
            "subscriptions/embed/signup_snippet.html",
            {
                "newsletters": list(newsletters),
                "language": language,
                "site_name": settings.SITE_NAME,
                "consent_text": str(DEFAULT_CONSENT_TEXT),
                # ?lang= makes the no-JavaScript path's pages speak the embed's language.
                "action": absolute(
                    languages.with_language(reverse("subscriptions:embed_signup"), language)
                ),
                "api": absolute(reverse("subscriptions:api_create_subscription")),
                "stylesheet": absolute(f"{settings.STATIC_URL}subscriptions/embed.css"),
                "script": absolute(f"{settings.STATIC_URL}subscriptions/signup.js"),
                "key": "-".join(n.slug for n in newsletters)[:60] or "all",
            },
        ).strip()


def goal_snippet(*, language: str = "en") -> str:
    """The HTML to paste where the membership banner should appear."""
    with translation.override(language):
        return render_to_string(
            "subscriptions/embed/goal_snippet.html",
            {
                "fragment": absolute(
                    languages.with_language(reverse("subscriptions:embed_goal"), language)
                ),
                "language": language,
                "membership_url": settings.MEMBERSHIP_URL,
                "stylesheet": absolute(f"{settings.STATIC_URL}subscriptions/embed.css"),
                "script": absolute(f"{settings.STATIC_URL}subscriptions/goal.js"),
            },
        ).strip()


# A form on another site carries no CSRF token (the site cannot get one of ours) and
# needs none: a forged post can only start a double opt-in, which the address's owner
# must confirm. Bot traps, rate limits and the optional challenge still apply.
@csrf_exempt
@checks_form_body
@require_POST
def embed_signup(request: HttpRequest) -> HttpResponse:
    """The embedded form's no-JavaScript path."""
    return form_signup(request, require_form_token=False)


@require_GET
def embed_goal(request: HttpRequest) -> HttpResponse:
    """The banner's markup for another site, with absolute links; open to every origin
    like the goal API it polls."""
    html = render_to_string(
        "subscriptions/_membership_banner.html",
        banner_context(goal_api=absolute(reverse("subscriptions:api_goal"))),
        request=request,
    )
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Access-Control-Allow-Origin"] = "*"
    patch_cache_control(response, public=True, max_age=settings.GOAL_API_MAX_AGE_SECONDS)
    return response
