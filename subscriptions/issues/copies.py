"""An issue's copies as messages: one reader's, a batch's for a provider's batch API,
and an editor's test.

Every copy carries its reader's own unsubscribe and preferences links, `List-Id`,
`List-Unsubscribe` with `List-Unsubscribe-Post` (RFC 2369, RFC 2919, RFC 8058), and the
metadata tracking events bring back (the issue's id, the subscriber's, the
subscription's).
"""

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from anymail.message import AnymailMessage
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from subscriptions import languages
from subscriptions.issues import rendering
from subscriptions.mail import messages
from subscriptions.models import Issue
from subscriptions.tokens import preferences_token, unsubscribe_token

MESSAGE_TYPE = "issue"
ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass
class Reader:
    delivery_id: int
    subscriber_id: int
    email: str
    language: str
    subscription_id: int


@dataclass(frozen=True)
class Links:
    unsubscribe: str
    preferences: str
    list_unsubscribe: str


_SIGNED_ID = "__signed_id__"


def links(issue: Issue, reader: Reader) -> Links:
    """The reader's own links, in their language."""
    unsubscribe_at, preferences_at = _link_templates(
        issue.pk, languages.of_subscriber(reader.language), settings.SITE_URL
    )
    token = unsubscribe_token.make_token(reader.subscription_id)
    unsubscribe = unsubscribe_at.replace(_SIGNED_ID, token)
    list_unsubscribe = f"<{unsubscribe}>"
    if settings.UNSUBSCRIBE_MAILTO:
        list_unsubscribe += (
            f", <mailto:{settings.UNSUBSCRIBE_MAILTO}?subject=unsubscribe%20{token}>"
        )
    return Links(
        unsubscribe,
        preferences_at.replace(_SIGNED_ID, preferences_token.make_token(reader.subscriber_id)),
        list_unsubscribe,
    )


@lru_cache(maxsize=64)
def _link_templates(issue_id: int, language: str, site_url: str) -> tuple[str, str]:
    """The two links with a stand-in for the token, worked out once per issue and
    language (a reverse() per reader was most of a batch's time); tokens are URL-safe,
    so putting one in gives what reverse() would."""
    with translation.override(language):
        unsubscribe = messages.reader_url("subscriptions:unsubscribe", _SIGNED_ID)
        preferences = messages.reader_url("subscriptions:preferences", _SIGNED_ID)
    # Which issue the reader left from, for its report (the link carries ?lang= already).
    unsubscribe += f"{'&' if '?' in unsubscribe else '?'}issue={issue_id}"
    return unsubscribe, preferences


def message_for(issue: Issue, reader: Reader, edition: rendering.Edition) -> AnymailMessage:
    """One reader's copy."""
    own = links(issue, reader)
    html, text = edition.for_reader(
        unsubscribe_url=own.unsubscribe, preferences_url=own.preferences
    )
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    message = AnymailMessage(
        subject=edition.subject,
        body=text,
        from_email=settings.NEWSLETTER_FROM_EMAIL,
        to=[reader.email],
        headers={
            # The same id on a copy sent twice, so mailbox providers fold the two.
            "Message-ID": f"<issue.{issue.pk}.{reader.subscriber_id}@{domain}>",
            "List-Id": messages.newsletter_list_id(issue.newsletter),
            "List-Unsubscribe": own.list_unsubscribe,
            "List-Unsubscribe-Post": ONE_CLICK,
        },
    )
    message.attach_alternative(html, "text/html")
    message.metadata = {
        "message_type": MESSAGE_TYPE,
        "issue_id": str(issue.pk),
        "subscriber_id": str(reader.subscriber_id),
        "subscription_ids": str(reader.subscription_id),
    }
    message.tags = [MESSAGE_TYPE]
    return message


def batch_message(
    issue: Issue, readers: list[Reader], edition: rendering.Edition, *, merge_field: str
) -> AnymailMessage:
    """One message to many readers through a provider's batch API (anymail's
    `merge_data`): the provider makes each reader's copy, putting their links where
    `merge_field` (the provider's syntax, e.g. Mailgun's `%recipient.{}%`) names them."""
    # One variable for both parts: the links' only character HTML could escape is the
    # "&" before "issue=", which no character reference begins with (HTML's
    # "ambiguous ampersand" rule), so it reads the same unescaped in an href; a second
    # pair of variables would add a third to every call's size.
    unsubscribe, preferences = merge_field.format("unsubscribe"), merge_field.format("preferences")
    html, text = edition.with_fields(
        unsubscribe_html=unsubscribe,
        preferences_html=preferences,
        unsubscribe_text=unsubscribe,
        preferences_text=preferences,
    )
    message = AnymailMessage(
        subject=edition.subject,
        body=text,
        from_email=settings.NEWSLETTER_FROM_EMAIL,
        to=[reader.email for reader in readers],
        headers={
            "List-Id": messages.newsletter_list_id(issue.newsletter),
            "List-Unsubscribe-Post": ONE_CLICK,
        },
    )
    message.attach_alternative(html, "text/html")
    message.merge_data = {}
    message.merge_headers = {}
    message.merge_metadata = {}
    for reader in readers:
        own = links(issue, reader)
        message.merge_data[reader.email] = {
            "unsubscribe": own.unsubscribe,
            "preferences": own.preferences,
        }
        message.merge_headers[reader.email] = {"List-Unsubscribe": own.list_unsubscribe}
        message.merge_metadata[reader.email] = {
            "subscriber_id": str(reader.subscriber_id),
            "subscription_ids": str(reader.subscription_id),
        }
    message.metadata = {"message_type": MESSAGE_TYPE, "issue_id": str(issue.pk)}
    message.tags = [MESSAGE_TYPE]
    return message


def test_message(issue: Issue, edition: rendering.Edition, *, to: str) -> AnymailMessage:
    """A copy for an editor to check: the issue as readers get it, its reader links
    going nowhere, its subject marked as a test."""
    html, text = edition.for_reader(unsubscribe_url="#", preferences_url="#")
    message = AnymailMessage(
        subject=f"[Test] {edition.subject}",
        body=text,
        from_email=settings.NEWSLETTER_FROM_EMAIL,
        to=[to],
        headers={"List-Id": messages.newsletter_list_id(issue.newsletter)},
    )
    message.attach_alternative(html, "text/html")
    message.metadata = {"message_type": "issue_test", "issue_id": str(issue.pk)}
    message.tags = ["issue_test"]
    return message


class Editions:
    """The issue rendered once per language, for as long as a worker sends it."""

    def __init__(self, issue: Issue) -> None:
        self._issue = issue
        self._rendered: dict[str, rendering.Edition] = {}

    def of(self, language: str) -> rendering.Edition:
        key = rendering.version(self._issue, languages.of_subscriber(language)).language
        if key not in self._rendered:
            self._rendered[key] = rendering.edition(
                self._issue, key, archive_url=archive_url(self._issue)
            )
        return self._rendered[key]

    def language_of(self, reader: Reader) -> str:
        """Which version a reader gets (readers of one version share a batch call)."""
        return rendering.version(self._issue, languages.of_subscriber(reader.language)).language


def archive_url(issue: Issue) -> str:
    """The issue's public page ("view in your browser"); none for a private newsletter."""
    if not issue.newsletter.is_public:
        return ""
    path = reverse("subscriptions:issue", args=[issue.newsletter.slug, issue.pk])
    return f"{settings.SITE_URL}{path}"
