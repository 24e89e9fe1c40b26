"""Running an import in a test: start it as an editor would and run it here, in this
process and transaction, as the worker would."""

from collections.abc import Callable
from pathlib import Path

from subscriptions.lists.imports import jobs
from subscriptions.models import Newsletter, SubscriberImport


def import_file(
    path: Path,
    newsletter: Newsletter,
    *,
    status: str = "active",
    basis: str = "old list",
    on_chunk: Callable[[SubscriberImport], None] | None = None,
) -> SubscriberImport:
    job = jobs.start_import(
        newsletter=newsletter,
        target_status=status,
        consent_basis=basis,
        file_path=path,
        original_name=path.name,
        actor="admin:ann",
        enqueue=False,
    )
    return jobs.run_import(job.pk, on_chunk=on_chunk)
