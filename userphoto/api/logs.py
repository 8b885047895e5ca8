"""The serving process's log lines: structured like the access log, each with the request id of
the request that caused it.

A request's id is its `X-Request-Id` header when that is a plausible id (letters, digits and
`-_.:@/+=`, at most `MAX_ID` characters; anything else is cleaned, never trusted as is), else
one made here (a per-process random prefix and a counter: unique across processes and
nodes, and nearly free). Every answer carries it back in `X-Request-Id`; the access-log line
and every other line logged while the request runs (its task, and the threads it hands work
to) carry it as `request_id`.

Lines other than the access log (userphoto's info and above, libraries' warnings and above,
tracebacks included) go to standard error as JSON objects (`time`, `level`, `logger`,
`message`, `request_id`, `error`) or logfmt, following `[server] access_log` (json when it
is off).
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import re
import sys
import time

MAX_ID = 128
_PLAIN_ID = re.compile(r"[A-Za-z0-9\-_.:@/+=]{1,128}")
_NOT_ID = re.compile(r"[^A-Za-z0-9\-_.:@/+=]")
_PREFIX = os.urandom(5).hex()
_COUNTER = itertools.count(1)

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "userphoto_request_id", default=None
)


def request_id(sent: str | bytes | None) -> str:
    """The id of a request that sent `sent` as its X-Request-Id (or none)."""
    if sent:
        text = sent.decode("latin-1") if isinstance(sent, bytes) else sent
        if _PLAIN_ID.fullmatch(text):
            return text
        cleaned = _NOT_ID.sub("", text)[:MAX_ID]
        if cleaned:
            return cleaned
    return f"{_PREFIX}-{next(_COUNTER):x}"


class StructuredFormatter(logging.Formatter):
    """One line per record, JSON or logfmt, with the current request's id."""

    def __init__(self, fmt: str = "json"):
        super().__init__()
        self.json = fmt != "logfmt"

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = REQUEST_ID.get()
        if rid is not None:
            fields["request_id"] = rid
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        if self.json:
            return json.dumps(fields, ensure_ascii=False, separators=(",", ":"))
        return " ".join(f"{k}={_logfmt(str(v))}" for k, v in fields.items())


def _logfmt(value: str) -> str:
    if value and all(c.isalnum() or c in "/._:{}~+=-@$" for c in value):
        return value
    return json.dumps(value)


def configure(fmt: str) -> None:
    """Structured lines for every logger of this serving process that reaches the root
    (ours, and libraries': the PostgreSQL pool's, say); granian's own keep their format."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(StructuredFormatter(fmt))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("userphoto").setLevel(logging.INFO)
