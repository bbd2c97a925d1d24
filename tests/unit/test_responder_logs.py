"""The responder's stderr writer: a log reader that stops reading blocks a thread of its
own, never the caller; what cannot wait is dropped, counted and reported."""
from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

from ocsp_responder.logs import JsonFormatter, StderrWriter


def test_a_stalled_reader_blocks_neither_the_caller_nor_loses_order(tmp_path):
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    pipe_size = 0
    try:  # fill the pipe: the writer's next write blocks until someone reads
        while True:
            pipe_size += os.write(write_end, b"x" * 65536)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    writer = StderrWriter(JsonFormatter(), max_pending=2, fd=write_end)
    started = time.monotonic()
    writer.put("first\n")
    deadline = time.monotonic() + 5
    while writer._queue.qsize() and time.monotonic() < deadline:  # the thread took it and is blocked
        time.sleep(0.01)
    for text in ("second\n", "third\n", "fourth\n", "fifth\n"):
        writer.put(text)
    assert time.monotonic() - started < 1, "put() waited for the reader"
    assert writer.dropped == 2  # two queued, two dropped

    received = []

    def reader():
        os.set_blocking(read_end, True)
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                return
            received.append(chunk)

    thread = threading.Thread(target=reader)
    thread.start()
    writer.drain(5)
    os.close(write_end)
    thread.join(5)
    os.close(read_end)
    lines = b"".join(received)[pipe_size:].decode().splitlines()
    assert lines[0] == "first" and lines[2:] == ["second", "third"], lines
    notice = json.loads(lines[1])
    assert notice["level"] == "warning" and notice["dropped"] == 2
    assert notice["msg"] == "2 log lines dropped: the log reader did not keep up"


def test_the_writer_thread_takes_no_signals():
    """Signals must reach the main thread: the master blocks them around fork, and a
    handler that logs must not run inside the writer."""
    writer = StderrWriter(JsonFormatter(), fd=os.open(os.devnull, os.O_WRONLY))
    thread = next(t for t in threading.enumerate() if t.name == "log-writer" and t.is_alive())
    blocked = int(re.search(r"^SigBlk:\s+([0-9a-f]+)$", open(f"/proc/self/task/{thread.native_id}/status").read(),
                            re.M).group(1), 16)
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD):
        assert blocked & (1 << (number - 1)), number
    writer.drain(1)
