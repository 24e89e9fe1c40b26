"""The optional human check on sign-up (Cloudflare Turnstile or hCaptcha), off unless
SIGNUP_CHALLENGE names one. Both providers verify a widget's response with the same
kind of server-side call, so one small class serves both."""

import logging
from dataclasses import dataclass

import requests
from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Challenge:
    name: str
    response_field: str
    script_url: str
    widget_class: str
    verify_url: str

    @property
    def site_key(self) -> str:
        return settings.SIGNUP_CHALLENGE_SITE_KEY

    def verify(self, response: object, *, remote_ip: str | None) -> bool:
        """Ask the provider whether the widget's response is genuine. Fails closed: if
        the provider cannot be reached, the sign-up is refused with a message."""
        if not isinstance(response, str) or not response or len(response) > 4096:
            return False
        data = {"secret": settings.SIGNUP_CHALLENGE_SECRET_KEY, "response": response}
        if remote_ip:
            data["remoteip"] = remote_ip
        try:
            answer = requests.post(
                settings.SIGNUP_CHALLENGE_VERIFY_URL or self.verify_url, data=data, timeout=5
            )
            return bool(answer.json().get("success"))
        except (requests.RequestException, ValueError):
            logger.warning("%s verification failed", self.name, exc_info=True)
            return False


_CHALLENGES = {
    "turnstile": Challenge(
        name="turnstile",
        response_field="cf-turnstile-response",
        script_url="https://challenges.cloudflare.com/turnstile/v0/api.js",
        widget_class="cf-turnstile",
        verify_url="https://challenges.cloudflare.com/turnstile/v0/siteverify",
    ),
    "hcaptcha": Challenge(
        name="hcaptcha",
        response_field="h-captcha-response",
        script_url="https://js.hcaptcha.com/1/api.js",
        widget_class="h-captcha",
        verify_url="https://api.hcaptcha.com/siteverify",
    ),
}


def active_challenge() -> Challenge | None:
    """The configured challenge, or None when it is off."""
    name = settings.SIGNUP_CHALLENGE.strip().lower()
    if not name:
        return None
    try:
        return _CHALLENGES[name]
    except KeyError:
        raise ValueError(f"SIGNUP_CHALLENGE must be one of {sorted(_CHALLENGES)}") from None
