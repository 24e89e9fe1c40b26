"""The one place that decides what a good address is, and how it is stored.

Syntax and normalisation come from `email-validator`; this module adds the product's
rules around it: one error message, a hard length cap before any parsing, no control
characters, and the stored form (IDNA domain, local part as typed).
"""

import hashlib
import sys
import unicodedata
from collections.abc import Callable
from functools import lru_cache, partial

import email_validator
import email_validator.syntax
import idna
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, DOT_ATOM_TEXT

# email-validator spends about half of each check on the domain (its IDNA mapping),
# and a list of a million addresses holds a few thousand domains, so the domain check
# remembers its answers. It is a pure function of its arguments whose result the
# caller only reads, so a remembered answer is exactly what a fresh call gives; a
# domain it refuses raises, which is never remembered. (The package's `validate_email`
# name is the function, so the module is reached through sys.modules.) Not a public
# interface: tests/test_library_patches.py fails when the pinned version changes it.
_checker_module = sys.modules["email_validator.validate_email"]
_checker_module.validate_email_domain_name = lru_cache(maxsize=65_536)(  # type: ignore[attr-defined]
    email_validator.syntax.validate_email_domain_name
)

INVALID_EMAIL_MESSAGE = _("Please, enter correct email address")
REFUSED_DOMAIN_MESSAGE = _("Please, use a different email address")
# RFC 5321 §4.5.3.1.3 limits a path to 256 octets including the angle brackets.
MAX_EMAIL_LENGTH = 254
# The deliverability check's DNS lookups (EMAIL_CHECK_DELIVERABILITY): a sign-up waits
# for them.
DNS_TIMEOUT_SECONDS = 2.0


def normalize_email(raw: object) -> str:
    """Return the address in its stored form, or raise `ValidationError`.

    Leading and trailing spaces (a common paste accident) are dropped; any other
    whitespace or control character, anywhere, is refused, so a CR/LF can never reach
    a header.
    """
    return _normalized(raw, shortcut=not settings.EMAIL_CHECK_DELIVERABILITY)


def email_normalizer() -> Callable[[object], str]:
    """`normalize_email` with the settings read once, for a caller that checks a
    million addresses in a row (an import): reading a Django setting costs a sixth of
    an everyday address's check."""
    return partial(_normalized, shortcut=not settings.EMAIL_CHECK_DELIVERABILITY)


def _normalized(raw: object, *, shortcut: bool) -> str:
    """`shortcut`: everyday addresses may skip email-validator's parser, which they
    may not when their domains' mail servers are to be looked up."""
    if not isinstance(raw, str):
        raise ValidationError(INVALID_EMAIL_MESSAGE, code="invalid")
    candidate = raw.strip(" ")
    if not candidate or len(candidate) > MAX_EMAIL_LENGTH:
        raise ValidationError(INVALID_EMAIL_MESSAGE, code="invalid")
    if _has_control_or_space(candidate):
        raise ValidationError(INVALID_EMAIL_MESSAGE, code="invalid")
    normalized = _everyday_address(candidate) if shortcut else None
    if normalized is None:
        normalized = _checked_by_email_validator(candidate)
    if len(normalized) > MAX_EMAIL_LENGTH:
        raise ValidationError(INVALID_EMAIL_MESSAGE, code="invalid")
    return normalized


def _checked_by_email_validator(candidate: str) -> str:
    """The stored form as email-validator's own `validate_email` gives it."""
    try:
        result = email_validator.validate_email(
            candidate,
            check_deliverability=settings.EMAIL_CHECK_DELIVERABILITY,
            allow_smtputf8=settings.EMAIL_ALLOW_SMTPUTF8,
            # strict adds RFC 5321 §4.5.3.1.1's 64-octet limit on the local part.
            strict=True,
            dns_resolver=_dns_resolver() if settings.EMAIL_CHECK_DELIVERABILITY else None,
        )
    except email_validator.EmailNotValidError as exc:
        raise ValidationError(INVALID_EMAIL_MESSAGE, code="invalid") from exc
    return f"{result.local_part}@{result.ascii_domain}"


# Characters that send an address down email-validator's slow, general parser: quoted
# local parts, display names, domain literals, comments, escapes.
_UNUSUAL = frozenset('"\\<>[]()')


