# Copyright (c) pkiops.ocsp contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The CA database: OpenSSL's index.txt, the serial file and newcerts/, under one lock.

The text format is OpenSSL's (``openssl ca``, ``openssl ocsp -index`` read what we write and
we read what they write). Every change is a complete rewrite of the file through
atomic_write (readers see the old or the new file, never a torn one) while an exclusive
flock on ``index.txt.lock`` is held, so concurrent Ansible forks never lose an entry or
reuse a serial. OpenSSL itself does not take that lock: do not run ``openssl ca`` while a
playbook writes to the same CA.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import datetime
import fcntl
import os
import re
import secrets
from dataclasses import dataclass, replace

from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_dir import (
    CADirectory,
    CAError,
    load_certificate_bytes,
)
from ansible_collections.pkiops.ocsp.plugins.module_utils.fileops import (
    atomic_write,
    remove_stale_temp_files,
)

from ansible_collections.pkiops.ocsp.plugins.module_utils.keys import public_key_der

try:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
except ImportError:  # the modules report it through ca_dir.HAS_CRYPTOGRAPHY
    x509 = None
    serialization = None
    UnsupportedAlgorithm = ValueError

UTC = datetime.timezone.utc

STATUS_VALID = "V"
STATUS_REVOKED = "R"
STATUS_EXPIRED = "E"
STATUSES = (STATUS_VALID, STATUS_REVOKED, STATUS_EXPIRED)

# RFC 5280 CRLReason names as `openssl ca -crl_reason` spells them. privilegeWithdrawn and
# aACompromise are absent on purpose: `openssl ca` rejects an index that carries them.
REASONS = (
    "unspecified",
    "keyCompromise",
    "CACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "removeFromCRL",
)
HOLD_REASON = "certificateHold"
# RFC 5280 5.3.1: released from hold. ``openssl ca -crl_reason removeFromCRL`` records it
# as a revocation; it is not one (the responder answers such an entry good), so it can
# be revoked again or made valid.
RELEASED_REASON = "removeFromCRL"
# Reasons whose index entry can carry a compromise (= invalidity) date, and the pseudo
# reason OpenSSL writes for them in that case.
COMPROMISE_TIME_REASONS = {"keyCompromise": "keyTime", "CACompromise": "CAkeyTime"}
_PSEUDO_TO_REASON = {"keytime": "keyCompromise", "cakeytime": "CACompromise"}
_REASON_BY_LOWER = dict((r.lower(), r) for r in REASONS)
HOLD_INSTRUCTIONS = {
    "holdInstructionNone": "1.2.840.10040.2.1",
    "holdInstructionCallIssuer": "1.2.840.10040.2.2",
    "holdInstructionReject": "1.2.840.10040.2.3",
}

SERIAL_RANDOM_BITS = 159  # 20 octets, top bit clear (positive), 158 random bits
SERIAL_POLICIES = ("random", "sequential")


class IndexFormatError(CAError):
    """index.txt does not parse; the message names the file and line."""


# -- times ----------------------------------------------------------------------------
def _utc(value):
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_asn1_time(text):
    """UTCTime 'YYMMDDHHMMSSZ' (50-99 → 19xx) or GeneralizedTime 'YYYYMMDDHHMMSSZ'."""
    if not text.endswith("Z") or not text[:-1].isdigit() or len(text) not in (13, 15):
        raise ValueError("not an ASN.1 time (YYMMDDHHMMSSZ or YYYYMMDDHHMMSSZ): %r" % text)
    digits = text[:-1]
    if len(digits) == 12:
        year = int(digits[:2])
        year += 1900 if year >= 50 else 2000
        rest = digits[2:]
    else:
        year = int(digits[:4])
        rest = digits[4:]
    return datetime.datetime(year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]),
                             int(rest[6:8]), int(rest[8:10]), tzinfo=UTC)


def format_asn1_time(value):
    """As OpenSSL/RFC 5280 encode it: UTCTime for 1950-2049, GeneralizedTime otherwise."""
    value = _utc(value)
    if 1950 <= value.year <= 2049:
        return "%02d%02d%02d%02d%02d%02dZ" % (value.year % 100, value.month, value.day,
                                              value.hour, value.minute, value.second)
    return format_generalized_time(value)


