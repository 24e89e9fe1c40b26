"""What every CSV file we write needs: cells a spreadsheet will not run, and a buffer
that lets csv.writer stream."""


def csv_safe(value: str) -> str:
    """A cell starting with = + - @ (or a tab or CR) runs as a formula in spreadsheet
    apps: CSV injection (OWASP). A leading apostrophe makes it text."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class EchoBuffer:
    """csv.writer writes to this and gets the line back, to stream it."""

    def write(self, value: str) -> str:
        return value
