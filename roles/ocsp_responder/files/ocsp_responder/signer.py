"""The key and certificate that sign one issuer's responses, checked before serving.

A delegated signer must be issued by the CA it answers for and carry the OCSPSigning
extended key usage (RFC 6960 §4.2.2.2): every mainstream client rejects it otherwise, so
the responder refuses to start rather than serve answers nobody accepts (and a SIGHUP
reload that fails these checks keeps the signer in service)."""
from __future__ import annotations

import datetime
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Optional

from asn1crypto import algos, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from .config import IssuerConfig
from .protocol import tlv

log = logging.getLogger("ocsp_responder.signer")


class SignerError(Exception):
    """The signer cannot be used; the message says why and which file."""


def read_passphrase(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as handle:
        data = handle.read()
    # A passphrase file usually ends with one newline that is not part of the secret.
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    return data


def load_private_key(path: str, passphrase_file: Optional[str]):
    with open(path, "rb") as handle:
        data = handle.read()
    passphrase = read_passphrase(passphrase_file)
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, password=passphrase)
        return serialization.load_der_private_key(data, password=passphrase)
    except TypeError as exc:
        # cryptography says "Password was not given but private key is encrypted" etc.
        raise SignerError(f"{path}: {exc}") from None
    except ValueError:
        hint = " (wrong passphrase?)" if passphrase is not None else ""
        raise SignerError(f"{path}: cannot load the private key{hint}") from None


def load_certificate(path: str) -> x509.Certificate:
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise SignerError(f"{path}: not a certificate: {exc}") from None


def _public_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _signature_scheme(key):
    """(AlgorithmIdentifier DER, sign(bytes) -> bytes) for the key type."""
    if isinstance(key, rsa.RSAPrivateKey):
        algorithm = algos.SignedDigestAlgorithm({"algorithm": "sha256_rsa", "parameters": core.Null()})
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()  # immutable: made once, not per signature
        return algorithm.dump(), lambda data: key.sign(data, pkcs1, sha256)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        # Match the digest to the curve strength, as CAs do (P-256/SHA-256, P-384/SHA-384...).
        size = key.curve.key_size
        digest, name = (hashes.SHA256(), "sha256_ecdsa") if size <= 256 else (
            (hashes.SHA384(), "sha384_ecdsa") if size <= 384 else (hashes.SHA512(), "sha512_ecdsa"))
        algorithm = algos.SignedDigestAlgorithm({"algorithm": name})
        ecdsa = ec.ECDSA(digest)
        return algorithm.dump(), lambda data: key.sign(data, ecdsa)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": "ed25519"}).dump(), key.sign
    if isinstance(key, ed448.Ed448PrivateKey):
        return algos.SignedDigestAlgorithm({"algorithm": "ed448"}).dump(), key.sign
    raise SignerError(f"unsupported signer key type {type(key).__name__}")


def _verify_issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


@dataclass
class Signer:
    """Signs tbsResponseData for one issuer. ``responder_id`` is the DER of the
    ResponderID CHOICE; ``certs`` are the DER certificates embedded in responses."""

    cert: x509.Certificate
    algorithm_der: bytes
    sign: object
    responder_id_by_key: bytes
    responder_id_by_name: bytes
    cert_der: bytes
    not_after: datetime.datetime
    delegated: bool
    slow: bool  # RSA: ~200 us per signature, worth a thread; ECDSA/EdDSA: tens of us
    valid_from: float = 0.0   # the certificate's validity as POSIX seconds (thisUpdate/nextUpdate bounds)
    valid_until: float = 0.0
    ca_cert_der: bytes = b""  # the CA certificate it was checked against
    # BasicOCSPResponse.certs: [0] EXPLICIT SEQUENCE OF Certificate, this one; made once, joined per answer
    certs_field: bytes = field(init=False, repr=False)

    def __post_init__(self):
        self.certs_field = _explicit(0, tlv(0x30, self.cert_der))

    def responder_id(self, mode: str) -> bytes:
        return self.responder_id_by_name if mode == "name" else self.responder_id_by_key


def load_signer(issuer: IssuerConfig, ca_cert: x509.Certificate, now: Optional[datetime.datetime] = None) -> Signer:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    key = load_private_key(issuer.signer_key, issuer.signer_key_passphrase_file)
    if issuer.delegated:
        cert = load_certificate(issuer.signer_cert)
        what = f"issuers[{issuer.name}].signer_cert {issuer.signer_cert}"
        if cert.issuer != ca_cert.subject or not _verify_issued_by(cert, ca_cert):
            raise SignerError(f"{what}: not issued by the CA {ca_cert.subject.rfc4514_string()}")
        try:
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            eku = []
        if x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING not in eku:
            raise SignerError(f"{what}: lacks the OCSPSigning extended key usage (1.3.6.1.5.5.7.3.9); "
                              "clients reject responses signed by it")
        try:
            cert.extensions.get_extension_for_oid(x509.oid.ExtensionOID.OCSP_NO_CHECK)
        except x509.ExtensionNotFound:
            log.warning("signer certificate has no id-pkix-ocsp-nocheck extension; clients may try to "
                        "check its own revocation status", extra={"fields": {"issuer": issuer.name}})
    else:
        cert = ca_cert
        what = f"issuers[{issuer.name}].ca_key {issuer.signer_key}"
    if _public_der(key.public_key()) != _public_der(cert.public_key()):
        raise SignerError(f"{what}: the private key does not match the certificate")
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not not_before <= now <= not_after:
        raise SignerError(f"{what}: certificate not valid now (valid {not_before:%Y-%m-%d} to {not_after:%Y-%m-%d})")
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    parsed = asn1_x509.Certificate.load(cert_der)
    key_hash = hashlib.sha1(parsed.public_key["public_key"].contents[1:]).digest()
    algorithm_der, sign = _signature_scheme(key)
    # ResponderID ::= CHOICE { byName [1] Name, byKey [2] KeyHash } (explicitly tagged)
    by_key = core.OctetString(key_hash).dump()
    by_name = parsed.subject.dump()
    return Signer(
        cert=cert,
        algorithm_der=algorithm_der,
        sign=sign,
        responder_id_by_key=_explicit(2, by_key),
        responder_id_by_name=_explicit(1, by_name),
        cert_der=cert_der,
        not_after=not_after,
        delegated=issuer.delegated,
        slow=isinstance(key, rsa.RSAPrivateKey),
        valid_from=not_before.timestamp(),
        valid_until=not_after.timestamp(),
        ca_cert_der=ca_cert.public_bytes(serialization.Encoding.DER),
    )


def _explicit(tag: int, inner: bytes) -> bytes:
    return tlv(0xA0 | tag, inner)
