"""Certificate status from an OpenSSL ``index.txt``, watched for changes.

Format (one certificate per line, six tab-separated fields, as ``openssl ca`` writes it):
``status  expiry  revocation  serial(hex)  filename  subject`` with status V (valid),
R (revoked) or E (expired) and revocation ``time[,reason[,extra]]`` for R lines. Lines
that start with ``#`` are comments (openssl's TXT_DB skips them too).

A table is ``{serial (int): status tuple}``. Valid and expired entries share one tuple
object (both are answered "good"), so a million entries cost little more than the dict
itself. A file that does not parse completely is rejected as a whole: the last good table
stays in service and the error is kept for health and metrics."""
from __future__ import annotations

import calendar
import logging
import os
import threading
import time
from typing import Dict, Optional, Set, Tuple

log = logging.getLogger("ocsp_responder.status")

# (status, revocation time as POSIX seconds, CRLReason code or -1 for "no reason")
Status = Tuple[str, int, int]
GOOD: Status = ("good", 0, -1)

REMOVE_FROM_CRL = 8
# Seconds to look again for an index that is missing (between openssl ca's two renames).
RENAME_GRACE = 0.05
# A SIGHUP reads a file that changes under it again, up to this many times in all.
FORCED_READ_ATTEMPTS = 5

# openssl ca's reason names (compared case-insensitively, as openssl does) -> CRLReason.
REASON_CODES = {
    "unspecified": 0,
    "keycompromise": 1,
    "cacompromise": 2,
    "affiliationchanged": 3,
    "superseded": 4,
    "cessationofoperation": 5,
    "certificatehold": 6,
    "removefromcrl": REMOVE_FROM_CRL,
    "holdinstruction": 6,
    "keytime": 1,
    "cakeytime": 2,
}


class IndexFormatError(ValueError):
    """The index does not parse; the message names the line."""


def parse_index_time(text: str) -> int:
    """POSIX seconds from ``YYMMDDHHMMSSZ`` (UTCTime) or ``YYYYMMDDHHMMSSZ``."""
    if len(text) == 13 and text[12] == "Z" and text[:12].isdigit():
        year = int(text[0:2])
        year += 1900 if year >= 50 else 2000
        rest = text[2:12]
    elif len(text) == 15 and text[14] == "Z" and text[:14].isdigit():
        year = int(text[0:4])
        rest = text[4:14]
    else:
        raise ValueError(f"bad time {text!r}")
    month, day, hour, minute, second = (int(rest[i:i + 2]) for i in range(0, 10, 2))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(f"bad time {text!r}")
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def parse_revocation(text: str) -> Status:
    parts = text.split(",")
    revoked_at = parse_index_time(parts[0])
    reason = -1
    if len(parts) > 1 and parts[1]:
        try:
            reason = REASON_CODES[parts[1].lower()]
        except KeyError:
            raise ValueError(f"unknown revocation reason {parts[1]!r}") from None
    if reason == REMOVE_FROM_CRL:
        # RFC 5280 §5.3.1: the certificate was released from hold. OCSP's "revoked" means
        # revoked or on hold (RFC 6960 §2.2), so it is good again.
        return GOOD
    return ("revoked", revoked_at, reason)


