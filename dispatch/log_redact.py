"""Keeps credentials out of log lines: `token=` and `ticket=` values in any logged URL become `[redacted]`.

uvicorn logs each WebSocket handshake with its full path and query string on
`uvicorn.error` ('127.0.0.1:5000 - "WebSocket /ws/notifications/?token=…" [accepted]'),
and each HTTP request the same way on `uvicorn.access`. config/settings.py LOGGING puts
this filter on those loggers and on our console handler.
"""
import logging
import re

SECRET_PARAMS = ("token", "ticket")
REDACTED = "[redacted]"
# `token=abc` as a query parameter: after `?`, `&` or `;` (or URL-encoded), up to the next separator.
_SECRET_VALUE = re.compile(r"(?i)((?:[?&;]|%26|%3f)(?:" + "|".join(SECRET_PARAMS) + r")=)[^&;\s\"'#]+")


def redact(text: str) -> str:
    return _SECRET_VALUE.sub(r"\1" + REDACTED, text)


class RedactSecretsFilter(logging.Filter):
    """Rewrites a record whose message carries a secret query parameter; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the formatter's to report, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        return True
