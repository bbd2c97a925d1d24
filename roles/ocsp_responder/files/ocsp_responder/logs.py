"""Logging: JSON lines (or text) on stderr, and the per-request log.

Service events go through the ``logging`` module. The request log, one line per OCSP
request, is written by ``RequestLog`` instead: formatted straight to a buffer that is
flushed every ``FLUSH_INTERVAL`` seconds (or when large), because a LogRecord plus a
write and flush per request cost more than answering a cached request.

In a serving process both reach stderr through ``StderrWriter``, a thread of its own: a
reader that stops reading (journald stalled, a pipe nobody drains) blocks that thread
only, never the event loop. What cannot wait is dropped and counted, and the count is
logged once writing works again. The master of several workers writes directly: it
serves nothing, and it must have no thread when it forks."""
from __future__ import annotations

import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from typing import Optional

FLUSH_INTERVAL = 0.2
FLUSH_BYTES = 64 * 1024
# Writes (one log line, or one batch of request lines) waiting for stderr; beyond it they
# are dropped. At FLUSH_BYTES per batch that bounds the memory to a few hundred MB at worst.
MAX_PENDING_WRITES = 4096


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
                # The parser's reason on one line, client bytes escaped (str(exc) starts
                # "400, message:" and puts the reason on the lines after it).
                reason = repr(" ".join(str(exc.message or exc).split())[:200])[1:-1]
                remote = record.args[0] if isinstance(record.args, tuple) and record.args else None
                record.msg, record.args = "bad HTTP request: %s", (reason,)
                record.fields = {"remote": remote, "http_status": exc.code}
                record.exc_info = record.exc_text = None
                record.levelno, record.levelname = logging.INFO, "INFO"
        return True


class StderrWriter:
    """Writes to stderr from a thread of its own, in order; see the module docstring."""

    def __init__(self, formatter: logging.Formatter, max_pending: int = MAX_PENDING_WRITES, fd: int = 2):
        self.formatter = formatter  # of the notice about dropped lines
        self.max_pending = max_pending
        self.fd = fd
        self._queue: "queue.Queue" = queue.Queue(self.max_pending)
        self._lock = threading.Lock()
        self.dropped = 0
        # Signals stay with the main thread (the new thread inherits this mask): the
        # master's blocking around fork relies on it, and so do handlers that log.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        try:
            threading.Thread(target=self._run, name="log-writer", daemon=True).start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def put(self, text: str, lines: int = 1) -> None:
        try:
            self._queue.put_nowait(text)
        except queue.Full:
            with self._lock:
                self.dropped += lines

    def _run(self) -> None:
        pending = self._queue
        while True:
            text = pending.get()
            with self._lock:
                dropped, self.dropped = self.dropped, 0
            if dropped:
                text = self._dropped_notice(dropped) + text
            # The descriptor, not sys.stderr: a daemon thread blocked inside sys.stderr's
            # buffer holds its lock, and the interpreter aborts when it cannot flush at exit.
            data = text.encode("utf-8", "backslashreplace")
            try:
                while data:
                    data = data[os.write(self.fd, data):]
            except OSError:
                pass  # a closed stderr must not end the writer
            pending.task_done()

    def _dropped_notice(self, count: int) -> str:
        record = logging.LogRecord("ocsp_responder.log", logging.WARNING, __file__, 0,
                                   "%d log lines dropped: the log reader did not keep up", (count,), None)
        record.fields = {"dropped": count}
        return self.formatter.format(record) + "\n"

    def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until what is queued is written: before the process
        exits. A drop count not yet reported goes out with an empty write."""
        deadline = time.monotonic() + timeout
        if self.dropped:
            self.put("", 0)
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)


class _WriterHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_stderr(self.format(record) + "\n")
        except Exception:  # pylint: disable=broad-except
            self.handleError(record)


_writer: Optional[StderrWriter] = None
_formatter: logging.Formatter = logging.Formatter()


def write_stderr(text: str, lines: int = 1) -> None:
    """Through the writer thread once logging is set up, else directly."""
    if _writer is not None:
        _writer.put(text, lines)
        return
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a closed or full stderr must not take requests down


def drain_logs(timeout: float = 2.0) -> None:
    if _writer is not None:
        _writer.drain(timeout)


def start_log_writer() -> None:
    """In a process that serves (a worker, or the only process): from now on through a thread."""
    global _writer  # pylint: disable=global-statement
    if _writer is None:
        _writer = StderrWriter(_formatter)


def setup_logging(level: str, fmt: str) -> None:
    global _formatter  # pylint: disable=global-statement
    formatter = JsonFormatter() if fmt == "json" else TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    _formatter = formatter
    handler = _WriterHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(ClientErrorFilter())


class RequestLog:
    """Buffered request lines in the same shape as the service log
    (``logger: ocsp_responder.access``, ``msg: request``)."""

    def __init__(self, fmt: str = "json"):
        self.json = fmt == "json"
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
        lines, self._buffer, self._size = self._buffer, [], 0
        write_stderr("".join(lines), len(lines))