def format_generalized_time(value):
    value = _utc(value)
    return "%04d%02d%02d%02d%02d%02dZ" % (value.year, value.month, value.day,
                                          value.hour, value.minute, value.second)


def utcnow():
    return datetime.datetime.now(UTC).replace(microsecond=0)


def cert_not_after(cert):
    """notAfter as an aware UTC datetime on old (naive) and new cryptography."""
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=UTC)


# -- serials --------------------------------------------------------------------------
def serial_to_hex(serial):
    """The index/newcerts spelling: upper-case, even number of digits (BN_bn2hex)."""
    serial = int(serial)
    sign = "-" if serial < 0 else ""
    digits = "%X" % abs(serial)
    if len(digits) % 2:
        digits = "0" + digits
    return sign + digits


def serial_to_colon_hex(serial):
    digits = serial_to_hex(abs(int(serial)))
    return ("-" if int(serial) < 0 else "") + ":".join(digits[i:i + 2] for i in range(0, len(digits), 2))


_HEX_SERIAL_RE = re.compile(r"-?[0-9A-Fa-f]+\Z")


def parse_serial_hex(text):
    if not _HEX_SERIAL_RE.match(text):  # int(x, 16) alone would also take '0x', '_' and spaces
        raise ValueError("serial %r is not hexadecimal" % text)
    return int(text, 16)


# -- index entries ----------------------------------------------------------------------
@dataclass
class IndexEntry:
    """One line of index.txt.

    ``reason`` is a canonical OpenSSL reason name or None (revoked without a reason).
    OpenSSL's pseudo reasons are unfolded: ``keyTime,T`` becomes reason keyCompromise with
    ``invalidity_date`` T (CAkeyTime likewise for CACompromise) and
    ``holdInstruction,OID`` becomes certificateHold with ``hold_instruction`` OID.
    """

    status: str
    expires: datetime.datetime
    serial: int
    subject: str
    revoked_at: "datetime.datetime | None" = None
    reason: "str | None" = None
    invalidity_date: "datetime.datetime | None" = None
    hold_instruction: "str | None" = None
    filename: str = "unknown"

    @property
    def serial_hex(self):
        return serial_to_hex(self.serial)

    @property
    def is_on_hold(self):
        return self.status == STATUS_REVOKED and self.reason == HOLD_REASON

    @property
    def is_revoked(self):
        return self.status == STATUS_REVOKED and self.reason != RELEASED_REASON


def _format_revocation(entry):
    if entry.revoked_at is None:
        return ""
    text = format_asn1_time(entry.revoked_at)
    if entry.reason is None:
        return text
    if entry.reason == HOLD_REASON and entry.hold_instruction:
        return "%s,holdInstruction,%s" % (text, entry.hold_instruction)
    if entry.reason in COMPROMISE_TIME_REASONS and entry.invalidity_date is not None:
        return "%s,%s,%s" % (text, COMPROMISE_TIME_REASONS[entry.reason],
                             format_generalized_time(entry.invalidity_date))
    return "%s,%s" % (text, entry.reason)


def _escape_field(text):
    # TXT_DB_write escapes a tab inside a field with a backslash
    return text.replace("\t", "\\\t")


def format_index_line(entry):
    if entry.status not in STATUSES:
        raise CAError("index status must be one of V, R, E, not %r" % (entry.status,))
    if entry.status == STATUS_REVOKED and entry.revoked_at is None:
        raise CAError("revoked entry %s needs a revocation date" % entry.serial_hex)
    if "\n" in entry.subject or "\n" in entry.filename:
        raise CAError("index fields cannot contain a newline (serial %s)" % entry.serial_hex)
    if entry.reason is not None and entry.reason not in REASONS:
        raise CAError("unknown revocation reason %r (serial %s)" % (entry.reason, entry.serial_hex))
    if entry.hold_instruction is not None and not re.match(r"[A-Za-z0-9.]+\Z", entry.hold_instruction):
        raise CAError("hold instruction %r is not an OID name or dotted OID" % (entry.hold_instruction,))
    fields = [entry.status, format_asn1_time(entry.expires), _format_revocation(entry),
              entry.serial_hex, entry.filename or "unknown", entry.subject]
    return "\t".join(_escape_field(f) for f in fields) + "\n"