def parse_index(data: bytes) -> Dict[int, Status]:
    """The whole file or an IndexFormatError: never a partial table."""
    if data and not data.endswith(b"\n"):
        raise IndexFormatError("last line is not terminated (file partially written?)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IndexFormatError(f"not UTF-8 at byte {exc.start}") from None
    table: Dict[int, Status] = {}
    lines = text.split("\n")
    lines.pop()  # after the final newline
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            continue  # a comment, as openssl's TXT_DB reads the file
        fields = line.split("\t")
        if len(fields) != 6:
            raise IndexFormatError(f"line {number}: expected 6 tab-separated fields, got {len(fields)}")
        status, _expiry, revocation, serial_hex = fields[0], fields[1], fields[2], fields[3]
        try:
            serial = int(serial_hex, 16)
            if status == "R":
                table[serial] = parse_revocation(revocation)
            elif status in ("V", "E"):
                if revocation:
                    raise ValueError(f"revocation field set on a {status} entry")
                table[serial] = GOOD
            else:
                raise ValueError(f"unknown status {status!r}")
        except ValueError as exc:
            raise IndexFormatError(f"line {number}: {exc}") from None
    return table


def changed_serials(old: Dict[int, Status], new: Dict[int, Status]) -> Set[int]:
    changed = {serial for serial, status in new.items() if old.get(serial) != status}
    changed.update(serial for serial in old if serial not in new)
    return changed


class IndexSource:
    """One issuer's index file: the table in service plus what health needs to know.

    ``check()`` is cheap when nothing changed (one stat); it parses only when inode,
    size, mtime or ctime differ, and swaps the table in one assignment so requests in flight
    keep reading the old one."""

    def __init__(self, path: str, name: str):
        self.path = path
        self.name = name
        self.table: Dict[int, Status] = {}
        self.loaded = False
        self.error: Optional[str] = None
        self.loaded_at: Optional[float] = None  # wall clock of the last good load
        self.index_mtime: Optional[float] = None
        self.last_check: Optional[float] = None
        self.reloads_ok = 0
        self.reloads_failed = 0
        self._signature: Optional[tuple] = None      # of the file whose table is in service
        self._refused: Optional[Tuple[tuple, str]] = None  # (signature, error) of the last file refused
        self._lock = threading.Lock()

    @staticmethod
    def _stat_signature(path: str) -> tuple:
        st = os.stat(path)
        # ctime too: a same-size rewrite whose mtime was set back (cp -p, rsync -t) still
        # changes it, and no one can set it back.
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ctime_ns)

    def _stat_signature_settled(self) -> tuple:
        """openssl ca renames index.txt away, then index.txt.new into place: a file
        missing for that moment is looked for once more before it counts as an error."""
        try:
            return self._stat_signature(self.path)
        except FileNotFoundError:
            time.sleep(RENAME_GRACE)
            return self._stat_signature(self.path)

    def check(self, force: bool = False) -> Optional[Set[int]]:
        """Reload if the file changed (or ``force``). Returns the serials whose status
        changed, or None when nothing was (successfully) loaded.

        A new file that lacks serials of the table in service is held back unless
        ``force`` (SIGHUP): ``openssl ca`` and our modules never remove a line, and an
        index rewritten in place is, until the writer finishes, a prefix of itself that
        parses (it ends at a line break) but answers its last certificates "unknown"."""
        with self._lock:
            self.last_check = time.time()
            try:
                signature = self._stat_signature_settled()
            except OSError as exc:
                self._fail(f"cannot stat {self.path}: {exc.strerror}")
                return None
            if not force:
                # Health says what is on disk now: the file in service is fine again, a
                # file refused before is still refused (whatever happened in between).
                if signature == self._signature:
                    self.error = None
                    return None
                if self._refused is not None and signature == self._refused[0]:
                    self._fail(self._refused[1])
                    return None
            try:
                data = None
                for _attempt in range(FORCED_READ_ATTEMPTS if force else 1):
                    with open(self.path, "rb") as handle:
                        data = handle.read()
                    settled = self._stat_signature(self.path)
                    if settled == signature:
                        break
                    signature, data = settled, None  # written while we read
                if data is None:
                    if force:  # a SIGHUP's reload must not pass as done with the old table
                        self._fail(f"{self.path}: kept changing while being read")
                    return None  # the next poll sees the final file
                table = parse_index(data)
            except OSError as exc:
                self._fail(f"cannot read {self.path}: {exc.strerror}")
                return None
            except IndexFormatError as exc:
                return self._refuse(signature, f"{self.path}: {exc}")  # not re-parsed every poll
            if self.loaded and not force and not self.table.keys() <= table.keys():
                missing = sum(1 for serial in self.table if serial not in table)
                return self._refuse(signature, f"{self.path}: {missing} serials of the index in service are "
                                               "missing (partially written?); SIGHUP loads it as it is")
            changed = changed_serials(self.table, table) if self.loaded else set(table)
            self.table = table
            self._signature = signature
            self._refused = None
            self.loaded = True
            self.error = None
            self.loaded_at = time.time()
            self.index_mtime = signature[2] / 1e9
            self.reloads_ok += 1
            log.info("index loaded", extra={"fields": {
                "issuer": self.name, "entries": len(table), "changed": len(changed)}})
            return changed

    def _refuse(self, signature: tuple, message: str) -> None:
        self._refused = (signature, message)
        self._fail(message)

    def _fail(self, message: str) -> None:
        if message != self.error:
            log.error("index not loaded, keeping last good data", extra={"fields": {
                "issuer": self.name, "error": message, "entries_in_service": len(self.table)}})
            self.reloads_failed += 1
        self.error = message

    def lookup(self, serial: int) -> Optional[Status]:
        return self.table.get(serial)

    def healthy(self, max_age: Optional[float], poll_interval: float) -> Tuple[bool, str]:
        if not self.loaded:
            return False, self.error or "not loaded yet"
        if self.error:
            return False, self.error
        now = time.time()
        if self.last_check is None or now - self.last_check > max(5.0, 20 * poll_interval):
            return False, "index watcher stalled"
        if max_age is not None and self.index_mtime is not None and now - self.index_mtime > max_age:
            return False, f"index older than {max_age:.0f}s"
        return True, "ok"
