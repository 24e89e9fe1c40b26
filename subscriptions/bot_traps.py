"""Traps that catch bots without a real reader noticing: a honeypot field (in the
form) and a signed render time. A trapped bot gets the normal success answer, so it
learns nothing, and nothing is stored or sent."""

import time

from django.conf import settings
from django.core import signing

_RENDER_TIME_SALT = "subscriptions.bot_traps.form_token"


def _now() -> float:
    """Seam for tests that need to move the clock."""
    return time.time()


def make_form_token(*, rendered_at: float | None = None) -> str:
    """A signed record of when the form was rendered, for a hidden field."""
    return signing.dumps(
        int(rendered_at if rendered_at is not None else _now()), salt=_RENDER_TIME_SALT
    )


def form_token_looks_human(token: object) -> bool:
    """True if the form was rendered by us, long enough ago for a person to type an
    address, and not so long ago that the token was harvested for replay."""
    if not isinstance(token, str) or not token:
        return False
    try:
        rendered_at = int(signing.loads(token, salt=_RENDER_TIME_SALT))
    except (signing.BadSignature, TypeError, ValueError):
        return False
    age = _now() - rendered_at
    return settings.SIGNUP_FORM_MIN_SECONDS <= age <= settings.SIGNUP_FORM_MAX_AGE_SECONDS
