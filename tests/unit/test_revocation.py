"""Option parsing and issuer checks of ca_revoke (module_utils/revocation.py)."""
from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers.ca_factory import ApiCA, name

from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_dir import CAError
from ansible_collections.pkiops.ocsp.plugins.module_utils.revocation import (
    Revocation,
    check_issued_by,
    normalize_hold_instruction,
    parse_serial_option,
    parse_time_option,
)

UTC = datetime.timezone.utc


@pytest.mark.parametrize("value, serial", [
    (4099, 4099), ("4099", 4099), ("0x1003", 0x1003), ("0X1003", 0x1003), ("10:03", 0x1003),
    ("10:3", 0x1003), ("4d:a4:13", 0x4DA413), (" 10:03 ", 0x1003),
])
def test_serial_spellings(value, serial):
    assert parse_serial_option(value) == serial


@pytest.mark.parametrize("value, message", [
    ("1A2B", "ambiguous or invalid: write hex as 0x1A2B"), ("1:2:345", "not an integer, 0x-hex or colon-hex"),
    ("0xZZ", "not an integer"), (-5, "must be positive"), (0, "must be positive"), ("", "ambiguous or invalid"),
    (True, "not a boolean"),
])
def test_bad_serials(value, message):
    with pytest.raises(CAError, match=message):
        parse_serial_option(value)


@pytest.mark.parametrize("value, expected", [
    ("2026-01-02T03:04:05Z", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2026-01-02T05:04:05+02:00", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2026-01-02 03:04:05.999", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),  # naive = UTC, whole s
    ("2026-01-02", datetime.datetime(2026, 1, 2, tzinfo=UTC)),
    ("260102030405Z", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("20260102030405Z", datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
])
def test_time_spellings(value, expected):
    assert parse_time_option("revocation_date", value) == expected


@pytest.mark.parametrize("value, message", [
    ("yesterday", "neither ISO 8601"), ("2026-13-01", "neither ISO 8601"), ("2601020304Z", "neither ISO 8601"),
    ("2999-01-01T00:00:00Z", "is in the future"),
])
def test_bad_times(value, message):
    with pytest.raises(CAError, match="revocation_date .*" + message):
        parse_time_option("revocation_date", value)


def test_hold_instructions():
    assert normalize_hold_instruction("holdInstructionReject") == "holdInstructionReject"
    assert normalize_hold_instruction("1.2.840.10040.2.2") == "1.2.840.10040.2.2"
    with pytest.raises(CAError, match="hold_instruction must be one of"):
        normalize_hold_instruction("pretty please")


def test_issuer_check_catches_name_key_and_signature(tmp_path):
    ca = ApiCA(tmp_path / "ca")
    cert = ca.build(name("leaf"), 0x99)
    check_issued_by(cert, ca.cert)
    other = ApiCA(tmp_path / "other", cn="Other CA")
    with pytest.raises(CAError, match="issued by /C=GB/O=Alice Ltd/CN=Other CA, not by this CA"):
        check_issued_by(other.build(name("leaf"), 0x99), ca.cert)
    twin = ApiCA(tmp_path / "twin")  # same name, own key and key identifier
    with pytest.raises(CAError, match="authority key identifier does not match"):
        check_issued_by(twin.build(name("leaf"), 0x99), ca.cert)
    # same name and a copied AKI, signed by another key: only the signature tells
    now = datetime.datetime.now(UTC)
    forged = (x509.CertificateBuilder().subject_name(name("leaf")).issuer_name(ca.name)
              .public_key(ec.generate_private_key(ec.SECP256R1()).public_key()).serial_number(0x99)
              .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca.ski), False)
              .sign(twin.key, hashes.SHA256()))
    with pytest.raises(CAError, match="signature does not verify"):
        check_issued_by(forged, ca.cert)


def test_index_subject_must_match_the_certificate(tmp_path):
    ca = ApiCA(tmp_path / "ca")
    recorded = ca.issue("recorded")
    impostor = ca.write_cert(ca.build(name("impostor"), recorded.serial_number), tmp_path / "impostor.pem")
    before = open(ca.dir.index_path, "rb").read()
    with pytest.raises(CAError, match="index.txt has serial .* for /C=GB/O=Alice Ltd/CN=recorded, but the "
                                      "certificate's subject is /C=GB/O=Alice Ltd/CN=impostor"):
        Revocation(ca.dir.path, cert_path=str(impostor), reason="superseded").run()
    assert open(ca.dir.index_path, "rb").read() == before


def test_active_takes_no_revocation_options(tmp_path):
    ca = ApiCA(tmp_path / "ca")
    with pytest.raises(CAError, match="only apply to state=revoked"):
        Revocation(ca.dir.path, serial_number=1, state="active", reason="superseded")
