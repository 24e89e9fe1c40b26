"""Two places build on other libraries' internals, each for a measured reason (see the
modules). When an upgrade changes what they rely on, these fail loudly, naming the
module to re-read, instead of letting a sign-up or an import go quietly wrong:

- `signup/addresses.py` replaces email-validator's domain check, as `validate_email`
  looks it up, with a memoised copy of the same function;
- `platform/prepared.py` subclasses Django's `ServerBindingCursor` and calls
  `CursorDebugWrapper.debug_sql`, neither a public interface.

A fingerprint is the source of what is relied on, as the pinned version ships it.
After an upgrade: read the new source, check the module still holds, then record the
new fingerprint here (requirements.txt says so beside each pin).
"""

import hashlib
import inspect
import sys
from pathlib import Path

import email_validator
import email_validator.syntax
import pytest
from django.db import connection, connections
from django.db.backends.postgresql.base import CursorMixin, ServerBindingCursor
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper

from subscriptions.platform import prepared
from subscriptions.signup import addresses

REQUIREMENTS = Path(__file__).resolve().parent.parent / "requirements.txt"
CHECKER = sys.modules["email_validator.validate_email"]


def fingerprint(thing: object) -> str:
    return hashlib.sha256(inspect.getsource(thing).encode()).hexdigest()[:16]  # type: ignore[arg-type]


def pinned(package: str) -> str:
    for line in REQUIREMENTS.read_text().splitlines():
        name, _, version = line.partition("==")
        if name.split("[")[0].lower() == package:
            return version.strip()
    raise AssertionError(f"{package} is not pinned in requirements.txt")


# --- email-validator ------------------------------------------------------------------


def test_email_validator_is_the_version_the_patch_was_read_against() -> None:
    assert email_validator.__version__ == pinned("email-validator") == "2.4.0", (
        "email-validator changed: re-read subscriptions/signup/addresses.py"
    )
    assert fingerprint(email_validator.syntax.validate_email_domain_name) == "a54c0a297e940c0d"
    assert fingerprint(CHECKER.validate_email) == "f416bc836bc926c5"


def test_validate_email_looks_the_domain_check_up_where_the_patch_replaces_it() -> None:
    """The memoised copy is what `validate_email` calls: a module global it reads at
    call time, which the patch replaced; and it answers as the original does."""
    assert "validate_email_domain_name" in CHECKER.validate_email.__code__.co_names
    memoised = CHECKER.validate_email_domain_name
    assert memoised.__wrapped__ is email_validator.syntax.validate_email_domain_name
    parameters = inspect.signature(memoised.__wrapped__).parameters
    assert list(parameters) == ["domain", "test_environment", "globally_deliverable"]

    hits = memoised.cache_info().hits
    for _ in range(2):
        email_validator.validate_email("ann@patch-check.example.org", check_deliverability=False)
    assert memoised.cache_info().hits >= hits + 1

    original = email_validator.syntax.validate_email_domain_name("Bücher.Example")
    assert memoised("Bücher.Example") == original
    assert {"domain", "ascii_domain"} <= set(original)
    assert addresses.normalize_email("Ann@Bücher.Example") == "Ann@xn--bcher-kva.example"


def test_a_refused_domain_is_refused_every_time_not_remembered() -> None:
    memoised = CHECKER.validate_email_domain_name
    for _ in range(2):
        with pytest.raises(email_validator.EmailNotValidError):
            memoised("-bad-.example")


# --- Django's cursors --------------------------------------------------------------------


def test_django_is_the_version_the_prepared_cursor_was_read_against() -> None:
    import django

    assert django.__version__ == pinned("django") == "5.2.19", (
        "Django changed: re-read subscriptions/platform/prepared.py"
    )
    assert fingerprint(ServerBindingCursor) == "867ab9c95c4165ea"
    assert fingerprint(CursorMixin) == "04f0c40d5a83fbfe"
    assert fingerprint(CursorDebugWrapper.debug_sql) == "b9d41db9362ebf0a"
    assert fingerprint(CursorWrapper.execute) == "9c199f7ec639ad87"


def test_the_interfaces_the_prepared_cursor_calls_are_there() -> None:
    assert issubclass(prepared._PreparingCursor, ServerBindingCursor)
    assert list(inspect.signature(CursorDebugWrapper.debug_sql).parameters) == [
        "self",
        "sql",
        "params",
        "use_last_executed_query",
        "many",
    ]
    for name in ("make_cursor", "wrap_database_errors", "validate_thread_sharing"):
        assert hasattr(connection, name), name
    assert isinstance(type(connections["default"]).queries_logged, property)


@pytest.mark.postgres
@pytest.mark.django_db
def test_on_postgresql_the_cursor_prepares_binds_on_the_server_and_logs(settings) -> None:
    statement = "SELECT $1::int + 1 AS library_patch_check"
    settings.DEBUG = True  # the query log, through _LoggedCursor
    connection.queries_log.clear()
    for value in (1, 2):
        with prepared.prepared_cursor() as cursor:
            cursor.execute("SELECT %s::int + 1 AS library_patch_check", [value])
            assert cursor.fetchone() == (value + 1,)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = %s", [statement]
        )
        assert cursor.fetchone() == (1,)
    logged = [q["sql"] for q in connection.queries if "library_patch_check" in q["sql"]]
    assert logged[:2] == ["SELECT %s::int + 1 AS library_patch_check"] * 2
