"""Signed tokens for links in emails, one salt per purpose.

Tokens carry ids, never addresses, and are signed with Django's signing framework, so
`SECRET_KEY_FALLBACKS` keeps links signed with an old key working after a rotation.
A confirmation token expires; an unsubscribe token does not (an unsubscribe link in a
years-old email must still work, RFC 8058). A preferences token records when it was
issued: it opens the page for good, but stands for the reader (may add newsletters)
only for PREFERENCES_LINK_MAX_AGE_DAYS, so a newsletter forwarded long ago cannot turn
every newsletter on for its reader.
"""

import base64
import hashlib
import hmac
import json
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from django.conf import settings
from django.core import signing
from django.utils import timezone

from subscriptions.exceptions import TokenExpired, TokenInvalid


def _now() -> datetime:
    """Seam for tests that need to move the clock."""
    return timezone.now()


@dataclass(frozen=True)
class ConfirmationClaim:
    subscription_ids: tuple[int, ...]
    issued_at: datetime
    # Sent after a bounce or a complaint, at the reader's request: confirming it lifts the
    # stop on the address (it reached the reader, and they pressed the button).
    reactivation: bool = False


class ConfirmationToken:
    """Confirms the subscriptions one sign-up left pending.

    The token records when it was issued; a subscription that became pending again
    after that (unsubscribed, then signed up anew) is not confirmed by the old link.
    """

    key_salt = "subscriptions.tokens.confirm"

    def make_token(self, subscription_ids: list[int], *, reactivation: bool = False) -> str:
        payload: dict[str, object] = {"s": sorted(subscription_ids), "t": int(_now().timestamp())}
        if reactivation:
            payload["r"] = 1
        return signing.dumps(payload, salt=self.key_salt, compress=True)

    def read_token(self, token: str, *, allow_expired: bool = False) -> ConfirmationClaim:
        """Return the claim, or raise `TokenInvalid` / `TokenExpired`."""
        try:
            payload = signing.loads(token, salt=self.key_salt)
            subscription_ids = tuple(int(pk) for pk in payload["s"])
            issued_at = datetime.fromtimestamp(int(payload["t"]), tz=UTC)
            reactivation = payload.get("r") == 1
        except (signing.BadSignature, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TokenInvalid from exc
        claim = ConfirmationClaim(
            subscription_ids=subscription_ids, issued_at=issued_at, reactivation=reactivation
        )
        max_age = timedelta(days=settings.CONFIRMATION_TOKEN_MAX_AGE_DAYS)
        if not allow_expired and _now() - issued_at > max_age:
            raise TokenExpired(claim)
        return claim


def _dumps(obj: object, *, salt: str, compress: bool = False) -> str:
    """`signing.dumps(obj, salt=salt, compress=compress)`, the same token, at half the
    cost: an issue signs two links for each of a million readers, and Django's signer
    derives its key afresh for every one. Here the key is derived once per salt and
    secret (tests/test_tokens.py holds the two equal; reading stays Django's, with its
    fallback keys)."""
    data = json.dumps(obj, separators=(",", ":")).encode("latin-1")
    prefix = ""
    if compress:
        compressed = zlib.compress(data)
        if len(compressed) < len(data) - 1:
            data, prefix = compressed, "."
    value = f"{prefix}{_b64(data)}:{signing.b62_encode(int(time.time()))}"
    key = _signing_key(salt, settings.SECRET_KEY)
    return f"{value}:{_b64(hmac.new(key, value.encode(), hashlib.sha256).digest())}"


@lru_cache(maxsize=32)
def _signing_key(salt: str, secret: str) -> bytes:
    # What django.utils.crypto.salted_hmac derives from the signer's salt and the secret.
    return hashlib.sha256(f"{salt}signer{secret}".encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).strip(b"=").decode()


class _IdToken:
    """A non-expiring token naming one row, for links that must work for years."""

    key_salt: str

    def make_token(self, pk: int) -> str:
        return _dumps(pk, salt=self.key_salt)

    def read_token(self, token: str) -> int:
        try:
            return int(signing.loads(token, salt=self.key_salt))
        except (signing.BadSignature, TypeError, ValueError) as exc:
            raise TokenInvalid from exc


class UnsubscribeToken(_IdToken):
    """Names one subscription; used in `List-Unsubscribe` and the footer link."""

    key_salt = "subscriptions.tokens.unsubscribe"


@dataclass(frozen=True)
class PreferencesClaim:
    subscriber_id: int
    # None for a link from before links carried it: as old as can be.
    issued_at: datetime | None

    @property
    def stands_for_the_reader(self) -> bool:
        """Fresh enough to add newsletters without another email to the address."""
        max_age = timedelta(days=settings.PREFERENCES_LINK_MAX_AGE_DAYS)
        return self.issued_at is not None and _now() - self.issued_at <= max_age


class PreferencesToken:
    """Names one subscriber and when the link was issued; opens their preferences page."""

    key_salt = "subscriptions.tokens.preferences"

    def make_token(self, subscriber_id: int) -> str:
        payload = {"s": subscriber_id, "t": int(_now().timestamp())}
        return _dumps(payload, salt=self.key_salt, compress=True)

    def read_token(self, token: str) -> PreferencesClaim:
        """The claim, or `TokenInvalid`. Links mailed before they carried a time (a
        bare id) still open the page."""
        try:
            payload = signing.loads(token, salt=self.key_salt)
            if isinstance(payload, dict):
                issued_at = datetime.fromtimestamp(int(payload["t"]), tz=UTC)
                return PreferencesClaim(subscriber_id=int(payload["s"]), issued_at=issued_at)
            return PreferencesClaim(subscriber_id=int(payload), issued_at=None)
        except (signing.BadSignature, KeyError, TypeError, ValueError, OverflowError) as exc:
            raise TokenInvalid from exc


@dataclass(frozen=True)
class PrivacyClaim:
    subscriber_id: int
    action: str


class PrivacyToken:
    """A reader's request to download or delete their data, confirmed from their
    inbox. Short-lived; an erasure link dies with the subscriber it names."""

    key_salt = "subscriptions.tokens.privacy"

    def make_token(self, subscriber_id: int, action: str) -> str:
        payload = {"s": subscriber_id, "a": action, "t": int(_now().timestamp())}
        return signing.dumps(payload, salt=self.key_salt, compress=True)

    def read_token(self, token: str) -> PrivacyClaim:
        """The claim, or `TokenInvalid` / `TokenExpired`."""
        try:
            payload = signing.loads(token, salt=self.key_salt)
            claim = PrivacyClaim(subscriber_id=int(payload["s"]), action=str(payload["a"]))
            issued_at = datetime.fromtimestamp(int(payload["t"]), tz=UTC)
        except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
            raise TokenInvalid from exc
        if _now() - issued_at > timedelta(hours=settings.PRIVACY_LINK_MAX_AGE_HOURS):
            raise TokenExpired(claim)
        return claim


confirmation_token = ConfirmationToken()
privacy_token = PrivacyToken()
unsubscribe_token = UnsubscribeToken()
preferences_token = PreferencesToken()
