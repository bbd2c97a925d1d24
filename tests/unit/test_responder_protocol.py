"""OCSP encoding (ocsp_responder.protocol, signer): responses assembled from DER pieces
must be read back identically by an independent decoder (cryptography's OCSP parser) and
carry a signature that verifies."""
from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ocsp_responder import protocol
from ocsp_responder.responses import integer_der
from ocsp_responder.signer import SignerError, load_signer

UTC = datetime.timezone.utc
NOW = datetime.datetime.now(UTC).replace(microsecond=0)


def make_cert(subject, key, issuer_name, issuer_key, ca=False, eku=None):
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    algorithm = None if isinstance(issuer_key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(issuer_key, algorithm)


@pytest.fixture(scope="module")
def ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unit CA")])
    return SimpleNamespace(key=key, cert=make_cert("Unit CA", key, name, key, ca=True), name=name)


def write(tmp_path, name, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def signer_for(tmp_path, ca, key, eku=(ExtendedKeyUsageOID.OCSP_SIGNING,)):
    cert = make_cert("Unit signer", key, ca.name, ca.key, eku=list(eku) if eku else None)
    issuer = SimpleNamespace(
        name="unit", delegated=True,
        signer_cert=write(tmp_path, "signer.pem", cert.public_bytes(serialization.Encoding.PEM)),
        signer_key=write(tmp_path, "signer.key", key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        signer_key_passphrase_file=None)
    return load_signer(issuer, ca.cert), cert


def cert_id(ca, serial, algorithm=hashes.SHA256()):
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *_issuer_hashes(ca, algorithm), serial, algorithm)
    request = builder.build().public_bytes(serialization.Encoding.DER)
    return protocol.parse_request(request, 8).certs[0]


def _issuer_hashes(ca, algorithm):
    name_hash = hashes.Hash(algorithm)
    name_hash.update(ca.cert.subject.public_bytes())
    key_bits = ca.cert.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    key_hash = hashes.Hash(algorithm)
    key_hash.update(key_bits)
    return name_hash.finalize(), key_hash.finalize()


@pytest.mark.parametrize("key_factory", [
    lambda: rsa.generate_private_key(65537, 2048),
    lambda: ec.generate_private_key(ec.SECP384R1()),
    ed25519.Ed25519PrivateKey.generate,
], ids=["rsa", "ecdsa-p384", "ed25519"])
def test_response_decodes_and_verifies(tmp_path, ca, key_factory):
    key = key_factory()
    signer, signer_cert = signer_for(tmp_path, ca, key)
    requested = [cert_id(ca, 0x1001), cert_id(ca, 0x1002, hashes.SHA1()), cert_id(ca, 0x1003)]
    revoked_at = NOW - datetime.timedelta(days=2)
    answers = [protocol.SingleAnswer(requested[0].cert_id_der, "good"),
               protocol.SingleAnswer(requested[1].cert_id_der, "revoked", revoked_at, 4),
               protocol.SingleAnswer(requested[2].cert_id_der, "unknown")]
    this_update, next_update = NOW - datetime.timedelta(minutes=5), NOW + datetime.timedelta(hours=8)
    singles = [protocol.single_response(a, this_update, next_update) for a in answers]
    der = protocol.build_response(signer, protocol.tbs_head(signer, "key_hash", singles, NOW),
                                  nonce_extension=None, extended_revoke=True)

    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    got = list(response.responses)
    assert [r.serial_number for r in got] == [0x1001, 0x1002, 0x1003]
    assert [r.certificate_status for r in got] == [ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED,
                                                   ocsp.OCSPCertStatus.UNKNOWN]
    assert isinstance(got[1].hash_algorithm, hashes.SHA1) and isinstance(got[0].hash_algorithm, hashes.SHA256)
    assert got[1].revocation_time_utc == revoked_at
    assert got[1].revocation_reason == x509.ReasonFlags.superseded
    assert got[0].this_update_utc == this_update and got[0].next_update_utc == next_update
    assert response.produced_at_utc == NOW
    assert response.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(key.public_key()).digest
    assert response.certificates == [signer_cert]
    assert [e.oid.dotted_string for e in response.extensions] == ["1.3.6.1.5.5.7.48.1.9"]

    public = signer_cert.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        public.verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(public, ec.EllipticCurvePublicKey):
        assert isinstance(response.signature_hash_algorithm, hashes.SHA384)
        public.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(hashes.SHA384()))
    else:
        public.verify(response.signature, response.tbs_response_bytes)


def test_responder_id_by_name(tmp_path, ca):
    signer, signer_cert = signer_for(tmp_path, ca, ec.generate_private_key(ec.SECP256R1()))
    single = protocol.single_response(protocol.SingleAnswer(cert_id(ca, 5).cert_id_der, "good"), NOW, NOW)
    response = ocsp.load_der_ocsp_response(protocol.build_response(signer, protocol.tbs_head(signer, "name", [single], NOW)))
    assert response.responder_name == signer_cert.subject


@pytest.mark.parametrize("nonce_length, extended_revoke", [(None, False), (16, False), (None, True), (128, True)],
                         ids=["plain", "nonce", "extended-revoke", "both"])
def test_response_extensions_and_lengths(tmp_path, ca, nonce_length, extended_revoke):
    """build_response writes every length from sizes alone: each extension mix, one-octet
    and long (0x81, 0x82) lengths inside, must decode and verify; a certificate list big
    enough for 3-octet lengths (32 CertIDs) too."""
    key = rsa.generate_private_key(65537, 2048)
    signer, signer_cert = signer_for(tmp_path, ca, key)
    nonce = bytes(range(nonce_length)) if nonce_length is not None else None
    nonce_extension = None
    if nonce is not None:  # Extension ::= SEQUENCE { extnID, extnValue OCTET STRING (nonce OCTET STRING) }
        nonce_extension = protocol.sequence(bytes.fromhex("06092b0601050507300102"),
                                            protocol.tlv(0x04, protocol.tlv(0x04, nonce)))
    singles = [protocol.single_response(protocol.SingleAnswer(cert_id(ca, serial).cert_id_der, "good"), NOW, NOW)
               for serial in range(1, 33)]
    der = protocol.build_response(signer, protocol.tbs_head(signer, "key_hash", singles, NOW),
                                  nonce_extension=nonce_extension, extended_revoke=extended_revoke)
    response = ocsp.load_der_ocsp_response(der)  # strict DER: a length written long is refused
    assert len(list(response.responses)) == 32 and response.certificates == [signer_cert]
    expected = (["1.3.6.1.5.5.7.48.1.2"] if nonce is not None else []) + \
        (["1.3.6.1.5.5.7.48.1.9"] if extended_revoke else [])
    assert [extension.oid.dotted_string for extension in response.extensions] == expected
    if nonce is not None:
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    signer_cert.public_key().verify(response.signature, response.tbs_response_bytes, padding.PKCS1v15(),
                                    hashes.SHA256())


def test_signer_without_eku_refused(tmp_path, ca):
    with pytest.raises(SignerError, match="OCSPSigning"):
        signer_for(tmp_path, ca, ec.generate_private_key(ec.SECP256R1()), eku=(ExtendedKeyUsageOID.SERVER_AUTH,))
    with pytest.raises(SignerError, match="OCSPSigning"):
        signer_for(tmp_path, ca, ec.generate_private_key(ec.SECP256R1()), eku=())


@pytest.mark.parametrize("status,name", [(protocol.MALFORMED_REQUEST, "MALFORMED_REQUEST"),
                                         (protocol.INTERNAL_ERROR, "INTERNAL_ERROR"),
                                         (protocol.TRY_LATER, "TRY_LATER"),
                                         (protocol.UNAUTHORIZED, "UNAUTHORIZED")])
def test_error_responses(status, name):
    assert ocsp.load_der_ocsp_response(protocol.error_response(status)).response_status == \
        getattr(ocsp.OCSPResponseStatus, name)


def test_parse_request_limits_and_garbage(ca):
    builder = ocsp.OCSPRequestBuilder().add_certificate_by_hash(*_issuer_hashes(ca, hashes.SHA1()), 7, hashes.SHA1())
    request = builder.build().public_bytes(serialization.Encoding.DER)
    assert protocol.parse_request(request, 1).certs[0].serial == 7
    for garbage in (b"", b"\x30\x00", request + b"\x00", request[:-1], b"\x04\x03abc"):
        with pytest.raises(protocol.MalformedRequest):
            protocol.parse_request(garbage, 8)


@pytest.mark.parametrize("serial", [0, 1, 127, 128, 255, 256, -1, -127, -128, -129, -255, -256, -32768, -32769,
                                    2 ** 159, -(2 ** 159)])
def test_serial_encoded_as_clients_encode_it(serial):
    # Pre-signed CertIDs are looked up by their bytes: one octet too many and the client's
    # request never matches them.
    assert integer_der(serial) == asn1_core.Integer(serial).dump()


@pytest.mark.parametrize("moment, text", [
    (datetime.datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC), b"09991231235959Z"),  # a hand-edited index
    (datetime.datetime(2050, 1, 1, tzinfo=UTC), b"20500101000000Z"),
])
def test_generalized_time_has_four_digit_years(moment, text):
    assert protocol.generalized_time(moment) == b"\x18" + bytes((len(text),)) + text
