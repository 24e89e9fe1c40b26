"""What every CSV file we write needs: cells a spreadsheet will not run, and a buffer
that lets csv.writer stream."""

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: str) -> str:
    """A cell starting with = + - @ (or a tab or CR) runs as a formula in spreadsheet
    apps: CSV injection (OWASP). A leading apostrophe makes it text."""
    return f"'{value}" if value[:1] in _FORMULA_STARTS else value


def csv_unguarded(value: str) -> str:
    """A cell as it was before `csv_safe` (our own export) guarded it, so an export
    imports back as it was: `'-ann@example.org` is the address `-ann@example.org`."""
    return value[1:] if value[:1] == "'" and value[1:2] in _FORMULA_STARTS else value


class EchoBuffer:
    """csv.writer writes to this and gets the line back, to stream it."""

    def write(self, value: str) -> str:
        return value
