"""module_utils/certs.py: names, CSRs, the wanted certificate and why an existing one differs."""
from __future__ import annotations

import datetime
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".cache" / "collections"))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402

from ansible_collections.pkiops.ocsp.plugins.module_utils import certs  # noqa: E402
from ansible_collections.pkiops.ocsp.plugins.module_utils.profiles import (  # noqa: E402
    ExtensionOptions, get_profile)

UTC = datetime.timezone.utc


def test_build_name_keeps_order_and_repeats():
    name = certs.build_name({"C": "GB", "stateOrProvinceName": "England", "O": "Alice Ltd",
                             "OU": ["PKI", "Ops"], "CN": "x.example.com", "emailAddress": "a@b",
                             "2.5.4.5": "42"})
    assert certs.name_to_string(name) == \
        "/C=GB/ST=England/O=Alice Ltd/OU=PKI/OU=Ops/CN=x.example.com/emailAddress=a@b/serialNumber=42"


@pytest.mark.parametrize("subject,message", [
    ({}, "at least one attribute"),
    ({"Nickname": "x"}, "unknown subject attribute"),
    ({"CN": ""}, "empty value"),
    ({"C": "GBR"}, "C="),  # country codes are two letters
    # cryptography's own "error parsing asn1 value" named neither the attribute nor the fix
    ({"3.5": "x"}, "subject attribute 3.5 is not a valid OID"),
    ({"1.40": "x"}, "subject attribute 1.40 is not a valid OID"),
    # once stringified into "{'x': 'y'}" and issued
    ({"CN": {"x": "y"}}, "subject attribute CN must be a string .* not dict"),
    ({"OU": ["PKI", ["Ops"]]}, "subject attribute OU must be a string .* not list"),
])
def test_build_name_rejects(subject, message):
    with pytest.raises(certs.CertificateError, match=message):
        certs.build_name(subject)


