# Copyright (c) pkiops.ocsp contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the ca_revoke module does, apart from talking to Ansible."""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_db import (
    CADatabase,
    HOLD_INSTRUCTIONS,
    STATUS_EXPIRED,
    format_asn1_time,
    openssl_oneline_subject,
    parse_asn1_time,
    revoked_entry,
    serial_to_colon_hex,
    serial_to_hex,
    unheld_entry,
    utcnow,
)
from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_dir import (
    CADirectory,
    CAError,
    load_certificate_bytes,
)

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
except ImportError:
    x509 = None
    UnsupportedAlgorithm = ValueError

_OID_RE = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def parse_serial_option(value):
    """int, '0x1A2B', colon-hex '1A:2B' or a decimal string -> int.

    A bare string of hex digits is ambiguous ('1000' is decimal 1000 or hex 0x1000), so only
    decimal digits are taken without a marker; anything else must say it is hex.
    """
    if isinstance(value, bool):
        raise CAError("serial_number must be a number, not a boolean")
    if isinstance(value, int):
        serial = value
    else:
        text = str(value).strip().replace(" ", "")
        try:
            if ":" in text:
                octets = text.split(":")
                if any(len(o) not in (1, 2) for o in octets):
                    raise ValueError(text)
                serial = int("".join(o.zfill(2) for o in octets), 16)
            elif text.lower().startswith("0x"):
                serial = int(text[2:], 16)
            elif text.isdigit():
                serial = int(text, 10)
            else:
                raise CAError("serial_number %r is ambiguous or invalid: write hex as 0x%s or in "
                              "colon form (AB:CD), decimal as plain digits" % (value, text))
        except ValueError:
            raise CAError("serial_number %r is not an integer, 0x-hex or colon-hex value" % (value,))
    if serial <= 0:
        raise CAError("serial_number must be positive, not %d" % serial)
    return serial


