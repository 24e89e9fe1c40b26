"""Reads used by views, the API and the admin."""

from collections.abc import Iterable

from django.db.models import Count, Q, QuerySet

from subscriptions.exceptions import UnknownNewsletter
from subscriptions.models import Newsletter, Subscriber, Subscription


def public_newsletters() -> QuerySet[Newsletter]:
    """What readers see: public and not archived."""
    return Newsletter.objects.public()


def public_newsletter(slug: str) -> Newsletter | None:
    return public_newsletters().filter(slug=slug).first()


def newsletters_open_for_signup(slugs: Iterable[str]) -> list[Newsletter]:
    """Resolve slugs a reader sent, in order, or raise `UnknownNewsletter` naming the
    ones that are not public newsletters (private, archived or unknown). Read from the
    per-process copy of the public newsletters (`signup_lookups`), at most a second
    old."""
    from subscriptions.signup.lookups import public_newsletters_by_slug

    wanted = list(dict.fromkeys(slugs))
    found = public_newsletters_by_slug()
    missing = [slug for slug in wanted if slug not in found]
    if missing:
        raise UnknownNewsletter(missing)
    return [found[slug] for slug in wanted]


def newsletters_with_status_counts() -> QuerySet[Newsletter]:
    """Newsletters annotated with `<status>_count` for every subscription status."""
    return Newsletter.objects.annotate(
        **{
            f"{status}_count": Count("subscriptions", filter=Q(subscriptions__status=status))
            for status in Subscription.Status.values
        }
    )


def preferences_for(subscriber: Subscriber) -> list[tuple[Newsletter, Subscription | None]]:
    """Every newsletter the preferences page offers: the public ones, plus any private
    one the reader is on, each with the reader's subscription if there is one.

    Archived newsletters are not offered: nothing to tick, and saving the page leaves
    the reader's subscription to one as it was (an old email's unsubscribe link still
    ends it)."""
    subscriptions = {
        s.newsletter_id: s
        for s in Subscription.objects.filter(subscriber=subscriber).select_related("newsletter")
    }
    offered = list(public_newsletters())
    offered_ids = {n.pk for n in offered}
    offered += [
        s.newsletter
        for s in subscriptions.values()
        if s.newsletter_id not in offered_ids and s.newsletter.archived_at is None
    ]
    offered.sort(key=lambda n: (n.position, n.name))
    return [(n, subscriptions.get(n.pk)) for n in offered]
