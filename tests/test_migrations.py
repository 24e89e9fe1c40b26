"""The models and the migrations agree: a change to a model without its migration (or a
move of the code that changed what Django sees) fails here, not at the next deploy."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_makemigrations_finds_nothing_to_write() -> None:
    out = StringIO()
    # --check exits non-zero when a migration is missing.
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