def parse_time_option(name, value):
    """ASN.1 TIME (YYMMDDHHMMSSZ / YYYYMMDDHHMMSSZ) or ISO 8601; naive means UTC."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        if text.endswith("Z") and text[:-1].isdigit():
            parsed = parse_asn1_time(text)
        else:
            iso = text[:-1] + "+00:00" if text.endswith("Z") else text
            parsed = datetime.datetime.fromisoformat(iso)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=datetime.timezone.utc)
            parsed = parsed.astimezone(datetime.timezone.utc)
    except ValueError:
        raise CAError("%s %r is neither ISO 8601 (2026-01-31T12:00:00Z) nor ASN.1 TIME "
                      "(20260131120000Z)" % (name, value))
    parsed = parsed.replace(microsecond=0)
    if parsed > utcnow() + datetime.timedelta(seconds=1):
        raise CAError("%s %s is in the future" % (name, parsed.isoformat()))
    return parsed


def normalize_hold_instruction(value):
    if value is None:
        return None
    if value in HOLD_INSTRUCTIONS or _OID_RE.match(value):
        return value
    raise CAError("hold_instruction must be one of %s or a dotted OID, not %r"
                  % (", ".join(sorted(HOLD_INSTRUCTIONS)), value))


def _key_identifier(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def check_issued_by(cert, ca_cert):
    """Raise CAError unless ``cert`` was issued by ``ca_cert`` (name, AKI, signature)."""
    if cert.issuer != ca_cert.subject:
        raise CAError("the certificate was issued by %s, not by this CA (%s)"
                      % (openssl_oneline_subject(cert.issuer), openssl_oneline_subject(ca_cert.subject)))
    try:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    except x509.ExtensionNotFound:
        aki = None
    if aki is not None and aki != _key_identifier(ca_cert):
        raise CAError("the certificate's authority key identifier does not match this CA's key "
                      "(same issuer name, different CA)")
    verify = getattr(cert, "verify_directly_issued_by", None)  # cryptography >= 40
    if verify is not None:
        try:
            verify(ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise CAError("the certificate's signature does not verify with this CA's key")


def entry_summary(entry):
    """Text for diff mode: one 'key: value' per line."""
    lines = ["serial: %s" % serial_to_hex(entry.serial), "subject: %s" % entry.subject,
             "status: %s" % entry.status]
    if entry.revoked_at is not None:
        lines.append("revocation_date: %s" % entry.revoked_at.isoformat())
        lines.append("reason: %s" % (entry.reason or "(none)"))
    if entry.invalidity_date is not None:
        lines.append("invalidity_date: %s" % entry.invalidity_date.isoformat())
    if entry.hold_instruction:
        lines.append("hold_instruction: %s" % entry.hold_instruction)
    return "\n".join(lines) + "\n"


def _iso(value):
    return value.isoformat() if value is not None else None


def _revoked_summary(entry):
    return dict(serial_number=entry.serial, serial_hex=entry.serial_hex, subject=entry.subject,
                status_before=entry.status)


class Revocation:
    """One ca_revoke request against one CA directory."""

    def __init__(self, issuer_dir, serial_number=None, cert_path=None, cert_content=None, reason=None,
                 revocation_date=None, invalidity_date=None, hold_instruction=None, state="revoked",
                 all_certificates_of_key=False):
        self.ca_dir = CADirectory(issuer_dir)
        self.db = CADatabase(self.ca_dir)
        self.state = state
        self.reason = reason
        self.revocation_date = parse_time_option("revocation_date", revocation_date)
        self.invalidity_date = parse_time_option("invalidity_date", invalidity_date)
        self.hold_instruction = normalize_hold_instruction(hold_instruction)
        self.all_certificates_of_key = all_certificates_of_key
        if state == "active" and (reason or revocation_date or invalidity_date or hold_instruction):
            raise CAError("state=active lifts a certificateHold; reason, revocation_date, "
                          "invalidity_date and hold_instruction only apply to state=revoked")
        if state == "active" and all_certificates_of_key:
            raise CAError("all_certificates_of_key only applies to state=revoked: state=active lifts the hold "
                          "of the one certificate selected")
        self.ca_dir.require_database()
        self.cert = None
        self.warnings = []
        if serial_number is not None:
            self.serial = parse_serial_option(serial_number)
        else:
            self.cert = self._load_cert(cert_path, cert_content)
            self.serial = self.cert.serial_number

    def _load_cert(self, cert_path, cert_content):
        if cert_path is not None:
            try:
                with open(cert_path, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                raise CAError("cannot read certificate %s: %s" % (cert_path, exc.strerror or exc))
            source = cert_path
        else:
            data = cert_content.encode("utf-8") if isinstance(cert_content, str) else cert_content
            source = "content"
        cert = load_certificate_bytes(data, source)
        check_issued_by(cert, self.ca_dir.load_certificate())
        return cert

    def _transition(self, entry):
        if self.cert is not None:
            subject = openssl_oneline_subject(self.cert.subject)
            if entry.subject != subject:
                raise CAError("index.txt has serial %s for %s, but the certificate's subject is %s"
                              % (entry.serial_hex, entry.subject, subject))
        if self.state == "active":
            return unheld_entry(entry)
        return revoked_entry(entry, self.reason, self.revocation_date, self.invalidity_date,
                             self.hold_instruction)

    def _selected_key(self, entry):
        """(public key of the selected certificate, None) or (None, why it is unknown)."""
        cert = self.cert if self.cert is not None else self.db.archived_certificate(entry.serial)
        if cert is None:
            return None, "%s holds no certificate with serial %s of this CA" % (
                self.db.newcert_path(entry.serial), entry.serial_hex)
        try:
            return cert.public_key(), None
        except (ValueError, UnsupportedAlgorithm) as exc:
            return None, "the key of serial %s cannot be read (%s)" % (entry.serial_hex, exc)

    def _same_key(self, entries, before, after):
        """[(entry, revoked entry)] for every other still valid certificate of the selected key,
        revoked with the reason and dates the selected certificate has after the task."""
        key, unknown = self._selected_key(before)
        if key is None:
            # the selected certificate is revoked all the same: an unknown key must not block that
            self.warnings.append(
                "all_certificates_of_key: %s, so no other certificate was searched: run again with the "
                "certificate given by path or content, or revoke the others by serial_number" % unknown)
            return []
        candidates = [entry for entry in entries if entry.serial != before.serial and (
            entry.is_on_hold or (entry.status != STATUS_EXPIRED and not entry.is_revoked))]
        matching, unreadable = self.db.entries_certifying_key(candidates, key)
        held = [entry for entry in matching if entry.is_on_hold]
        matching = [entry for entry in matching if not entry.is_on_hold]
        unreadable = [entry for entry in unreadable if not entry.is_on_hold]
        if held:
            self.warnings.append(
                "serial(s) %s of the same key are on hold (certificateHold) and were left so: revoke them by "
                "serial_number with the reason they need" % ", ".join(entry.serial_hex for entry in held))
        if unreadable:
            self.warnings.append(
                "%d valid certificate(s) of %s have no readable copy of their own in %s (missing, "
                "unreadable, another serial or issuer inside, or a key type that cannot be loaded), so their "
                "keys were not compared (serials %s): revoke them by serial_number if they certify the same key"
                % (len(unreadable), self.ca_dir.index_path, self.ca_dir.newcerts_dir,
                   ", ".join(entry.serial_hex for entry in unreadable)))
        if self.revocation_date is not None:
            revoked_at = self.revocation_date
        elif after.is_revoked and not before.is_revoked:
            revoked_at = after.revoked_at  # revoked in this run: the same date for all of them
        else:
            revoked_at = utcnow()
        return [(entry, revoked_entry(entry, after.reason, revoked_at, after.invalidity_date,
                                      after.hold_instruction))
                for entry in matching]

    def run(self, check_mode=False):
        related = self._same_key if self.all_certificates_of_key else None
        before, after, others = self.db.update_with_related(self.serial, self._transition, related,
                                                            check_mode=check_mode)
        result = dict(
            changed=before != after or bool(others),
            serial_number=self.serial,
            serial_hex=serial_to_hex(self.serial),
            serial_colon_hex=serial_to_colon_hex(self.serial),
            subject=after.subject,
            status_before=before.status,
            status_after=after.status,
            reason=after.reason,
            revocation_date=_iso(after.revoked_at),
            revocation_date_asn1=format_asn1_time(after.revoked_at) if after.revoked_at else None,
            invalidity_date=_iso(after.invalidity_date),
            hold_instruction=after.hold_instruction,
            index_path=self.ca_dir.index_path,
            also_revoked=[_revoked_summary(other) for other, _other_after in others],
        )
        header = "%s (serial %s)" % (self.ca_dir.index_path, serial_to_hex(self.serial))
        if others:
            header = "%s (serial %s and %d other certificate(s) of its key)" % (
                self.ca_dir.index_path, serial_to_hex(self.serial), len(others))
        changes = [(before, after)] + others
        diff = dict(before="\n".join(entry_summary(old) for old, _new in changes),
                    after="\n".join(entry_summary(new) for _old, new in changes),
                    before_header=header, after_header=header)
        return result, diff
