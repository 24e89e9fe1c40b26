"""Reading an import file: CSV, plain or gzipped, streamed in chunks of checked rows.

Every address goes through the same `normalize_email` and domain policy as the sign-up
form. A row is rejected here (and listed in the report with its reason) when its
address is invalid or refused, when it repeats an address earlier in its chunk or in
the chunk before, when the file marks it unsubscribed, or when it cannot be read. What
survives is a chunk of `ImportRow`s: small tuples, so memory stays flat whatever the
file's size.
"""

import codecs
import csv
import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from ipaddress import ip_address
from pathlib import Path
from typing import BinaryIO, NamedTuple

from django.core.exceptions import ValidationError
from django.utils import timezone

from subscriptions.lists.csv_cells import csv_unguarded
from subscriptions.mail.suppression import address_hash
from subscriptions.models import Subscription
from subscriptions.signup.addresses import check_domain_policy, email_normalizer

Status = Subscription.Status

# Columns with a meaning; any other column is kept in the subscriber's attributes.
EMAIL, NAME, STATUS, CONSENT = "email", "name", "status", "consent_basis"
SIGNED_UP_AT, SIGNUP_IP = "signed_up_at", "signup_ip"
# Columns our own export writes that say nothing new about the person on import.
EXPORT_ONLY = {"newsletter", "source", "confirmed_at", "confirmation_ip", "unsubscribed_at"}
# Our export calls the consent basis what the reader was shown.
CONSENT_TEXT = "consent_text"
_KNOWN = {EMAIL, NAME, STATUS, CONSENT, CONSENT_TEXT, SIGNED_UP_AT, SIGNUP_IP} | EXPORT_ONLY
MAX_ATTRIBUTES = 30
MAX_ATTRIBUTE_LENGTH = 500


SUPPRESSED = "suppressed: the address bounced, complained or asked to be forgotten"
REPEAT = "a repeat of an earlier row"
MARKED_AS_LEFT = "marked %s in the file"
LEFT_REASONS = {MARKED_AS_LEFT % status for status in ("unsubscribed", "bounced", "complained")}


class ImportFileError(Exception):
    """The file as a whole cannot be read (not CSV, no email column, not a file)."""


# Named tuples, not dataclasses: a million of them are built per million rows, and a
# tuple is built at C speed (and is what COPY writes).
class ImportRow(NamedTuple):
    line: int
    email: str
    email_ci: str
    name: str
    attributes: str  # JSON
    target_status: str
    consent_basis: str
    signed_up_at: datetime | None
    signup_ip: str | None


class Rejection(NamedTuple):
    line: int
    email: str
    reason: str


@dataclass
class Chunk:
    rows: list[ImportRow]
    rejections: list[Rejection]
    bytes_read: int
    rows_read: int
    last_line: int


class ImportFile:
    """An open import file: rows in chunks, and how far into the file they are."""

    def __init__(self, path: Path) -> None:
        try:
            self._raw: BinaryIO = path.open("rb")
        except OSError as exc:
            raise ImportFileError(f"cannot open the file: {exc.strerror}") from exc
        self.size = path.stat().st_size
        compressed = self._raw.read(2) == b"\x1f\x8b"
        self._raw.seek(0)
        stream = gzip.GzipFile(fileobj=self._raw) if compressed else self._raw
        try:
            self.encoding = _encoding(stream.peek(_SAMPLE_BYTES)[:_SAMPLE_BYTES])
            # Bad bytes become U+FFFD and fail the row they are in, not the whole file.
            self._text = io.TextIOWrapper(
                stream, encoding=self.encoding, errors="replace", newline=""
            )
            first_line = self._text.readline()
        except (gzip.BadGzipFile, EOFError, OSError) as exc:
            self.close()
            raise ImportFileError("the file is empty or not CSV") from exc
        if not first_line.strip():
            self.close()
            raise ImportFileError("the file is empty or not CSV")
        found = _header(first_line)
        if found is None:
            self.close()
            raise ImportFileError("the first row must name the columns, one of them `email`")
        self.delimiter, self.columns = found
        self._reader = csv.reader(self._text, delimiter=self.delimiter)

    def close(self) -> None:
        self._raw.close()

    @property
    def bytes_read(self) -> int:
        # The compressed position for a gzip file: progress against its size on disk.
        return self._raw.tell()

    def records(self) -> Iterator[tuple[int, list[str] | None]]:
        """(line number, fields) per row; fields None for a row csv cannot parse."""
        while True:
            try:
                fields = next(self._reader)
            except StopIteration:
                return
            except csv.Error:
                # The reader started after the header, the file's line 1.
                yield self._reader.line_num + 1, None
                continue
            except (gzip.BadGzipFile, EOFError, OSError) as exc:
                raise ImportFileError("the compressed file is damaged") from exc
            if fields:
                yield self._reader.line_num + 1, fields