def format_index(entries):
    return "".join(format_index_line(entry) for entry in entries)


def _split_fields(line):
    """TXT_DB_read's split: tabs separate fields unless escaped with a backslash."""
    if "\\\t" not in line:
        return line.split("\t")
    fields = []
    current = []
    i = 0
    while i < len(line):
        char = line[i]
        if char == "\\" and i + 1 < len(line) and line[i + 1] == "\t":
            current.append("\t")
            i += 2
            continue
        if char == "\t":
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    fields.append("".join(current))
    return fields


def _parse_revocation(text):
    parts = text.split(",", 2)
    revoked_at = parse_asn1_time(parts[0])
    reason = hold = invalidity = None
    if len(parts) > 1:
        name = parts[1].lower()
        arg = parts[2] if len(parts) > 2 else None
        if name == "holdinstruction":
            if not arg:
                raise ValueError("holdInstruction without an instruction OID")
            reason, hold = HOLD_REASON, arg
        elif name in _PSEUDO_TO_REASON:
            if not arg:
                raise ValueError("%s without a compromise time" % parts[1])
            reason = _PSEUDO_TO_REASON[name]
            if len(arg) != 15:
                raise ValueError("compromise time must be GeneralizedTime YYYYMMDDHHMMSSZ: %r" % arg)
            invalidity = parse_asn1_time(arg)
        elif name in _REASON_BY_LOWER:
            if arg is not None:
                raise ValueError("unexpected data after reason %s: %r" % (parts[1], arg))
            reason = _REASON_BY_LOWER[name]
        else:
            raise ValueError("unknown revocation reason %r (OpenSSL knows %s)"
                             % (parts[1], ", ".join(REASONS)))
    return revoked_at, reason, invalidity, hold


def parse_index_line(line):
    fields = _split_fields(line)
    if len(fields) != 6:
        raise ValueError("expected 6 tab-separated fields, found %d" % len(fields))
    status, expires, revocation, serial, filename, subject = fields
    if status not in STATUSES:
        raise ValueError("status must be V, R or E, not %r" % status)
    entry = IndexEntry(status=status, expires=parse_asn1_time(expires),
                       serial=parse_serial_hex(serial), subject=subject, filename=filename)
    if revocation:
        (entry.revoked_at, entry.reason, entry.invalidity_date,
         entry.hold_instruction) = _parse_revocation(revocation)
    elif status == STATUS_REVOKED:
        raise ValueError("revoked entry without a revocation date")
    return entry


def parse_index(text, source="index.txt"):
    """Entries of an index file. Raises IndexFormatError naming the bad line.

    Lines starting with '#' are comments (TXT_DB skips them). A blank line, a wrong field
    count or a duplicate serial is an error, as it is for ``openssl ca``.
    """
    entries = []
    seen = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        # A last line without newline: TXT_DB ignores it; we refuse rather than guess.
        raise IndexFormatError("%s line %d: incomplete last line (no newline): %r"
                               % (source, len(lines), lines[-1][:80]))
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            continue
        try:
            entry = parse_index_line(line)
        except ValueError as exc:
            raise IndexFormatError("%s line %d: %s: %r" % (source, number, exc, line[:120]))
        if entry.serial in seen:
            raise IndexFormatError("%s line %d: serial %s already on line %d"
                                   % (source, number, entry.serial_hex, seen[entry.serial]))
        seen[entry.serial] = number
        entries.append(entry)
    return entries


# -- subjects ---------------------------------------------------------------------------
# OpenSSL short names (OBJ_nid2sn) of the attributes found in certificate subjects.
OPENSSL_SHORT_NAMES = {
    "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C",
    "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.12": "title", "2.5.4.13": "description", "2.5.4.15": "businessCategory",
    "2.5.4.16": "postalAddress", "2.5.4.17": "postalCode", "2.5.4.18": "postOfficeBox",
    "2.5.4.41": "name", "2.5.4.42": "GN", "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier", "2.5.4.45": "x500UniqueIdentifier",
    "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym", "2.5.4.72": "role",
    "2.5.4.97": "organizationIdentifier",
    "0.9.2342.19200300.100.1.1": "UID", "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "emailAddress", "1.2.840.113549.1.9.2": "unstructuredName",
    "1.2.840.113549.1.9.8": "unstructuredAddress",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL", "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}

