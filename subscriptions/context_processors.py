from django.conf import settings
from django.http import HttpRequest

from subscriptions.transitions import DEFAULT_CONSENT_TEXT


def site(request: HttpRequest) -> dict[str, str]:
    return {"SITE_NAME": settings.SITE_NAME, "CONSENT_TEXT": DEFAULT_CONSENT_TEXT}
