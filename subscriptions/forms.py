"""The sign-up form, shared by the HTML page and the JSON API so both validate alike."""

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from subscriptions import selectors, services
from subscriptions.client import consent_from_request
from subscriptions.exceptions import UnknownNewsletter
from subscriptions.models import Newsletter
from subscriptions.validation import INVALID_EMAIL_MESSAGE, MAX_EMAIL_LENGTH, normalize_email

MAX_NEWSLETTERS_PER_SIGNUP = 50
CHOOSE_NEWSLETTER_MESSAGE = "Choose at least one newsletter."


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
            raise ValidationError("Send a list of newsletter slugs.", code="invalid")
        try:
            return selectors.newsletters_open_for_signup(value)
        except UnknownNewsletter as exc:
            names = ", ".join(slug[:100] for slug in exc.slugs[:5])
            raise ValidationError(f"Unknown newsletter: {names}", code="unknown") from exc


class SignupForm(forms.Form):
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
    # Honeypot: hidden from people by CSS and aria-hidden; bots fill every field.
    website = forms.Field(required=False)
    # Where the form was shown, for the consent record; cleaned there, never rejected.
    page_url = forms.Field(required=False, widget=forms.HiddenInput)

    def clean_email(self) -> str:
        return normalize_email(self.cleaned_data["email"])

    def submit(self, request: HttpRequest, *, source: str) -> None:
        """Sign the reader up. A filled honeypot means a bot: it gets the same answer
        from the caller, and nothing is stored or sent."""
        if self.cleaned_data.get("website"):
            return
        services.subscribe(
            email=self.cleaned_data["email"],
            newsletters=self.cleaned_data["newsletters"],
            source=source,
            consent=consent_from_request(request, page_url=self.cleaned_data.get("page_url")),
        )


class PreferencesForm(forms.Form):
    newsletters = forms.TypedMultipleChoiceField(coerce=int, required=False)

    def __init__(self, *args: object, offered: list[Newsletter], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["newsletters"].choices = [(n.pk, n.name) for n in offered]