@pytest.mark.parametrize("text,expected", [
    ("20270102030405Z", datetime.datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2027-01-02", datetime.datetime(2027, 1, 2, tzinfo=UTC)),
    ("2027-01-02T03:04:05Z", datetime.datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2027-01-02T05:04:05+02:00", datetime.datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)),
    # whole seconds, as in the certificate: a fraction made every run reissue
    ("2027-01-02T03:04:05.500000+00:00", datetime.datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("2027-01-02 03:04:05.999", datetime.datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)),
])
def test_parse_time(text, expected):
    assert certs.parse_time(text) == expected


def test_parse_time_rejects_garbage():
    with pytest.raises(certs.CertificateError, match="cannot parse time"):
        certs.parse_time("next tuesday")


def test_serial_hex_even_digits():
    assert certs.serial_hex(0x1000) == "1000"
    assert certs.serial_hex(0xABC) == "0ABC"


def _csr(key, name="CN=req.example.com"):
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return (x509.CertificateSigningRequestBuilder().subject_name(x509.Name.from_rfc4514_string(name))
            .sign(key, algorithm).public_bytes(serialization.Encoding.PEM))


def test_load_csr_checks_the_signature():
    key = ec.generate_private_key(ec.SECP256R1())
    pem = _csr(key)
    assert certs.load_csr(pem).subject.rfc4514_string() == "CN=req.example.com"
    assert certs.load_csr(pem.decode()).public_key().public_numbers() == key.public_key().public_numbers()
    der = bytearray(x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER))
    at = der.find(b"req.example")
    der[at] ^= 0x20
    with pytest.raises(certs.CertificateError, match="signature of CSR is invalid"):
        certs.load_csr(bytes(der))
    with pytest.raises(certs.CertificateError, match="cannot parse CSR"):
        certs.load_csr(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")


class FakeIssuer:
    key_identifier = None  # no SKI: the authority key identifier is computed from the key

    def __init__(self, key, subject="CN=Test CA"):
        self.private_key = key
        self.public_key = key.public_key()
        self.subject = x509.Name.from_rfc4514_string(subject)


NOW = datetime.datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC)


def _spec(public_key, profile="server", **kwargs):
    options = ExtensionOptions(subject_alt_name=kwargs.pop("sans", ["DNS:a.example"]),
                               ocsp_url=kwargs.pop("ocsp_url", None))
    return certs.CertificateSpec(get_profile(profile), x509.Name.from_rfc4514_string(kwargs.pop("subject", "CN=a")),
                                 public_key, options, **kwargs)


def _issue(spec, issuer, now=NOW, serial=4096):
    return spec.builder(issuer.subject, issuer.public_key, now).serial_number(serial).sign(
        issuer.private_key, certs.signing_hash(spec.digest, issuer.private_key))


@pytest.mark.parametrize("issuer_key", [ec.generate_private_key(ec.SECP384R1()), ed25519.Ed25519PrivateKey.generate(),
                                        rsa.generate_private_key(65537, 2048)])
def test_issue_verify_and_no_difference(issuer_key):
    issuer = FakeIssuer(issuer_key)
    subject_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spec = _spec(subject_key, valid_days=30)
    cert = _issue(spec, issuer)
    assert certs.signature_verifies(cert, issuer.public_key)
    assert not certs.signature_verifies(cert, ec.generate_private_key(ec.SECP384R1()).public_key())
    assert certs.not_after(cert) - certs.not_before(cert) == datetime.timedelta(days=30)
    assert certs.not_before(cert) == NOW - certs.BACKDATE
    assert spec.differences(cert, issuer, NOW, renew_before_days=10) is None
    info = certs.summary(cert)
    assert info["serial_number_hex"] == "1000" and info["subject_alt_name"] == ["DNS:a.example"]
    assert info["ca"] is False and info["not_after"] == "20300701115500Z"


def test_differences_name_the_reason():
    issuer = FakeIssuer(ec.generate_private_key(ec.SECP384R1()))
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = _issue(_spec(key, valid_days=30), issuer)
    later = NOW + datetime.timedelta(days=25)
    cases = [
        (_spec(ec.generate_private_key(ec.SECP256R1()).public_key(), valid_days=30), NOW, 10, "public key differs"),
        (_spec(key, subject="CN=b", valid_days=30), NOW, 10, "subject differs"),
        (_spec(key, sans=["DNS:b.example"], valid_days=30), NOW, 10, "subjectAltName differs"),
        (_spec(key, profile="client", valid_days=30), NOW, 10, "extendedKeyUsage differs"),
        (_spec(key, ocsp_url=["http://o"], valid_days=30), NOW, 10, "extensions differ (authorityInfoAccess)"),
        (_spec(key, valid_days=30, digest="sha512"), NOW, 10, "digest differs"),
        (_spec(key, valid_days=31), NOW, 10, "validity period differs"),
        (_spec(key, valid_days=30), later, 10, "expires within renew_before_days (10)"),
        (_spec(key, valid_days=30), NOW + datetime.timedelta(days=31), 10, "expired"),
        (_spec(key, valid_days=30), NOW - datetime.timedelta(days=1), 10, "not yet valid"),
    ]
    for spec, now, renew, reason in cases:
        assert spec.differences(cert, issuer, now, renew) == reason
    assert _spec(key, valid_days=30).differences(cert, issuer, later, 1) is None
    other = FakeIssuer(ec.generate_private_key(ec.SECP384R1()))
    assert _spec(key, valid_days=30).differences(cert, other, NOW, 10) == "issued by a different issuer"
    renamed = FakeIssuer(issuer.private_key, subject="CN=Other CA")
    assert _spec(key, valid_days=30).differences(cert, renamed, NOW, 10) == "issued by a different issuer"


def test_not_after_absolute_and_in_the_past():
    issuer = FakeIssuer(ec.generate_private_key(ec.SECP384R1()))
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    end = datetime.datetime(2030, 9, 1, tzinfo=UTC)
    spec = _spec(key, not_after_time=end)
    cert = _issue(spec, issuer)
    assert certs.not_after(cert) == end
    assert spec.differences(cert, issuer, NOW, 10) is None
    assert _spec(key, not_after_time=end + datetime.timedelta(days=1)).differences(cert, issuer, NOW, 10) == \
        "not_after differs"
    with pytest.raises(certs.CertificateError, match="in the past"):
        _spec(key, not_after_time=NOW - datetime.timedelta(seconds=1)).validity(NOW)


def test_signing_hash():
    assert certs.signing_hash("sha384", ec.generate_private_key(ec.SECP256R1())).name == "sha384"
    assert certs.signing_hash("sha256", ed25519.Ed25519PrivateKey.generate()) is None
    with pytest.raises(certs.CertificateError, match="digest must be one of"):
        certs.signing_hash("md5", ec.generate_private_key(ec.SECP256R1()))


def test_preview_matches_issued():
    issuer = FakeIssuer(ec.generate_private_key(ec.SECP384R1()))
    spec = _spec(ec.generate_private_key(ec.SECP256R1()).public_key(), valid_days=30)
    preview = spec.preview(issuer.subject, NOW)
    issued = certs.summary(_issue(spec, issuer))
    for field in ("subject", "issuer", "not_before", "not_after", "subject_alt_name", "ca", "public_key"):
        assert preview[field] == issued[field], field
