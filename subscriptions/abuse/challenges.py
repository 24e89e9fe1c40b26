"""The optional human check on sign-up, off unless SIGNUP_CHALLENGE names one.

A challenge is a widget on the form and a server-side check of the answer it posts,
behind one small interface, `Challenge`: the form asks `verify(response, remote_ip=...)`
and the templates read `script_url`, `widget_class`, `js_global` and `site_key`. Cloudflare
Turnstile and hCaptcha both check an answer with a POST to a siteverify endpoint, so
`SiteverifyChallenge` holds that mechanism and each provider is a small subclass.
"""

import logging
from abc import ABC, abstractmethod
from typing import ClassVar

import requests
from django.conf import settings

logger = logging.getLogger(__name__)


class Challenge(ABC):
    """A human check: the widget the page shows and the check of what it posts."""

    name: ClassVar[str]
    # The form field the widget posts its answer in.
    response_field: ClassVar[str]
    # The provider's script, the class of the element it renders the widget into, and
    # the global its script defines (an embed inserted after the script loaded asks it
    # to render the widget).
    provider_script_url: ClassVar[str]
    widget_class: ClassVar[str]
    js_global: ClassVar[str]

    @property
    def site_key(self) -> str:
        return settings.SIGNUP_CHALLENGE_SITE_KEY

    @property
    def script_url(self) -> str:
        # Overridden only to point at a stand-in (the real ones need the internet).
        return settings.SIGNUP_CHALLENGE_SCRIPT_URL or self.provider_script_url

    @abstractmethod
    def verify(self, response: object, *, remote_ip: str | None) -> bool:
        """True only if `response` (whatever the client posted in `response_field`) is
        a genuine answer. Fails closed: an unreachable provider means False."""


class SiteverifyChallenge(Challenge):
    """A provider that checks an answer with a form POST of the secret key and the
    answer to its siteverify URL, and says `{"success": true}` if it is genuine."""

    verify_url: ClassVar[str]
    # Real answers are about 2 KB; anything far longer is not worth a call.
    max_response_length: ClassVar[int] = 4096

    def verify(self, response: object, *, remote_ip: str | None) -> bool:
        if not isinstance(response, str) or not response:
            return False
        if len(response) > self.max_response_length:
            return False
        try:
            answer = requests.post(
                settings.SIGNUP_CHALLENGE_VERIFY_URL or self.verify_url,
                data=self.verify_data(response, remote_ip=remote_ip),
                timeout=5,
            )
            verdict = answer.json()
        except (requests.RequestException, ValueError):
            logger.warning("%s verification failed", self.name, exc_info=True)
            return False
        # Only a literal true counts: not "false" (a truthy string), not a list.
        return isinstance(verdict, dict) and verdict.get("success") is True

    def verify_data(self, response: str, *, remote_ip: str | None) -> dict[str, str]:
        """The fields of the siteverify POST."""
        data = {"secret": settings.SIGNUP_CHALLENGE_SECRET_KEY, "response": response}
        if remote_ip:
            data["remoteip"] = remote_ip
        return data


class Turnstile(SiteverifyChallenge):
    """Cloudflare Turnstile
    (https://developers.cloudflare.com/turnstile/get-started/server-side-validation/)."""

    name = "turnstile"
    response_field = "cf-turnstile-response"
    provider_script_url = "https://challenges.cloudflare.com/turnstile/v0/api.js"
    widget_class = "cf-turnstile"
    js_global = "turnstile"
    verify_url = "https://challenges.cloudflare.com/turnstile/v0/siteverify"


class HCaptcha(SiteverifyChallenge):
    """hCaptcha (https://docs.hcaptcha.com/#verify-the-user-response-server-side)."""

    name = "hcaptcha"
    response_field = "h-captcha-response"
    provider_script_url = "https://js.hcaptcha.com/1/api.js"
    widget_class = "h-captcha"
    js_global = "hcaptcha"
    verify_url = "https://api.hcaptcha.com/siteverify"

    def verify_data(self, response: str, *, remote_ip: str | None) -> dict[str, str]:
        # hCaptcha then refuses an answer that was issued for another site's key.
        return {**super().verify_data(response, remote_ip=remote_ip), "sitekey": self.site_key}


CHALLENGES: dict[str, type[Challenge]] = {
    challenge.name: challenge for challenge in (Turnstile, HCaptcha)
}


def active_challenge() -> Challenge | None:
    """The configured challenge, or None when it is off."""
    name = settings.SIGNUP_CHALLENGE.strip().lower()
    if not name:
        return None
    try:
        return CHALLENGES[name]()
    except KeyError:
        raise ValueError(f"SIGNUP_CHALLENGE must be one of {sorted(CHALLENGES)}") from None
