"""Handing a claimed batch of copies to the provider, and reading back which it took.

Through a provider's batch API where anymail has one for the configured backend
(`BATCH_APIS`): one call carries up to its limit of readers, each with their own links,
headers and metadata. Elsewhere (SMTP, the console, providers without one) one message
per reader over one reused connection.
"""

import logging
from dataclasses import dataclass, field

from anymail.exceptions import AnymailInvalidAddress, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import get_connection

from subscriptions.issues import copies, throttle
from subscriptions.issues.copies import Reader
from subscriptions.models import Issue

logger = logging.getLogger(__name__)

# Readers a batch takes where the provider has no batch API.
PER_MESSAGE_BATCH = 500
_REFUSED_RECIPIENT = (AnymailRecipientsRefused, AnymailInvalidAddress)
# What anymail reports for a recipient the provider would not send to.
_REFUSED_STATUSES = {"rejected", "invalid"}


@dataclass(frozen=True)
class BatchApi:
    # How the provider writes a recipient's variable in a message's body.
    merge_field: str
    # Recipients one call may carry.
    recipients_per_call: int
    # Told to anymail for each call (`esp_extra`).
    esp_extra: dict[str, str] = field(default_factory=dict)


# anymail backends whose batch sending substitutes variables in the body as sent, from
# each provider's documentation: Mailgun's "recipient variables" and SendGrid's
# "substitutions" (one personalization a reader), 1,000 a call each. Postmark's and
# Amazon SES's batch APIs fill a template stored at the provider, not the body we
# render (anymail: "merge_data without template_id" is unsupported), so they send one
# message a reader, over one connection.
_RECIPIENT = "%recipient.{}%"
BATCH_APIS = {
    "anymail.backends.mailgun.EmailBackend": BatchApi(_RECIPIENT, 1000),
    "anymail.backends.sendgrid.EmailBackend": BatchApi(
        _RECIPIENT, 1000, {"merge_field_format": _RECIPIENT}
    ),
}


def batch_api() -> BatchApi | None:
    return BATCH_APIS.get(settings.EMAIL_BACKEND)


def batch_size() -> int:
    """Readers a worker claims at a time: one call's worth where there is a batch API,
    and no more than the caps let go in a second or an hour."""
    api = batch_api()
    size = api.recipients_per_call if api else PER_MESSAGE_BATCH
    caps = [cap for cap in (throttle.per_second(), throttle.per_hour()) if cap]
    return min([size, *caps])


@dataclass
class Handed:
    """What became of a batch: the copies the provider took, the ones it refused (with
    why), and the refusal that stopped the batch (the rest was not handed over)."""

    sent: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    not_sent: list[int] = field(default_factory=list)
    stopped_by: Exception | None = None


def hand_over(issue: Issue, readers: list[Reader], editions: copies.Editions) -> Handed:
    api = batch_api()
    if api is None:
        return _one_by_one(issue, readers, editions)
    return _in_batches(issue, readers, editions, api)


def _in_batches(
    issue: Issue, readers: list[Reader], editions: copies.Editions, api: BatchApi
) -> Handed:
    handed = Handed()
    # One call per version of the issue (a reader gets their language's).
    groups: dict[str, list[Reader]] = {}
    for reader in readers:
        groups.setdefault(editions.language_of(reader), []).append(reader)
    connection = get_connection()
    calls = [
        group[start : start + api.recipients_per_call]
        for language, group in groups.items()
        for start in range(0, len(group), api.recipients_per_call)
    ]
    for position, call in enumerate(calls):
        message = copies.batch_message(
            issue, call, editions.of(call[0].language), merge_field=api.merge_field
        )
        if api.esp_extra:
            message.esp_extra = dict(api.esp_extra)
        message.connection = connection
        try:
            message.send()
        except AnymailRecipientsRefused as exc:
            handed.refused.extend((r.delivery_id, _why(exc)) for r in call)
            continue
        except Exception as exc:  # noqa: BLE001 - anything else stops the batch: the provider's part
            handed.stopped_by = exc
            handed.not_sent.extend(r.delivery_id for c in calls[position:] for r in c)
            break
        statuses = message.anymail_status.recipients
        for reader in call:
            status = statuses.get(reader.email)
            if status is not None and status.status in _REFUSED_STATUSES:
                handed.refused.append((reader.delivery_id, f"{status.status} by the provider"))
            else:
                handed.sent.append(reader.delivery_id)
    return handed


def _one_by_one(issue: Issue, readers: list[Reader], editions: copies.Editions) -> Handed:
    handed = Handed()
    connection = get_connection()
    try:
        connection.open()
    except Exception as exc:  # noqa: BLE001 - no connection: the provider's part
        handed.stopped_by = exc
        handed.not_sent = [r.delivery_id for r in readers]
        return handed
    try:
        for position, reader in enumerate(readers):
            try:
                message = copies.message_for(issue, reader, editions.of(reader.language))
                message.connection = connection
                message.send()
            except _REFUSED_RECIPIENT as exc:
                handed.refused.append((reader.delivery_id, _why(exc)))
            except Exception as exc:  # noqa: BLE001 - anything else stops the batch
                handed.stopped_by = exc
                handed.not_sent = [r.delivery_id for r in readers[position:]]
                break
            else:
                handed.sent.append(reader.delivery_id)
    finally:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - what was sent is known; a failed close loses nothing
            logger.warning("issue %s: closing the connection failed", issue.pk, exc_info=True)
    return handed


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
