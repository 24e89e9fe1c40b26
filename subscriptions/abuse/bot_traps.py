"""Traps that tell a bot from a reader without a reader noticing: a honeypot field (in
the form) and a signed form token that every public way in carries (our pages' forms,
the embeds through `signup.js`, the JSON API).

The token records when the form was rendered and a one-off nonce. A sign-up with it is
accepted only if it came at least SIGNUP_FORM_MIN_SECONDS after the render (a person
typing an address; a script posting at once) and within SIGNUP_FORM_MAX_AGE_SECONDS,
and a token serves one mailbox: the first sign-up binds it, so a token harvested from a
page cannot sign up a list of addresses. The same mailbox may send it again (a double
click, a retry).

Only a filled honeypot is answered as if it worked (nothing stored, nothing sent): no
person fills a field they cannot see. Anything else the token says (missing, too fast,
too old, used for another address) may be a person (autofill and Enter, a tab left open
overnight), so they get a visible second step with a fresh token rather than a false
"we've sent you an email".
"""

import hashlib
import secrets
import time
from dataclasses import dataclass
from enum import Enum

from django.conf import settings
from django.core import signing

from subscriptions.abuse import ratelimit

# The old module path, kept: a salt is part of every token signed with it.
_RENDER_TIME_SALT = "subscriptions.bot_traps.form_token"


def _now() -> float:
    """Seam for tests that need to move the clock."""
    return time.time()


class TokenVerdict(Enum):
    HUMAN = "human"
    # No token, a token we did not sign, one of another shape: maybe a bot, maybe a
    # page cached from before.
    MISSING = "missing"
    TOO_FAST = "too_fast"
    TOO_OLD = "too_old"


@dataclass(frozen=True)
class FormToken:
    rendered_at: float
    nonce: str


def make_form_token(*, rendered_at: float | None = None) -> str:
    """A signed record of when the form was rendered, with a nonce, for a hidden field."""
    payload = {
        "t": int(rendered_at if rendered_at is not None else _now()),
        "n": secrets.token_urlsafe(12),
    }
    return signing.dumps(payload, salt=_RENDER_TIME_SALT)


def read_form_token(token: object) -> FormToken | None:
    """The token's content if we signed it, else None."""
    if not isinstance(token, str) or not token:
        return None
    try:
        payload = signing.loads(token, salt=_RENDER_TIME_SALT)
        return FormToken(rendered_at=float(int(payload["t"])), nonce=str(payload["n"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


def judge_form_token(token: object) -> TokenVerdict:
    """Whether the form was rendered by us, long enough ago for a person to type an
    address, and not so long ago that the token was harvested for replay."""
    read = read_form_token(token)
    if read is None:
        return TokenVerdict.MISSING
    age = _now() - read.rendered_at
    if age < settings.SIGNUP_FORM_MIN_SECONDS:
        # A render time in the future is a forgery or a clock gone wrong: not human.
        return TokenVerdict.TOO_FAST
    if age > settings.SIGNUP_FORM_MAX_AGE_SECONDS:
        return TokenVerdict.TOO_OLD
    return TokenVerdict.HUMAN


def form_token_looks_human(token: object) -> bool:
    return judge_form_token(token) is TokenVerdict.HUMAN


def use_form_token(token: str, *, mailbox: str) -> bool:
    """Bind a human-looking token to the mailbox it signs up; False if it is bound to
    another already. Kept as long as the token lives, in the store the rate limits use
    (Redis, in-process without one); like them it fails open, counted and logged: the
    time trap and the limits still stand."""
    read = read_form_token(token)
    if read is None:
        return False
    digest = hashlib.sha256(mailbox.encode()).hexdigest()[:32]
    return ratelimit.hold_once(
        "form-token",
        read.nonce,
        digest,
        seconds=int(settings.SIGNUP_FORM_MAX_AGE_SECONDS) + 60,
    )