# ASN.1 universal tag -> how the string's content octets are encoded
_STRING_CODECS = {12: "utf-8", 19: "latin-1", 22: "latin-1", 18: "latin-1", 26: "latin-1",
                  20: "latin-1", 30: "utf-16-be", 28: "utf-32-be"}


def _attribute_octets(attribute):
    value = attribute.value
    if isinstance(value, bytes):
        return value
    tag = getattr(getattr(attribute, "_type", None), "value", 12)
    return value.encode(_STRING_CODECS.get(tag, "utf-8"))


def openssl_oneline_subject(name):
    """X509_NAME_oneline(): '/C=GB/O=Alice Ltd/CN=x', as `openssl ca` writes index.txt.

    Bytes outside printable ASCII become \\xHH (upper-case), '/' or '+' in a value get a
    backslash and members of a multi-valued RDN are joined with '+', exactly like OpenSSL 3.
    Attributes keep certificate order (RDNs in a multi-valued set in DER order).
    """
    parts = []
    for rdn in name.rdns:
        separator = "/"  # members of a multi-valued RDN are joined with '+'
        for attribute in rdn:
            oid = attribute.oid.dotted_string
            out = []
            for byte in bytearray(_attribute_octets(attribute)):
                if byte < 0x20 or byte > 0x7E:
                    out.append("\\x%02X" % byte)
                else:
                    char = chr(byte)
                    if char in "/+":
                        out.append("\\")
                    out.append(char)
            parts.append("%s%s=%s" % (separator, OPENSSL_SHORT_NAMES.get(oid, oid), "".join(out)))
            separator = "+"
    return "".join(parts)


# -- transitions ------------------------------------------------------------------------
def revoked_entry(entry, reason=None, revoked_at=None, invalidity_date=None, hold_instruction=None):
    """The entry after a revocation request; equal to ``entry`` when nothing would change.

    None means "keep what the entry has" for an already revoked entry, so repeating a
    revocation without a date is no change; a new revocation gets the current time.
    """
    if reason is not None and reason not in REASONS:
        raise CAError("unknown revocation reason %r; use one of %s" % (reason, ", ".join(REASONS)))
    already = entry.is_revoked
    if already and entry.reason != HOLD_REASON:
        # Only a hold is provisional. Any other revocation must stay as recorded: keyCompromise
        # -> certificateHold -> active would otherwise make a compromised key valid again.
        if reason is not None and reason != entry.reason:
            raise _permanent(entry, "its reason cannot be changed to %s" % reason)
        if invalidity_date is not None and _utc(invalidity_date).replace(microsecond=0) != entry.invalidity_date:
            raise _permanent(entry, "its invalidity date cannot be changed")
    new_reason = reason if reason is not None else (entry.reason if already else None)
    if invalidity_date is not None and new_reason not in COMPROMISE_TIME_REASONS:
        raise CAError("invalidity_date can only be recorded with reason keyCompromise or CACompromise "
                      "(OpenSSL's index has no place for it otherwise)")
    if hold_instruction is not None and new_reason != HOLD_REASON:
        raise CAError("hold_instruction needs reason certificateHold")
    if revoked_at is None:
        revoked_at = entry.revoked_at if already and entry.revoked_at else utcnow()
    revoked_at = _utc(revoked_at).replace(microsecond=0)
    if invalidity_date is None and already and new_reason == entry.reason:
        invalidity_date = entry.invalidity_date
    if hold_instruction is None and already and new_reason == entry.reason:
        hold_instruction = entry.hold_instruction
    if invalidity_date is not None:
        invalidity_date = _utc(invalidity_date).replace(microsecond=0)
    return replace(entry, status=STATUS_REVOKED, revoked_at=revoked_at, reason=new_reason,
                   invalidity_date=invalidity_date, hold_instruction=hold_instruction)


def _permanent(entry, what):
    return CAError("serial %s is revoked with reason %s, which is permanent: %s (only a certificateHold "
                   "can be lifted with state=active or changed to another reason)"
                   % (entry.serial_hex, entry.reason or "(none)", what))


