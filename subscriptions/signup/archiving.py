"""Archiving newsletters: how a newsletter is retired without losing anyone's proof of
consent (a newsletter with subscriptions cannot be deleted).

An archived newsletter is hidden from readers and refuses sign-ups like an unknown one;
editors and imports cannot add anyone to it. Its subscriptions stay exactly as they
were, with their consent records and events: history, and what an unarchived newsletter
comes back with. An unsubscribe link from an old email still works.

Archiving and the writes that add people to a newsletter take turns on the newsletter's
row (PostgreSQL). A write holds the row with `FOR KEY SHARE` (`hold_open`) for its
transaction, as the foreign-key check of a new subscription would at commit; the
archive takes it `FOR UPDATE`, which waits for those writes to commit, and a write that
starts meanwhile waits for the archive and then finds the newsletter archived. So no
subscription is added to a newsletter after its archive commits, whatever a process
still remembers about it.
"""

from collections.abc import Collection, Iterable, Sequence

from django.db import connection, transaction
from django.utils import timezone

from subscriptions.exceptions import UnknownNewsletter
from subscriptions.models import Newsletter

# In id order, the order the archive locks them in, so that two newsletters cannot be
# locked the other way round by each. SQLite has no row locks (it takes one writer at a
# time); there the read alone.
_HOLD_OPEN = (
    f"SELECT id FROM {Newsletter._meta.db_table} "  # noqa: S608 - the model's table name
    "WHERE id = ANY(%s) AND archived_at IS NULL ORDER BY id FOR KEY SHARE"
)


def hold_open(newsletter_ids: Collection[int]) -> set[int]:
    """Which of these newsletters exist and are not archived, kept so until the caller's
    transaction ends (an archive waits for it). Call inside that transaction."""
    if not newsletter_ids:
        return set()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_HOLD_OPEN, [list(newsletter_ids)])
            return {row[0] for row in cursor.fetchall()}
    return set(
        Newsletter.objects.current().filter(pk__in=newsletter_ids).values_list("pk", flat=True)
    )


def hold_open_or_refuse(newsletters: Sequence[Newsletter]) -> None:
    """`hold_open`, raising `UnknownNewsletter` naming those deleted or archived since
    the caller looked them up (a sign-up answers as for an unknown newsletter)."""
    open_ids = hold_open({newsletter.pk for newsletter in newsletters})
    closed = [newsletter.slug for newsletter in newsletters if newsletter.pk not in open_ids]
    if closed:
        raise UnknownNewsletter(closed)


def archive_newsletters(*, newsletter_ids: Iterable[int]) -> list[Newsletter]:
    """Archive those of the newsletters not archived yet; returns them."""
    return _set_archived(newsletter_ids, archived=True)


def unarchive_newsletters(*, newsletter_ids: Iterable[int]) -> list[Newsletter]:
    """Bring archived newsletters back, subscribers and all; returns them."""
    return _set_archived(newsletter_ids, archived=False)


def _set_archived(newsletter_ids: Iterable[int], *, archived: bool) -> list[Newsletter]:
    now = timezone.now()
    with transaction.atomic():
        # FOR UPDATE, the one row lock that waits for the sign-ups and imports holding
        # these newsletters open (see the module's docstring).
        newsletters = list(
            Newsletter.objects.select_for_update()
            .filter(pk__in=list(newsletter_ids), archived_at__isnull=archived)
            .order_by("pk")
        )
        for newsletter in newsletters:
            newsletter.archived_at = now if archived else None
            # save(), not update(): its signal makes this process forget its copy of
            # the public newsletters at once (signup/lookups.py).
            newsletter.save(update_fields=["archived_at"])
    newsletters.sort(key=lambda newsletter: (newsletter.position, newsletter.name))
    return newsletters
