"""Addresses suppressed or erased while an import runs.

An import reads the suppression list once, at its start, and a million-row import runs
for half a minute (a resumed one for longer). A person erased (or an address that
bounced) in that time must not come back with a later chunk, so before each chunk is
written the list is read again for entries newer than the last one seen: one indexed
query a chunk. The chunk's rows for those addresses are skipped as suppressed, and the
reader, which checks rows a couple of chunks ahead, learns them too.

What is left is the few milliseconds between that query and the chunk's commit.
"""

from subscriptions.lists.imports.reading import SUPPRESSED, Chunk, Rejection, RowChecker
from subscriptions.mail.suppression import address_hash
from subscriptions.models import SuppressedAddress


def latest_entry_id() -> int:
    """Take before reading the list itself: an entry made between the two is seen
    twice, never missed."""
    return SuppressedAddress.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


class LateSuppressions:
    """Chunks are written one after another (pipeline.py), so no lock is needed."""

    def __init__(self, checker: RowChecker, *, after_id: int) -> None:
        self.checker = checker
        self.after_id = after_id
        # Every entry seen since the start, not only the newest: the reader may have
        # checked the next chunks before an entry arrived.
        self.plain: set[str] = set()
        self.hashed: set[str] = set()

    def drop_from(self, chunk: Chunk) -> None:
        newer = list(
            SuppressedAddress.objects.filter(pk__gt=self.after_id, lifted_at__isnull=True)
            .order_by("pk")
            .values_list("pk", "email", "email_hash")
        )
        if newer:
            self.after_id = newer[-1][0]
            self.plain |= {email.lower() for _, email, _ in newer if email}
            self.hashed |= {digest for _, _, digest in newer if digest}
            self.checker.suppressed |= self.plain
            self.checker.suppressed_hashes |= self.hashed
        if not (self.plain or self.hashed):
            return
        kept = []
        for row in chunk.rows:
            if row.email_ci in self.plain or (
                self.hashed and address_hash(row.email_ci) in self.hashed
            ):
                chunk.rejections.append(Rejection(row.line, row.email, SUPPRESSED))
            else:
                kept.append(row)
        chunk.rows = kept
