from django.conf import settings
from django.http import HttpRequest
from django.utils.functional import lazy

from subscriptions.abuse.bot_traps import make_form_token
from subscriptions.abuse.challenges import active_challenge
from subscriptions.signup.transitions import DEFAULT_CONSENT_TEXT


def site(request: HttpRequest) -> dict[str, object]:
    return {
        "SITE_NAME": settings.SITE_NAME,
        "CONSENT_TEXT": DEFAULT_CONSENT_TEXT,
        # Signed when a template uses it, so pages without a form pay nothing.
        "SIGNUP_FORM_TOKEN": lazy(make_form_token, str)(),
        "SIGNUP_CHALLENGE": active_challenge(),
    }