# Enough of the file's start to tell its encoding by.
_SAMPLE_BYTES = 64 * 1024
# Spreadsheets save CSV with a comma, or in much of Europe a semicolon; "CSV" from
# other tools is often tab-separated.
_DELIMITERS = (",", ";", "\t")


def _encoding(sample: bytes) -> str:
    """UTF-8 (with or without Excel's byte-order mark), UTF-16 when a byte-order mark
    says so, and Windows-1252 (Excel's "CSV" on Windows in Western Europe) when the
    start of the file has bytes UTF-8 cannot read and no character it can beyond ASCII.
    A UTF-8 file with a few broken bytes stays UTF-8: the rows holding them are
    reported, rather than every other name read wrongly."""
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(sample, final=False)
    if "\ufffd" in text and text.replace("\ufffd", "").lstrip("\ufeff").isascii():
        return "cp1252"
    return "utf-8-sig"


def _header(line: str) -> tuple[str, list[str]] | None:
    """The delimiter that makes the first line name an `email` column, and the names."""
    for delimiter in _DELIMITERS:
        try:
            names = next(csv.reader([line], delimiter=delimiter), [])
        except csv.Error:
            return None
        columns = [name.strip().lower() for name in names]
        if EMAIL in columns:
            return delimiter, columns
    return None


class RowChecker:
    """Turns raw records into checked rows, with the job's defaults."""

    def __init__(
        self,
        *,
        columns: list[str],
        target_status: str,
        consent_basis: str,
        rules: dict[str, str],
        suppressed: set[str],
        suppressed_hashes: set[str],
    ) -> None:
        self.columns = columns
        self.target_status = target_status
        self.consent_basis = consent_basis
        self.rules = rules
        # Lower-cased addresses, and the hashes erased ones left: read once per import.
        self.suppressed = suppressed
        self.suppressed_hashes = suppressed_hashes
        self._normalize_email = email_normalizer()
        # The domain policy's verdict per domain (a list holds a few thousand domains):
        # None when allowed, else the refusal's message.
        self._domain_verdicts: dict[str, str | None] = {}
        # Where each column is, worked out once rather than as a dict for every row. A
        # name given twice means its last column, as a dict of the row would.
        position = {name: index for index, name in enumerate(columns)}
        self._at = {name: position.get(name) for name in _KNOWN}
        self._extra = [
            (index, name[:100])
            for index, name in enumerate(columns)
            if name and name not in _KNOWN and position[name] == index
        ]

    def _cell(self, fields: list[str], name: str) -> str:
        index = self._at[name]
        return fields[index] if index is not None and index < len(fields) else ""

    def check(self, line: int, fields: list[str] | None) -> ImportRow | Rejection:
        if fields is None:
            return Rejection(line, "", "the row cannot be read as CSV")
        whole = "".join(fields)  # one search instead of one per cell, for the rare cases
        if "'" in whole and any(value[:1] == "'" for value in fields):
            fields = [csv_unguarded(value) for value in fields]
        given = self._cell(fields, EMAIL)
        if "\ufffd" in whole:
            return Rejection(line, given, "the row is not valid UTF-8")
        try:
            email = self._normalize_email(given)
        except ValidationError as exc:
            return Rejection(line, given, exc.messages[0])
        refusal = self._domain_verdict(email)
        if refusal is not None:
            return Rejection(line, given, refusal)
        status = self._cell(fields, STATUS)
        target = self._target_status(status) if status else self.target_status
        if target is None:
            return Rejection(line, given, MARKED_AS_LEFT % status.strip().lower())
        email_ci = email.lower()
        if email_ci in self.suppressed or (
            self.suppressed_hashes and address_hash(email_ci) in self.suppressed_hashes
        ):
            return Rejection(line, given, SUPPRESSED)
        return ImportRow(
            line=line,
            email=email,
            email_ci=email_ci,
            name=_printable(self._cell(fields, NAME))[:200],
            attributes=self._attributes(fields),
            target_status=target,
            consent_basis=_printable(
                self._cell(fields, CONSENT) or self._cell(fields, CONSENT_TEXT)
            )
            or self.consent_basis,
            signed_up_at=_datetime(self._cell(fields, SIGNED_UP_AT)),
            signup_ip=_ip(self._cell(fields, SIGNUP_IP)),
        )

    def _domain_verdict(self, email: str) -> str | None:
        domain = email.rpartition("@")[2]
        if domain not in self._domain_verdicts:
            try:
                check_domain_policy(email, self.rules)
            except ValidationError as exc:
                self._domain_verdicts[domain] = exc.messages[0]
            else:
                self._domain_verdicts[domain] = None
        return self._domain_verdicts[domain]

    def _target_status(self, given: str) -> str | None:
        """A status column can only lower the job's: a row that never confirmed stays
        pending, and one that left is not re-added (None)."""
        given = given.strip().lower()
        if given in (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED):
            return None
        if given == Status.PENDING:
            return Status.PENDING
        return self.target_status

    def _attributes(self, fields: list[str]) -> str:
        """The other columns that hold something, as a JSON object."""
        pairs = []
        for index, name in self._extra:
            if index < len(fields) and (value := fields[index]).strip():
                pairs.append(
                    f"{_json_string(name)}: "
                    f"{_json_string(_printable(value)[:MAX_ATTRIBUTE_LENGTH])}"
                )
                if len(pairs) == MAX_ATTRIBUTES:
                    break
        return "{" + ", ".join(pairs) + "}"