def _everyday_address(candidate: str) -> str | None:
    """The stored form of an everyday address, or None to leave it to email-validator.

    `validate_email` spends most of its time on what almost no address has: quotes, a
    display name, Unicode. An ASCII address with one @ and a dot-atom local part takes
    exactly this path through it: the same local-part pattern, the same lower-casing of
    RFC 2142's role mailboxes, the same (memoised) domain check and length limits,
    without the character-by-character parser in front. An import checks a million
    addresses; tests/test_email_validation.py holds the two paths to the same answers.
    """
    if not candidate.isascii() or candidate.count("@") != 1 or not _UNUSUAL.isdisjoint(candidate):
        return None
    local, _, domain = candidate.partition("@")
    # strict: RFC 5321 §4.5.3.1.1's 64-octet limit on the local part.
    if not local or len(local) > 64 or not domain or not DOT_ATOM_TEXT.match(local):
        return None
    if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES:
        local = local.lower()
    try:
        checked = _checker_module.validate_email_domain_name(
            domain,
            test_environment=email_validator.TEST_ENVIRONMENT,
            globally_deliverable=email_validator.GLOBALLY_DELIVERABLE,
        )
    except email_validator.EmailNotValidError as exc:
        raise ValidationError(INVALID_EMAIL_MESSAGE, code="invalid") from exc
    # email-validator's length rule: the address as given, as normalised (the domain in
    # Unicode, which can be longer in UTF-8) and in ASCII, each at most 254 octets.
    unicode_form = f"{local}@{checked['domain']}"
    if len(candidate) > MAX_EMAIL_LENGTH or len(unicode_form.encode()) > MAX_EMAIL_LENGTH:
        raise ValidationError(INVALID_EMAIL_MESSAGE, code="invalid")
    return f"{local}@{checked['ascii_domain']}"


# Gmail ignores dots in the local part, and googlemail.com is the same mailbox.
_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def canonical_mailbox(address: str) -> str:
    """The mailbox a stored address delivers to, for counting sign-ups per person.

    Lower-cased, a "+tag" dropped (subaddressing, which nearly every provider
    delivers to the same mailbox), and for Gmail the dots dropped and the domain
    unified: "V.ictim+2@googlemail.com" is "victim@gmail.com". Without this each
    variant would get limits of its own, a route to bombing one inbox. Only for
    counting; the address is stored as typed.
    """
    local, _, domain = address.lower().rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in _GMAIL_DOMAINS:
        local, domain = local.replace(".", ""), "gmail.com"
    return f"{local}@{domain}"


def mailbox_key(address: str) -> str:
    """What a confirmation email records of the mailbox it goes to, so the daily cap
    counts per mailbox whichever variant of the address was typed: a hash of the
    canonical mailbox (the outbox keeps no second copy of the address)."""
    return hashlib.sha256(canonical_mailbox(address).encode()).hexdigest()[:32]


def _has_control_or_space(candidate: str) -> bool:
    """Any character of Unicode's control (C*) or separator (Z*) categories."""
    if candidate.isascii():
        # The same test for ASCII, at C speed (an import checks a million addresses):
        # its C* characters are exactly the unprintable ones, its only Z* the space.
        return not candidate.isprintable() or " " in candidate
    return any(unicodedata.category(ch)[0] in "CZ" for ch in candidate)


@lru_cache(maxsize=1)
def _dns_resolver():
    return email_validator.caching_resolver(timeout=DNS_TIMEOUT_SECONDS)


def check_domain_policy(address: str, rules: dict[str, str] | None = None) -> None:
    """Refuse an address whose domain editors blocked, or, with
    BLOCK_DISPOSABLE_EMAIL_DOMAINS on, a disposable-mail domain nobody allowed.

    `rules` (domain → kind) lets a caller that checks many addresses, an import, read
    the editors' rules once; without it they come from the per-process copy
    (`signup_lookups`), at most a second old.
    """
    from subscriptions.models import EmailDomainRule
    from subscriptions.signup.lookups import domain_rules as recent_domain_rules

    domain = address.rpartition("@")[2].lower()
    labels = domain.split(".")
    # The domain and every parent, most specific first: a rule on a parent covers it.
    candidates = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    if rules is None:
        rules = recent_domain_rules()
    for candidate in candidates:
        if candidate in rules:
            if rules[candidate] == EmailDomainRule.Kind.BLOCK:
                raise ValidationError(REFUSED_DOMAIN_MESSAGE, code="blocked_domain")
            return
    if settings.BLOCK_DISPOSABLE_EMAIL_DOMAINS and any(
        candidate in _disposable_domains() for candidate in candidates
    ):
        raise ValidationError(REFUSED_DOMAIN_MESSAGE, code="disposable_domain")


def domain_rules() -> dict[str, str]:
    """Every editor's domain rule (domain → kind): a short list, read once per import."""
    from subscriptions.models import EmailDomainRule

    return dict(EmailDomainRule.objects.values_list("domain", "kind"))


def normalize_domain(raw: str) -> str:
    """A domain as rules store it: lower-case IDNA, no surrounding dots or spaces."""
    domain = raw.strip().strip(".").lower()
    if domain.startswith("@"):
        domain = domain[1:]
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValidationError("Enter a domain such as example.org.", code="invalid") from exc
    if "." not in ascii_domain:
        raise ValidationError("Enter a domain such as example.org.", code="invalid")
    return ascii_domain


@lru_cache(maxsize=1)
def _disposable_domains() -> frozenset[str]:
    from disposable_email_domains import blocklist

    return frozenset(blocklist)
