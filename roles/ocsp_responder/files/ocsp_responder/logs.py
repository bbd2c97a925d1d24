"""Logging: JSON lines (or text) on stderr, and the per-request log.

Service events go through the ``logging`` module. The request log, one line per OCSP
request, is written by ``RequestLog`` instead: formatted straight to a buffer that is
flushed every ``FLUSH_INTERVAL`` seconds (or when large), because a LogRecord plus a
write and flush per request cost more than answering a cached request."""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Optional

FLUSH_INTERVAL = 0.2
FLUSH_BYTES = 64 * 1024


_second_cache = [-1, ""]


def _timestamp(created: float) -> str:
    second = int(created)
    if second != _second_cache[0]:  # strftime once per second, not per request line
        _second_cache[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return _second_cache[1] + ".%03dZ" % (int(created * 1000) % 1000)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return text


class ClientErrorFilter(logging.Filter):
    """aiohttp logs a request it cannot parse (line too long, bad header, broken
    chunking: the client's fault, answered 400) at ERROR with a traceback. On a public
    port that is noise: keep one info line without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            from aiohttp.http_exceptions import HttpProcessingError

            if isinstance(exc, HttpProcessingError):
                record.msg, record.args = "bad HTTP request: %s", (str(exc).splitlines()[0][:200],)
                record.exc_info = record.exc_text = None
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(ClientErrorFilter())


class RequestLog:
    """Buffered request lines in the same shape as the service log
    (``logger: ocsp_responder.access``, ``msg: request``)."""

    def __init__(self, fmt: str = "json", stream=None):
        self.json = fmt == "json"
        self.stream = stream or sys.stderr
        self.pid = os.getpid()
        self._buffer = []
        self._size = 0
        self._timer: Optional[object] = None

    def write(self, fields: dict, loop=None) -> None:
        now = time.time()
        if self.json:
            entry = {"ts": _timestamp(now), "level": "info", "logger": "ocsp_responder.access", "msg": "request",
                     "pid": self.pid}
            entry.update(fields)
            line = json.dumps(entry, default=str, separators=(",", ":")) + "\n"
        else:
            line = "%s INFO ocsp_responder.access: request %s\n" % (
                _timestamp(now), " ".join(f"{key}={value}" for key, value in fields.items()))
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES or loop is None:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        self._timer = None
        if not self._buffer:
            return
        data, self._buffer, self._size = "".join(self._buffer), [], 0
        try:
            self.stream.write(data)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full stderr must not take requests down
