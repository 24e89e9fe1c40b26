"""The sign-up form, shared by the HTML page and the JSON API so both validate alike."""

from enum import Enum
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from subscriptions.abuse import bot_traps
from subscriptions.abuse.challenges import active_challenge
from subscriptions.exceptions import UnknownNewsletter
from subscriptions.models import Newsletter
from subscriptions.signup import selectors, services
from subscriptions.signup.addresses import (
    INVALID_EMAIL_MESSAGE,
    MAX_EMAIL_LENGTH,
    canonical_mailbox,
    check_domain_policy,
    normalize_email,
)
from subscriptions.signup.transitions import DEFAULT_CONSENT_TEXT, MAX_CONSENT_TEXT_LENGTH
from subscriptions.web.request_info import consent_from_request

MAX_NEWSLETTERS_PER_SIGNUP = 50
CHOOSE_NEWSLETTER_MESSAGE = _("Choose at least one newsletter.")


class NewsletterSlugsField(forms.Field):
    """A list of newsletter slugs, from repeated form fields or a JSON array."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: object) -> list[Newsletter]:
        if value in (None, "", [], ()):
            raise ValidationError(CHOOSE_NEWSLETTER_MESSAGE, code="required")
        if isinstance(value, str):
            value = [value]
        if (
            not isinstance(value, list | tuple)
            or not all(isinstance(slug, str) for slug in value)
            or len(value) > MAX_NEWSLETTERS_PER_SIGNUP
        ):
            raise ValidationError(_("Send a list of newsletter slugs."), code="invalid")
        try:
            return selectors.newsletters_open_for_signup(value)
        except UnknownNewsletter as exc:
            raise unknown_newsletter_error(exc) from exc


def unknown_newsletter_error(exc: UnknownNewsletter) -> ValidationError:
    names = ", ".join(
        "".join(ch for ch in slug[:100] if ch.isprintable()) for slug in exc.slugs[:5]
    )
    return ValidationError(
        _("Unknown newsletter: %(names)s"), code="unknown", params={"names": names}
    )


CHALLENGE_FAILED_MESSAGE = _("Please confirm you're not a robot and try again.")
CONFIRM_SIGNUP_MESSAGE = _(
    "One more step: we have not signed you up yet. Please press Subscribe again to confirm."
)
NOT_TEXT_MESSAGE = _("Send this field as a string.")


class OptionalTextField(forms.Field):
    """An optional string. Anything else (a number, a list, an object from a JSON
    caller) is refused rather than coerced, so `{"website": {}}` cannot slip past the
    honeypot as an empty value."""

    def __init__(self, *, max_length: int | None = None, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)
        self.max_length = max_length

    def to_python(self, value: object) -> str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValidationError(NOT_TEXT_MESSAGE, code="invalid")
        if self.max_length is not None and len(value) > self.max_length:
            raise ValidationError(
                _("Send at most %(limit)d characters."),
                code="max_length",
                params={"limit": self.max_length},
            )
        return value


class SignupOutcome(Enum):
    """What became of a sign-up, for the caller to answer."""

    # Signed up, or a filled honeypot answered as if it had been (nothing stored).
    DONE = "done"
    # The form token says this may not be a person: ask them to confirm, with a fresh one.
    CONFIRM = "confirm"
    # A newsletter went away meanwhile: the form carries the error.
    INVALID = "invalid"


class SignupForm(forms.Form):
    """Validates a sign-up and decides whether it came from a bot. Every public way in
    (our pages' forms, the embeds, the JSON API) carries a signed form token; see
    `bot_traps`."""

    # A bare Field: `normalize_email` alone judges the value, whatever its type, so
    # every bad address gets the one message the page promises.
    email = forms.Field(
        label="Email address",
        error_messages={"required": INVALID_EMAIL_MESSAGE},
        widget=forms.EmailInput(
            attrs={"autocomplete": "email", "maxlength": MAX_EMAIL_LENGTH, "required": True}
        ),
    )
    newsletters = NewsletterSlugsField(error_messages={"required": CHOOSE_NEWSLETTER_MESSAGE})
    # Honeypot: hidden from people by CSS and aria-hidden; bots fill every field. Any
    # value at all (a list, a number) counts as filled: a type error would tell the bot.
    website = forms.Field(required=False)
    # Where the form was shown, for the consent record (control characters dropped there).
    page_url = OptionalTextField(widget=forms.HiddenInput)
    form_token = OptionalTextField(widget=forms.HiddenInput)
    # The words another site showed next to its form (API only; our own form's are known).
    consent_text = OptionalTextField(max_length=MAX_CONSENT_TEXT_LENGTH)

    def __init__(self, *args: Any, remote_ip: str | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.remote_ip = remote_ip
        self.trapped = False
        self.token_verdict = bot_traps.TokenVerdict.MISSING

    def clean_email(self) -> str:
        address = normalize_email(self.cleaned_data["email"])
        check_domain_policy(address)
        return address

    def clean(self) -> dict:
        data = super().clean() or {}
        self.trapped = self.data.get("website") not in (None, "")
        self.token_verdict = bot_traps.judge_form_token(data.get("form_token"))
        challenge = active_challenge()
        # The second step asks for the challenge again, with the form; no call for a
        # sign-up that is not going through now.
        if challenge is not None and not self.trapped and self.token_is_human:
            response = self.data.get(challenge.response_field)
            if not challenge.verify(response, remote_ip=self.remote_ip):
                raise ValidationError(CHALLENGE_FAILED_MESSAGE, code="challenge")
        return data

    @property
    def token_is_human(self) -> bool:
        return self.token_verdict is bot_traps.TokenVerdict.HUMAN

    def submit(
        self, request: HttpRequest, *, source: str, caller_consent_text: bool
    ) -> SignupOutcome:
        """Sign the reader up, once the form is valid. A trapped bot gets the same
        answer from the caller, and nothing is stored or sent; a sign-up whose token
        does not look human (or was used for another address) is not made, and the
        caller asks the reader to confirm. INVALID, with the form's newsletters error,
        when a newsletter was deleted in the second since it was looked up: nothing is
        stored.

        `caller_consent_text`: record the `consent_text` the caller sent (another site's
        form, through the API) instead of the words our own form shows.
        """
        if self.trapped:
            return SignupOutcome.DONE
        address = self.cleaned_data["email"]
        if not self.token_is_human or not bot_traps.use_form_token(
            self.cleaned_data["form_token"], mailbox=canonical_mailbox(address)
        ):
            return SignupOutcome.CONFIRM
        # The words in the language the reader saw them in.
        consent_text = str(DEFAULT_CONSENT_TEXT)
        if caller_consent_text and self.cleaned_data.get("consent_text"):
            consent_text = self.cleaned_data["consent_text"]
        try:
            services.subscribe(
                email=address,
                newsletters=self.cleaned_data["newsletters"],
                source=source,
                consent=consent_from_request(
                    request, page_url=self.cleaned_data.get("page_url"), consent_text=consent_text
                ),
                language=translation.get_language() or "",
            )
        except UnknownNewsletter as exc:
            self.add_error("newsletters", unknown_newsletter_error(exc))
            return SignupOutcome.INVALID
        return SignupOutcome.DONE


class PreferencesForm(forms.Form):
    newsletters = forms.TypedMultipleChoiceField(coerce=int, required=False)

    def __init__(self, *args: Any, offered: list[Newsletter], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["newsletters"]
        assert isinstance(field, forms.TypedMultipleChoiceField)  # noqa: S101 - declared above
        field.choices = [(n.pk, n.name) for n in offered]