@dataclass
class _Batch:
    records: list[tuple[int, list[str] | None]]
    bytes_read: int
    last_line: int


def _batches(source: ImportFile, *, size: int, skip_through: int) -> Iterator[_Batch]:
    records: list[tuple[int, list[str] | None]] = []
    for line, fields in source.records():
        if line <= skip_through:
            continue
        records.append((line, fields))
        if len(records) >= size:
            yield _Batch(records, source.bytes_read, line)
            records = []
    if records:
        yield _Batch(records, source.bytes_read, records[-1][0])


def chunks(
    source: ImportFile, checker: RowChecker, *, size: int, skip_through: int = 0
) -> Iterator[Chunk]:
    """Checked rows in chunks of `size`, in file order, each address once in a chunk
    and its predecessor (later repeats are rejected), skipping lines up to
    `skip_through` (a resumed import)."""
    batches = _batches(source, size=size, skip_through=skip_through)
    checked = ((batch, [checker.check(*record) for record in batch.records]) for batch in batches)
    # The previous chunk's addresses too: while it commits, the next chunk is written
    # (pipeline.py), and the database holds back an insert of an address the other
    # transaction inserted until that one commits, so one repeat would stall the
    # whole chunk. Repeats from further back the database tells apart (writing.py).
    previous: dict[str, ImportRow] = {}
    for batch, results in checked:
        rows: dict[str, ImportRow] = {}
        rejections: list[Rejection] = []
        for result in results:
            if isinstance(result, Rejection):
                rejections.append(result)
            elif result.email_ci in rows or result.email_ci in previous:
                rejections.append(Rejection(result.line, result.email, REPEAT))
            else:
                rows[result.email_ci] = result
        previous = rows
        yield Chunk(
            list(rows.values()), rejections, batch.bytes_read, len(batch.records), batch.last_line
        )


# A JSON string, characters beyond ASCII kept as they are (json's own C function): an
# attributes object is a few flat pairs, so it is written without json.dumps's machinery.
_json_string = json.encoder.encode_basestring


def _printable(value: str) -> str:
    """Whitespace folded to single spaces, control characters dropped."""
    if not value.isprintable():
        value = "".join(ch if ch.isprintable() else " " for ch in value)
    return " ".join(value.split())


def _datetime(value: str) -> datetime | None:
    if not value or not (value := value.strip()):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def _ip(value: str) -> str | None:
    if not value:
        return None
    try:
        return str(ip_address(value.strip()))
    except ValueError:
        return None
