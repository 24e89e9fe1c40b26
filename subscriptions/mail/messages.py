"""Building messages from outbox rows: subject, plain text, HTML, headers, metadata.

Rendering happens in the worker, not the request, and links are made absolute from
SITE_URL because there is no request to build them from. A subscriber's email is
written in their language, and its links open our pages in that language too.
"""

from urllib.parse import urlsplit

from anymail.message import AnymailMessage
from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from subscriptions import languages
from subscriptions.models import MemberCount, Newsletter, OutboundEmail, Subscription
from subscriptions.tokens import (
    confirmation_token,
    preferences_token,
    privacy_token,
    unsubscribe_token,
)


def absolute_url(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def reader_url(viewname: str, token: str) -> str:
    """An absolute link to a reader's page, in the language being written in."""
    path = reverse(viewname, args=[token])
    return absolute_url(languages.with_language(path, translation.get_language()))


def unsubscribe_url(subscription: Subscription) -> str:
    return reader_url("subscriptions:unsubscribe", unsubscribe_token.make_token(subscription.pk))


def preferences_url(subscriber_id: int) -> str:
    return reader_url("subscriptions:preferences", preferences_token.make_token(subscriber_id))


def list_id(subscription: Subscription) -> str:
    return newsletter_list_id(subscription.newsletter)


def newsletter_list_id(newsletter: Newsletter) -> str:
    """RFC 2919 List-Id: a label and a unique id under a domain the sender controls."""
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    name = newsletter.name.replace('"', "'")
    return f'"{name}" <{newsletter.slug}.{domain}>'


def message_id(outbound: OutboundEmail) -> str:
    """The same Message-ID on every attempt at one row (RFC 5322 §3.6.4): should a
    worker die after the ESP accepted the message but before the row says so, the
    second copy carries the first one's id, which mailbox providers such as Gmail fold
    into one. Unique: the row's id and the moment it was queued, under our domain."""
    domain = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"<outbound.{outbound.pk}.{outbound.created_at:%Y%m%d%H%M%S%f}@{domain}>"


def build_message(
    outbound: OutboundEmail, subscriptions: list[Subscription] | None = None
) -> AnymailMessage:
    """The message for an outbox row. `subscriptions`: the ones it is about, with their
    newsletters, by newsletter position, when the caller has read them already."""
    # The editors' milestone mail has no subscriber: the site's language.
    language = settings.LANGUAGE_CODE
    if outbound.subscriber is not None:
        language = languages.of_subscriber(outbound.subscriber.language)
    with translation.override(language):
        return _build_message(outbound, subscriptions)


def _build_message(
    outbound: OutboundEmail, subscriptions: list[Subscription] | None
) -> AnymailMessage:
    if outbound.kind == OutboundEmail.Kind.MILESTONE:
        return _milestone_message(outbound)
    if outbound.kind in _PRIVACY_ACTIONS:
        return _privacy_message(outbound)
    if outbound.kind == OutboundEmail.Kind.PREFERENCES_LINK:
        return _preferences_link_message(outbound)
    if subscriptions is None:
        subscriptions = list(
            outbound.subscriptions.select_related("newsletter").order_by(
                "newsletter__position", "pk"
            )
        )
    if outbound.kind in OutboundEmail.CONFIRMATION_KINDS:
        return _confirmation_message(outbound, subscriptions)
    if outbound.kind == OutboundEmail.Kind.WELCOME:
        return _welcome_message(outbound, subscriptions[0])
    raise ValueError(f"unknown outbound email kind {outbound.kind!r}")


def _confirmation_message(
    outbound: OutboundEmail, subscriptions: list[Subscription]
) -> AnymailMessage:
    reactivation = outbound.kind == OutboundEmail.Kind.REACTIVATION
    token = confirmation_token.make_token([s.pk for s in subscriptions], reactivation=reactivation)
    context = {
        "site_name": settings.SITE_NAME,
        "newsletters": [s.newsletter for s in subscriptions],
        "confirm_url": reader_url("subscriptions:confirm", token),
        "max_age_days": settings.CONFIRMATION_TOKEN_MAX_AGE_DAYS,
        # Asked for from the preferences page after we stopped sending to the address.
        "reactivation": reactivation,
    }
    # Transactional mail: no List-Unsubscribe, the reader has not subscribed yet.
    return _message(
        outbound,
        template="confirmation",
        context=context,
        from_email=settings.DEFAULT_FROM_EMAIL,
        headers={},
        subscription_ids=[s.pk for s in subscriptions],
    )


def _welcome_message(outbound: OutboundEmail, subscription: Subscription) -> AnymailMessage:
    unsubscribe = unsubscribe_url(subscription)
    list_unsubscribe = f"<{unsubscribe}>"
    if settings.UNSUBSCRIBE_MAILTO:
        token = unsubscribe_token.make_token(subscription.pk)
        list_unsubscribe += (
            f", <mailto:{settings.UNSUBSCRIBE_MAILTO}?subject=unsubscribe%20{token}>"
        )
    context = {
        "site_name": settings.SITE_NAME,
        "newsletter": subscription.newsletter,
        "unsubscribe_url": unsubscribe,
        "preferences_url": preferences_url(subscription.subscriber_id),
    }
    headers = {
        "List-Id": list_id(subscription),
        # RFC 2369; HTTPS first, because one-click (RFC 8058) works only with it.
        "List-Unsubscribe": list_unsubscribe,
        # RFC 8058: the ESP or mailbox provider POSTs this body to the URL above.
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    return _message(
        outbound,
        template="welcome",
        context=context,
        from_email=settings.NEWSLETTER_FROM_EMAIL,
        headers=headers,
        subscription_ids=[subscription.pk],
    )


_PRIVACY_ACTIONS: dict[str, str] = {
    OutboundEmail.Kind.PRIVACY_EXPORT: "export",
    OutboundEmail.Kind.PRIVACY_ERASURE: "erase",
}


def _privacy_message(outbound: OutboundEmail) -> AnymailMessage:
    action = _PRIVACY_ACTIONS[outbound.kind]
    if outbound.subscriber_id is None:
        raise ValueError("a privacy email goes to a subscriber")
    token = privacy_token.make_token(outbound.subscriber_id, action)
    context = {
        "site_name": settings.SITE_NAME,
        "erase": action == "erase",
        "link": reader_url("subscriptions:privacy", token),
        "hours": settings.PRIVACY_LINK_MAX_AGE_HOURS,
    }
    # Transactional: a reply to the reader's own request.
    return _message(
        outbound,
        template="privacy",
        context=context,
        from_email=settings.DEFAULT_FROM_EMAIL,
        headers={},
        subscription_ids=[],
    )


def _preferences_link_message(outbound: OutboundEmail) -> AnymailMessage:
    if outbound.subscriber_id is None:
        raise ValueError("a preferences link goes to a subscriber")
    context = {
        "site_name": settings.SITE_NAME,
        "link": preferences_url(outbound.subscriber_id),
        "days": settings.PREFERENCES_LINK_MAX_AGE_DAYS,
    }
    # Transactional: a reply to the reader's own request.
    return _message(
        outbound,
        template="preferences_link",
        context=context,
        from_email=settings.DEFAULT_FROM_EMAIL,
        headers={},
        subscription_ids=[],
    )


def _milestone_message(outbound: OutboundEmail) -> AnymailMessage:
    milestone = outbound.milestone
    if milestone is None:
        raise ValueError("a milestone email names its milestone")
    goal = milestone.goal
    members = MemberCount.objects.filter(pk=1).values_list("active", flat=True).first() or 0
    context = {
        "site_name": settings.SITE_NAME,
        "goal": goal,
        "milestone": milestone,
        "members": max(members, milestone.threshold),
        "reached_target": milestone.threshold >= goal.target,
        "goal_admin_url": absolute_url(
            reverse("admin:subscriptions_membershipgoal_change", args=[goal.pk])
        ),
    }
    # Mail to the newsroom's own editors: transactional, no list headers.
    return _message(
        outbound,
        template="milestone",
        context=context,
        from_email=settings.DEFAULT_FROM_EMAIL,
        headers={},
        subscription_ids=[],
    )


def _message(
    outbound: OutboundEmail,
    *,
    template: str,
    context: dict,
    from_email: str,
    headers: dict[str, str],
    subscription_ids: list[int],
) -> AnymailMessage:
    subject = " ".join(render_to_string(f"emails/{template}_subject.txt", context).split())
    message = AnymailMessage(
        subject=subject,
        body=render_to_string(f"emails/{template}.txt", context),
        from_email=from_email,
        to=[outbound.to_email],
        headers={"Message-ID": message_id(outbound), **headers},
    )
    message.attach_alternative(render_to_string(f"emails/{template}.html", context), "text/html")
    # Tracking events from the ESP carry these back, so they map to our rows.
    message.metadata = {
        "message_type": outbound.kind,
        "outbound_email_id": str(outbound.pk),
        "subscriber_id": str(outbound.subscriber_id or ""),
        "subscription_ids": ",".join(str(pk) for pk in subscription_ids),
    }
    message.tags = [outbound.kind]
    return message