def unheld_entry(entry):
    """The entry after lifting a certificateHold; only a hold can be lifted."""
    if entry.status != STATUS_REVOKED:
        return entry
    if entry.reason not in (HOLD_REASON, RELEASED_REASON):
        raise _permanent(entry, "it cannot be made valid again")
    return replace(entry, status=STATUS_VALID, revoked_at=None, reason=None,
                   invalidity_date=None, hold_instruction=None)


# -- the database -----------------------------------------------------------------------
def read_unique_subject(path):
    """index.txt.attr's unique_subject; OpenSSL defaults to yes when the file is absent."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return True
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "unique_subject":
            # OpenSSL's parse_yesno: only the first character counts, anything else is yes
            return value.strip()[:1] not in ("0", "f", "F", "n", "N")
    return True


class CADatabase:
    """index.txt + serial + newcerts of one CA directory.

    One instance per process/thread: the lock is re-entrant within an instance (so
    record_issued inside ``locked()`` does not deadlock) and exclusive across instances.
    """

    def __init__(self, ca_dir):
        self.ca_dir = ca_dir if isinstance(ca_dir, CADirectory) else CADirectory(ca_dir)
        self._lock_fd = None
        self._lock_depth = 0
        self._parsed = None  # (index text, entries): big indexes are parsed once per change
        self._ca_subject_cache = None

    # -- locking ------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self):
        """Exclusive, blocking lock serializing every read-modify-write on this CA."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield self
            finally:
                self._lock_depth -= 1
            return
        self.ca_dir.require_database()
        try:
            # read-only is enough for flock, so a lock file created by another user still works
            fd = os.open(self.ca_dir.lock_path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CAError("cannot open lock file %s: %s" % (self.ca_dir.lock_path, exc.strerror or exc))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd, self._lock_depth = fd, 1
            # Temporaries can only be left by killed writers: every writer holds this lock.
            remove_stale_temp_files(self.ca_dir.index_path)
            remove_stale_temp_files(self.ca_dir.serial_path)
            remove_stale_temp_files(self.ca_dir.newcerts_dir, prefix=".")
            yield self
        finally:
            self._lock_fd, self._lock_depth = None, 0
            os.close(fd)  # closing releases the flock

    @property
    def is_locked(self):
        return self._lock_depth > 0

    # -- reading ------------------------------------------------------------------------
    def read_text(self):
        self.ca_dir.require_database()
        try:
            with open(self.ca_dir.index_path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            raise CAError("cannot read %s: %s" % (self.ca_dir.index_path, exc.strerror or exc))
        return data.decode("utf-8", "surrogateescape")

    def entries(self):
        """Parsed index.txt. The entries are shared with a parse cache: do not mutate them,
        derive changed ones with dataclasses.replace (as revoked_entry does)."""
        text = self.read_text()
        # keyed on the content itself: a string compare is ~100x cheaper than parsing, and
        # unlike (inode, size, mtime) it cannot be fooled by inode reuse within a clock tick
        if self._parsed is None or self._parsed[0] != text:
            self._parsed = (text, parse_index(text, self.ca_dir.index_path))
        return list(self._parsed[1])

    def find(self, serial):
        serial = int(serial)
        for entry in self.entries():
            if entry.serial == serial:
                return entry
        return None

    def newcert_path(self, serial):
        return os.path.join(self.ca_dir.newcerts_dir, serial_to_hex(serial) + ".pem")

    def archived_certificate(self, serial):
        """The certificate newcerts/<HEX>.pem holds, or None when there is no readable one or
        the file holds another certificate: another serial (a misnamed copy) or another
        issuer (a new_certs_dir shared with another CA that counts the same serials).

        ``openssl ca`` writes its text dump before the PEM there; PEM, with or without that
        dump, and DER are read.
        """
        path = self.newcert_path(serial)
        if not os.path.isfile(path):
            return None
        try:
            with open(path, "rb") as handle:
                cert = load_certificate_bytes(handle.read(), path)
        except (OSError, CAError):
            return None
        if cert.serial_number != serial or cert.issuer != self._ca_subject():
            return None
        return cert

    def _ca_subject(self):
        if self._ca_subject_cache is None:
            try:
                self._ca_subject_cache = self.ca_dir.load_certificate().subject
            except (OSError, CAError):
                self._ca_subject_cache = False  # no CA certificate to compare with: nothing matches
        return self._ca_subject_cache

    def entries_certifying_key(self, entries, public_key, known=None):
        """Which of ``entries`` certify ``public_key`` (a public or private key), by their
        certificates in newcerts/ (the only place the database keeps a certificate's key).

        ``known``: {serial: certificate} already at hand, used instead of newcerts/.
        Returns (matching entries, entries without a readable certificate in newcerts/),
        both in index order.
        """
        try:
            wanted = public_key_der(public_key)
        except (ValueError, UnsupportedAlgorithm):
            return [], list(entries)
        known = known or {}
        matching, unreadable = [], []
        for entry in entries:
            cert = known.get(entry.serial) or self.archived_certificate(entry.serial)
            try:
                key = public_key_der(cert.public_key()) if cert is not None else None
            except (ValueError, UnsupportedAlgorithm):  # a key type cryptography cannot load
                key = None
            if key is None:
                unreadable.append(entry)
            elif key == wanted:
                matching.append(entry)
        return matching, unreadable

    # -- writing ------------------------------------------------------------------------
    def _write_entries(self, entries):
        text = format_index(entries)
        try:
            atomic_write(self.ca_dir.index_path, text.encode("utf-8", "surrogateescape"), mode=None)
        except OSError as exc:
            raise CAError("cannot write %s: %s" % (self.ca_dir.index_path, exc.strerror or exc))
        self._parsed = (text, list(entries))

    def allocate_serial(self, policy="random"):
        """A serial never used by this CA (not in index.txt, no newcerts file).

        random: 159-bit positive number with 158 random bits (CA/B Forum asks for >= 64).
        sequential: the number in the ``serial`` file, which is advanced like OpenSSL does.
        Call it inside ``locked()`` and record the certificate before leaving the block.
        """
        if policy not in SERIAL_POLICIES:
            raise CAError("serial policy must be random or sequential, not %r" % (policy,))
        with self.locked():
            used = set(entry.serial for entry in self.entries())

            def taken(candidate):
                return candidate in used or os.path.exists(self.newcert_path(candidate))

            if policy == "random":
                for _attempt in range(64):
                    candidate = secrets.randbits(SERIAL_RANDOM_BITS - 1) | (1 << (SERIAL_RANDOM_BITS - 1))
                    if not taken(candidate):
                        return candidate
                raise CAError("could not find an unused random serial (is the random source broken?)")
            candidate = self._read_serial_file()
            while taken(candidate):  # a restored/reset serial file must not reissue a serial
                candidate += 1
            try:
                atomic_write(self.ca_dir.serial_path, (serial_to_hex(candidate + 1) + "\n").encode("ascii"),
                             mode=None)
            except OSError as exc:
                raise CAError("cannot write %s: %s" % (self.ca_dir.serial_path, exc.strerror or exc))
            return candidate

    def _read_serial_file(self):
        path = self.ca_dir.serial_path
        try:
            with open(path, "r", encoding="ascii", errors="replace") as handle:
                text = handle.read().strip()
        except FileNotFoundError:
            raise CAError("sequential serials need the serial file %s (OpenSSL starts it at 1000)" % path)
        try:
            value = parse_serial_hex(text)
        except ValueError:
            raise CAError("%s must hold one hexadecimal serial, found %r" % (path, text[:40]))
        if value <= 0:
            raise CAError("%s holds %r; serials must be positive" % (path, text))
        return value

    def unique_subject_clash(self, entries, subject, serial=None):
        """The valid entry (other than ``serial``) that a new valid entry for ``subject`` would
        duplicate when index.txt.attr asks for unique subjects, else None: ``openssl ca``
        refuses to load a database with two valid entries for one subject."""
        if not read_unique_subject(self.ca_dir.index_attr_path):
            return None
        for entry in entries:
            if entry.status == STATUS_VALID and entry.subject == subject and entry.serial != serial:
                return entry
        return None

    def unique_subject_clash_message(self, clash, subject):
        """Why ``clash`` (from unique_subject_clash) blocks ``subject``; callers add what to do."""
        return ("%s says unique_subject = yes (OpenSSL's default when the file is missing) and serial %s "
                "is a valid certificate for %s" % (self.ca_dir.index_attr_path, clash.serial_hex, subject))

    def record_issued(self, cert, filename="unknown"):
        """Store newcerts/<HEX>.pem and append a V line. Returns the newcerts path.

        Fails (nothing written) if the serial is already in the database, or if
        index.txt.attr asks for unique subjects and a valid entry has the same subject
        (``openssl ca`` would refuse to load such a database).
        """
        if x509 is None:
            raise CAError("the cryptography library is required")
        subject = openssl_oneline_subject(cert.subject)
        with self.locked():
            entries = self.entries()
            for entry in entries:
                if entry.serial == cert.serial_number:
                    raise CAError("serial %s is already in %s" % (entry.serial_hex, self.ca_dir.index_path))
            clash = self.unique_subject_clash(entries, subject)
            if clash is not None:
                raise CAError("%s; revoke it first or set unique_subject = no"
                              % self.unique_subject_clash_message(clash, subject))
            new = IndexEntry(status=STATUS_VALID, expires=cert_not_after(cert), serial=cert.serial_number,
                             subject=subject, filename=filename)
            format_index_line(new)  # validate before anything is written
            path = self.newcert_path(cert.serial_number)
            try:
                if not os.path.isdir(self.ca_dir.newcerts_dir):
                    os.mkdir(self.ca_dir.newcerts_dir, 0o755)
                atomic_write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
            except OSError as exc:
                raise CAError("cannot write %s: %s" % (path, exc.strerror or exc))
            self._write_entries(entries + [new])
            return path

    def update(self, serial, transition, check_mode=False):
        """Apply ``transition(entry) -> entry`` to one serial. Returns (before, after).

        Nothing is written when the entry does not change or in check mode; check mode does
        not even take the lock (creating the lock file would be a write, and a reader
        always sees a complete index anyway).
        """
        before, after, _others = self.update_with_related(serial, transition, check_mode=check_mode)
        return before, after

    def update_with_related(self, serial, transition, related=None, check_mode=False):
        """update(), plus the changes ``related(entries, before, after)`` derives from it, in
        the same single write under the same lock (so an entry issued meanwhile is seen).

        ``related`` returns [(entry, new entry)] for other entries of the index (unchanged
        ones are ignored); it must not make an entry valid (no unique_subject check here).
        Returns (before, after, [(before, after)] of the changed others).
        """
        serial = int(serial)
        guard = contextlib.nullcontext() if check_mode else self.locked()
        with guard:
            entries = self.entries()
            positions = dict((entry.serial, position) for position, entry in enumerate(entries))
            if serial not in positions:
                raise CAError("serial %s (%d) is not in %s"
                              % (serial_to_hex(serial), serial, self.ca_dir.index_path))
            entry = entries[positions[serial]]
            after = transition(entry)
            if after.status == STATUS_VALID and entry.status != STATUS_VALID:
                clash = self.unique_subject_clash(entries, after.subject, serial)
                if clash is not None:
                    raise CAError(
                        "%s; making serial %s valid again would leave two, and openssl ca could no longer "
                        "load the database: revoke %s first or set unique_subject = no"
                        % (self.unique_subject_clash_message(clash, after.subject), entry.serial_hex,
                           clash.serial_hex))
            changes = [(entry, after)] if after != entry else []
            others = []
            for other, other_after in (related(entries, entry, after) if related is not None else []):
                if other_after != other and other.serial != serial:
                    others.append((other, other_after))
            changes += others
            if changes and not check_mode:
                for old, new in changes:
                    entries[positions[old.serial]] = new
                self._write_entries(entries)
            return entry, after, others

    def revoke(self, serial, reason=None, revoked_at=None, invalidity_date=None, hold_instruction=None,
               check_mode=False):
        def transition(entry):
            return revoked_entry(entry, reason, revoked_at, invalidity_date, hold_instruction)

        return self.update(serial, transition, check_mode)

    def unhold(self, serial, check_mode=False):
        return self.update(serial, unheld_entry, check_mode)
