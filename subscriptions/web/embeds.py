"""Sign-up forms and the goal banner on the newsroom's other sites.

Each sign-up form has two copy-paste snippets (shown in the admin):

- the script snippet: a placeholder and `signup.js`, which fetches the form from
  `/embed/signup/` into the host page and posts it to the JSON API (allowed by
  CORS_ALLOWED_ORIGINS), answering inline; without JavaScript the placeholder's link
  to our newsletter page shows;
- the plain-HTML snippet: the form itself, posting to `/subscribe/embed/`, for pages
  where scripts are off or not allowed; the reader lands on our thank-you page.

The goal banner's snippet loads its markup from `/embed/goal/` and `goal.js` keeps it
live. All take their look from `embed.css`, whose CSS custom properties a host page can
override.
"""

from collections.abc import Sequence

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.cache import patch_cache_control
from django.utils.http import urlencode
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from subscriptions import languages
from subscriptions.abuse.challenges import active_challenge
from subscriptions.membership import goal_counter
from subscriptions.models import Newsletter
from subscriptions.signup import selectors
from subscriptions.signup.transitions import DEFAULT_CONSENT_TEXT
from subscriptions.templatetags.membership import banner_context
from subscriptions.web.form_body import checks_form_body
from subscriptions.web.views import form_signup

# The form fragment changes only when an editor renames a newsletter or makes it
# private; host pages may keep it this long.
SIGNUP_FORM_MAX_AGE_SECONDS = 300
# More newsletters than any form shows: the fragment's query string is public input.
MAX_NEWSLETTERS_PER_FORM = 20


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def signup_script_snippet(newsletters: Sequence[Newsletter], *, language: str = "en") -> str:
    """The HTML to paste where a sign-up box should appear: a placeholder that
    `signup.js` fills with the form, which then answers inline."""
    newsletters = list(newsletters)
    if len(newsletters) == 1:
        fallback_url = reverse("subscriptions:newsletter_detail", args=[newsletters[0].slug])
    else:
        fallback_url = reverse("subscriptions:newsletter_list")
    query = urlencode({"newsletters": [n.slug for n in newsletters]}, doseq=True)
    with translation.override(language):
        if len(newsletters) == 1:
            fallback_text = gettext("Sign up for %(name)s") % {"name": newsletters[0].name}
        else:
            fallback_text = gettext("Sign up for our newsletters")
        return render_to_string(
            "subscriptions/embed/signup_script_snippet.html",
            {
                "language": language,
                "site_name": settings.SITE_NAME,
                "fragment": absolute(
                    languages.with_language(
                        f"{reverse('subscriptions:embed_signup_form')}?{query}", language
                    )
                ),
                "fallback_url": absolute(languages.with_language(fallback_url, language)),
                "fallback_text": fallback_text,
                "stylesheet": _static("embed.css"),
                "script": _static("signup.js"),
            },
        ).strip()


def signup_html_snippet(newsletters: Sequence[Newsletter], *, language: str = "en") -> str:
    """The same form in plain HTML, for pages without JavaScript: it posts to
    `/subscribe/embed/`. One newsletter is a hidden field, several are checkboxes."""
    with translation.override(language):
        return render_to_string(
            "subscriptions/embed/signup_html_snippet.html",
            {
                **_form_context(list(newsletters), language, inline=False),
                "site_name": settings.SITE_NAME,
                "stylesheet": _static("embed.css"),
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
                "stylesheet": _static("embed.css"),
                "script": _static("goal.js"),
            },
        ).strip()


def _static(name: str) -> str:
    return absolute(f"{settings.STATIC_URL}subscriptions/{name}")


def _form_context(newsletters: list[Newsletter], language: str, *, inline: bool) -> dict:
    key = "-".join(n.slug for n in newsletters)[:60] or "all"
    return {
        "newsletters": newsletters,
        "language": language,
        # Both snippets may sit on one page: their ids must not collide.
        "id_prefix": f"nr{'js' if inline else ''}-{key}",
        "consent_text": str(DEFAULT_CONSENT_TEXT),
        # ?lang= makes the no-JavaScript path's pages speak the embed's language.
        "action": absolute(
            languages.with_language(reverse("subscriptions:embed_signup"), language)
        ),
        "api": absolute(reverse("subscriptions:api_create_subscription")) if inline else "",
        "token_url": absolute(reverse("subscriptions:api_form_token")) if inline else "",
        # The plain-HTML form's reader meets the challenge on our page (second step).
        "challenge": active_challenge() if inline else None,
    }


@require_GET
def embed_signup_form(request: HttpRequest) -> HttpResponse:
    """The script snippet's form, for `signup.js` to put into another site's page: the
    public newsletters named by `?newsletters=`, in the order given, in `?lang=`'s
    language. Public and cookie-free, so open to every origin."""
    slugs = list(dict.fromkeys(request.GET.getlist("newsletters")))[:MAX_NEWSLETTERS_PER_FORM]
    found = {n.slug: n for n in selectors.public_newsletters().filter(slug__in=slugs)}
    newsletters = [found[slug] for slug in slugs if slug in found]
    if newsletters:
        language = translation.get_language() or settings.LANGUAGE_CODE
        html = render_to_string(
            "subscriptions/embed/_signup_form.html",
            _form_context(newsletters, language, inline=True),
        )
        response = HttpResponse(html, content_type="text/html; charset=utf-8")
        patch_cache_control(response, public=True, max_age=SIGNUP_FORM_MAX_AGE_SECONDS)
    else:
        # The snippet keeps its link to our newsletter page.
        response = HttpResponse(status=404, content_type="text/html; charset=utf-8")
    response["Access-Control-Allow-Origin"] = "*"
    return response


# A form on another site carries no CSRF token (the site cannot get one of ours) and
# needs none: a forged post can only start a double opt-in, which the address's owner
# must confirm. Bot traps, rate limits and the optional challenge still apply.
@csrf_exempt
@checks_form_body
@require_POST
def embed_signup(request: HttpRequest) -> HttpResponse:
    """The embedded form's no-JavaScript path."""
    return form_signup(request)


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
    patch_cache_control(response, public=True, max_age=goal_counter.PUBLIC_MAX_AGE_SECONDS)
    return response
