"""Masks email addresses and IP addresses in log records, so logs hold no personal data.

`MaskPersonalData` sits on every handler in settings.LOGGING (the Celery worker and beat
log through the same configuration) and on gunicorn's own handlers (gunicorn.conf.py).
It rewrites the record itself, message and traceback, so every formatter and every
later handler sees only the masked text:

- ``victim@example.org`` becomes ``v***@example.org``, also when URL-encoded
  (``victim%40example.org``): the domain helps to diagnose a provider's problem and
  names no one;
- ``203.0.113.9`` becomes ``203.0.113.x``;
- an IPv6 address keeps only its /48 (``2001:db8:1234::/48``): a client owns a whole
  /64, so a /64 would name it as surely as a full IPv4 address does.

The patterns err on the side of masking: a four-part version number reads as an IPv4
address. Three-part versions ("5.2.19"), times and dates are left alone.
"""

import ipaddress
import logging
import re

from pythonjsonlogger.json import JsonFormatter

# An "@" (or "%40", URL-encoded) followed by a domain with at least one dot; the local
# part is looked for in the 64 characters before it (RFC 5321's limit), so a long run
# of text costs linear time. The local part is RFC 5322 atext without the characters
# that delimit addresses in logs and URLs ({ } | / = ? & and quotes), with an
# apostrophe only inside it (o'brien): "{'victim@example.org'" masks only the address.
_AT = re.compile(r"@|%40")
_DOMAIN = re.compile(r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_](?:[\w-]{0,61}[^\W_])?")
_LOCAL_PART = re.compile(r"[\w!#$%*+\-^~.]+(?:'[\w!#$%*+\-^~.]+)*\Z")
_MAX_LOCAL_PART = 64
_IPV4 = re.compile(r"(?<![\d.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?!\d|\.\d)")
# Anything made of hex digits and at least two colons; ipaddress decides whether it is
# an address, so times ("22:04:03") and MAC addresses are left alone.
# An address may carry a prefix length ("2001:db8::1/64"); one of 48 or less names a
# network no narrower than the one kept, so it stays as it is (masked text stays masked).
_IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.])(?=[0-9a-f]*:[0-9a-f]*:)(?P<address>[0-9a-f:]{2,39})(?:/(?P<prefix>\d{1,3}))?"
    r"(?![\w:.])",
    re.IGNORECASE,
)
_IPV6_KEPT_PREFIX = 48


def mask_personal_data(text: str) -> str:
    """The text with every email address and IP address in it masked."""
    if "@" in text or "%40" in text:
        text = _mask_emails(text)
    if "." in text:
        text = _IPV4.sub(_mask_ipv4, text)
    if ":" in text:
        text = _IPV6_CANDIDATE.sub(_mask_ipv6, text)
    return text


def _mask_emails(text: str) -> str:
    parts: list[str] = []
    done = 0
    for at in _AT.finditer(text):
        if at.start() < done:
            continue  # inside the domain of the address just masked
        domain = _DOMAIN.match(text, at.end())
        local = _LOCAL_PART.search(text, max(done, at.start() - _MAX_LOCAL_PART), at.start())
        if domain is None or local is None:
            continue
        parts += [text[done : local.start()], local[0][0], "***", at[0], domain[0]]
        done = domain.end()
    return "".join(parts) + text[done:]


def _mask_ipv4(match: re.Match[str]) -> str:
    octets = match.groups()
    if any(int(octet) > 255 for octet in octets):
        return match[0]
    if all(int(octet) == 0 for octet in octets):
        return match[0]  # 0.0.0.0 ("listening on all interfaces") is nobody's address
    return ".".join((*octets[:3], "x"))


def _mask_ipv6(match: re.Match[str]) -> str:
    if not match["address"].replace(":", ""):
        return match[0]  # "::" alone is punctuation far more often than an address
    if match["prefix"] is not None and int(match["prefix"]) <= _IPV6_KEPT_PREFIX:
        return match[0]
    try:
        address = ipaddress.IPv6Address(match["address"])
    except ValueError:
        return match[0]
    network = ipaddress.IPv6Network((address, _IPV6_KEPT_PREFIX), strict=False)
    return f"{network.network_address}/{_IPV6_KEPT_PREFIX}"


class MaskPersonalData(logging.Filter):
    """Masks addresses in a record's message, arguments, traceback and stack.

    The message is formatted here, masked, and stored with its arguments dropped, so an
    address passed as an argument (``logger.warning("to %s", email)``) is masked too.
    The traceback is formatted into ``exc_text``, which formatters print instead of
    formatting ``exc_info`` again.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a filter must never make the logging call fail
            message = f"{record.msg} {record.args!r}"
        record.msg = mask_personal_data(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_personal_data(record.exc_text)
        if record.stack_info:
            record.stack_info = mask_personal_data(record.stack_info)
        return True


class MaskedJsonFormatter(JsonFormatter):
    """One JSON object per line (python-json-logger), masked like every line: the filter
    masks the message and the traceback's text, and this formatter, which formats a
    record's exception itself, masks that too."""

    def formatException(self, ei: object) -> str:  # noqa: N802 - logging's naming
        return mask_personal_data(super().formatException(ei))  # type: ignore[arg-type]


LOG_FORMATS = ("plain", "json")
_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def logging_config(level: str, log_format: str = "plain") -> dict:
    """settings.LOGGING: one console handler, masked, writing plain lines or
    (`log_format="json"`) one JSON object per line. The Celery worker and beat use this
    configuration too (newsroom/celery.py), and gunicorn's own loggers get the same
    filter (newsroom/gunicorn.conf.py)."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask_personal_data": {"()": "newsroom.log_privacy.MaskPersonalData"}},
        "formatters": {
            "plain": {"format": _FIELDS},
            "json": {"()": "newsroom.log_privacy.MaskedJsonFormatter", "fmt": _FIELDS},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["mask_personal_data"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        # Django's DEFAULT_LOGGING puts handlers of its own, without the filter, on the first
        # two; empty them so their records reach the masked root handler instead. redis-py
        # gives "push_response" a bare stderr handler when a PubSub opens (kombu's do), unless
        # the logger exists already.
        "loggers": {
            "django": {"handlers": [], "level": "NOTSET", "propagate": True},
            "django.server": {"handlers": [], "level": "NOTSET", "propagate": True},
            "push_response": {"handlers": [], "level": "NOTSET", "propagate": True},
        },
    }
