"""A reload that returns when it is done: ``python -m ocsp_responder --reload MAINPID``.

SIGHUP alone returns at once, so ``systemctl reload`` (and an Ansible handler waiting on
health after it) could not tell a reload that took the new files from one still running or
one that refused them. Each serving process therefore keeps a record of its reloads in
``$RUNTIME_DIRECTORY/reloads/<pid>`` (systemd sets the variable for ``RuntimeDirectory=``):
how many SIGHUPs it has received, up to which one its last finished reload covers, and
what that reload could not load. The command notes the records, sends SIGHUP to the main
process (which forwards it to the workers), waits until every worker that had a record
has finished a reload begun after that, and exits 1 naming what was refused. A worker
without a record when the command begins (still starting) is not waited for; one that got
the SIGHUP reloads once ready, and /healthz shows the outcome."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

RECORDS_SUBDIR = "reloads"
RELOAD_TIMEOUT_SECONDS = 60.0
POLL_SECONDS = 0.05
log = logging.getLogger("ocsp_responder")


def records_directory() -> Optional[str]:
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    # systemd lists several directories separated by ':' when a unit names several.
    return os.path.join(runtime.split(":")[0], RECORDS_SUBDIR) if runtime else None


@dataclass
class ReloadRecord:
    """One serving process's reloads; written whole (temp file + rename) on each change."""
    hups: int = 0        # SIGHUPs received
    reloaded: int = 0    # the last finished reload began after this many SIGHUPs
    problems: List[str] = field(default_factory=list)  # what that reload left out of service
    path: Optional[str] = None

    @classmethod
    def for_this_process(cls) -> "ReloadRecord":
        directory = records_directory()
        record = cls(path=os.path.join(directory, str(os.getpid())) if directory else None)
        if directory:
            try:
                os.makedirs(directory, mode=0o750, exist_ok=True)
            except OSError:
                pass  # reported by the save below
        record.save()
        return record

    def save(self) -> None:
        if self.path is None:
            return
        temporary = f"{self.path}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as stream:
                json.dump({"hups": self.hups, "reloaded": self.reloaded, "problems": self.problems}, stream)
            os.replace(temporary, self.path)
        except OSError as exc:
            # Serving matters more than the record. A record left behind, no longer
            # updated, would make every --reload wait for this worker in vain: it goes,
            # so --reload does not wait for this worker until a later save succeeds.
            remove_record(os.path.dirname(self.path), os.getpid())
            log.warning("cannot write the reload record; --reload does not wait for this worker until "
                        "it can", extra={"fields": {"path": self.path, "error": exc.strerror}})

    def remove(self) -> None:
        if self.path is not None:
            remove_record(os.path.dirname(self.path), os.getpid())


def remove_record(directory: Optional[str], pid: int) -> None:
    if directory is None:
        return
    for name in (str(pid), f"{pid}.tmp"):
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def read_records(directory: str) -> Dict[int, dict]:
    """The records of processes still alive, by pid."""
    records = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return records
    for name in names:
        if not name.isdigit() or not alive(int(name)):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as stream:
                records[int(name)] = json.load(stream)
        except (OSError, ValueError):
            continue  # gone since the listing (the worker ended)
    return records


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def responder_problem(pid: int) -> Optional[str]:
    """Why ``pid`` is not a responder to send SIGHUP to, else None."""
    if pid <= 1:  # 0: our own process group, -1: every process we may signal
        return f"{pid} is not a process id to reload"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            command = stream.read().split(b"\0")
    except FileNotFoundError:
        return f"no process {pid}"
    except OSError:
        return None  # /proc hidden from us: kill() says whether it exists
    if b"ocsp_responder" not in command:
        return f"process {pid} is not an OCSP responder ({b' '.join(command).decode(errors='replace')[:80]})"
    return None


def reload_and_wait(main_pid: int, timeout: float = RELOAD_TIMEOUT_SECONDS) -> int:
    """The ``--reload`` command: 0 when every worker reloaded everything, 1 otherwise."""
    directory = records_directory()
    if directory is None:
        return fail("RUNTIME_DIRECTORY is not set: it must name the directory the responder was started "
                    "with (systemd sets it for RuntimeDirectory=)")
    problem = responder_problem(main_pid)
    if problem:
        return fail(problem)
    try:
        before = read_records(directory)
        os.kill(main_pid, signal.SIGHUP)
    except ProcessLookupError:
        return fail(f"no process {main_pid}")
    except OSError as exc:
        return fail(f"{exc.strerror} (run it as the service's user, as systemd's ExecReload does)")
    if not before:
        print("ocsp_responder: reload sent; no worker was serving yet, each reads the files as it starts")
        return 0
    deadline = time.monotonic() + timeout
    waiting = {pid: record["hups"] for pid, record in before.items()}
    problems: List[str] = []
    ended = []
    while waiting:
        now_records = read_records(directory)
        for pid in list(waiting):
            record = now_records.get(pid)
            if record is None:  # the worker ended; a replacement loads the files at its start
                del waiting[pid]
                ended.append(pid)
            elif record["reloaded"] > waiting[pid]:
                del waiting[pid]
                problems.extend(problem for problem in record["problems"] if problem not in problems)
        if not waiting:
            break
        if time.monotonic() >= deadline:
            return fail(f"no reload finished within {timeout:g} s in worker(s) {', '.join(map(str, sorted(waiting)))}")
        time.sleep(POLL_SECONDS)
    for problem in problems:
        print(f"ocsp_responder: reload: not in service: {problem}", file=sys.stderr)
    if not alive(main_pid):
        return fail(f"the responder {main_pid} ended during the reload")
    if len(ended) == len(before):
        return fail(f"every worker ({', '.join(map(str, sorted(ended)))}) ended during the reload")
    if problems:
        return 1
    gone = f"; {len(ended)} ended meanwhile, replaced by workers that read the files as they start" if ended else ""
    print(f"ocsp_responder: reloaded ({len(before) - len(ended)} worker(s){gone})")
    return 0


def fail(message: str) -> int:
    print(f"ocsp_responder: --reload: {message}", file=sys.stderr)
    return 1
