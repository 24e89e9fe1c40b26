"""Refuses an ESP webhook secret copied from an example instead of generated.

settings.py calls this as it loads, because gunicorn and Celery run no system checks:
credentials anyone can read in .env.example or the README would let anyone post a
"bounce" that suppresses an address.
"""

from collections.abc import Iterable

from django.core.exceptions import ImproperlyConfigured

# "change-me:change-me-too" (what .env.example once shipped) and its kin, in either half.
_PLACEHOLDER_PREFIXES = ("change-me", "changeme", "change_me")
# The passwords of the documentation's examples: user:password, and user:old,user:new
# for a rotation.
_EXAMPLE_PASSWORDS = frozenset({"password", "pass", "old", "new"})

# What .env.example and the error below tell an operator to run.
GENERATE_COMMAND = "python -c \"import secrets; print('esp:' + secrets.token_urlsafe(24))\""


def is_placeholder(credentials: str) -> bool:
    """Whether these "user:password" credentials are an example's, not generated."""
    user, _, password = credentials.strip().lower().partition(":")
    return password in _EXAMPLE_PASSWORDS or any(
        part.startswith(_PLACEHOLDER_PREFIXES) for part in (user, password)
    )


def refuse_placeholder_webhook_secret(secret: str | Iterable[str] | None) -> None:
    """Raise ImproperlyConfigured when any of the configured credentials (one, or
    several while rotating) is a placeholder."""
    if not secret:
        return
    credentials = [secret] if isinstance(secret, str) else list(secret)
    if any(is_placeholder(each) for each in credentials):
        # The value is not repeated: a false alarm must not print a real secret to a log.
        raise ImproperlyConfigured(
            "ANYMAIL_WEBHOOK_SECRET is a placeholder from the documentation, which anyone "
            f"can read. Generate one with: {GENERATE_COMMAND} and give the same "
            "credentials to your ESP's webhook URL."
        )
