"""module_utils/keys.py: generation, AES-256 encryption, loading errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / ".cache" / "collections"))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa  # noqa: E402

from ansible_collections.pkiops.ocsp.plugins.module_utils import keys  # noqa: E402


@pytest.mark.parametrize("spec,expected", [
    (keys.KeySpec("RSA", 2048), {"type": "RSA", "size": 2048}),
    (keys.KeySpec("ECC", curve="secp256r1"), {"type": "ECC", "curve": "secp256r1", "size": 256}),
    (keys.KeySpec(curve="secp384r1"), {"type": "ECC", "curve": "secp384r1", "size": 384}),
    (keys.KeySpec("Ed25519"), {"type": "Ed25519"}),
])
def test_generate_and_describe(spec, expected):
    assert keys.describe_key(spec.generate()) == expected


def test_default_sizes():
    assert keys.KeySpec().generate().key_size == 2048
    assert keys.KeySpec("ECC").generate().curve.name == "secp384r1"


@pytest.mark.parametrize("kwargs,message", [
    ({"key_type": "DSA"}, "unknown private key type"),
    ({"key_type": "ECC", "size": 2048}, "privatekey_size only applies to RSA"),
    ({"key_type": "RSA", "curve": "secp256r1"}, "privatekey_curve only applies to ECC"),
    ({"key_type": "RSA", "size": 1024}, "shorter than 2048"),
    ({"key_type": "ECC", "curve": "brainpoolP256r1"}, "unknown curve"),
])
def test_bad_specs(kwargs, message):
    with pytest.raises(keys.PrivateKeyError, match=message):
        keys.KeySpec(**kwargs)


@pytest.mark.parametrize("key", [ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate(),
                                 rsa.generate_private_key(65537, 2048)])
def test_encrypted_pem_is_aes256_and_round_trips(tmp_path, key):
    pem = keys.serialize_private_key(key, "pass-phrase")
    path = tmp_path / "k.pem"
    path.write_bytes(pem)
    parsed = subprocess.run(["openssl", "asn1parse", "-in", path], capture_output=True, text=True, check=True).stdout
    assert "PBES2" in parsed and "aes-256-cbc" in parsed
    subprocess.run(["openssl", "pkey", "-in", path, "-passin", "pass:pass-phrase", "-noout"], check=True)
    loaded = keys.read_private_key_file(str(path), "pass-phrase")
    assert keys.same_public_key(loaded, key)


def test_plain_pem_is_pkcs8_unencrypted():
    pem = keys.serialize_private_key(ec.generate_private_key(ec.SECP256R1()))
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")


def test_load_errors_name_the_problem_not_the_passphrase(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = keys.serialize_private_key(key, "right-pass")
    plain = keys.serialize_private_key(key)
    with pytest.raises(keys.PrivateKeyError, match="wrong passphrase") as info:
        keys.load_private_key(encrypted, "wrong-pass", "test key")
    assert "wrong-pass" not in str(info.value)
    with pytest.raises(keys.PrivateKeyError, match="encrypted and no passphrase"):
        keys.load_private_key(encrypted, None, "test key")
    with pytest.raises(keys.PrivateKeyError, match="not encrypted but a passphrase"):
        keys.load_private_key(plain, "some-pass", "test key")
    with pytest.raises(keys.PrivateKeyError, match="cannot parse test key"):
        keys.load_private_key(b"garbage", None, "test key")
    with pytest.raises(keys.PrivateKeyError, match="cannot read"):
        keys.read_private_key_file(str(tmp_path / "missing.pem"))
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    assert keys.same_public_key(keys.load_private_key(der), key)


def test_traditional_openssl_encrypted_key_loads(tmp_path):
    """Keys made by `openssl genrsa -aes256` (the guide) are read as they are."""
    path = tmp_path / "legacy.pem"
    subprocess.run(["openssl", "genrsa", "-aes256", "-traditional", "-passout", "pass:legacy", "-out", path, "2048"],
                   check=True, capture_output=True)
    assert b"Proc-Type: 4,ENCRYPTED" in path.read_bytes()
    assert keys.describe_key(keys.read_private_key_file(str(path), "legacy")) == {"type": "RSA", "size": 2048}


def test_mismatch_only_checks_given_options():
    key = ec.generate_private_key(ec.SECP256R1())
    assert keys.KeySpec().mismatch(key, explicit_type=False) is None
    assert keys.KeySpec("RSA").mismatch(key, explicit_type=True) == "is ECC, not RSA"
    assert keys.KeySpec("ECC", curve="secp384r1").mismatch(key, True) == "uses curve secp256r1, not secp384r1"
    assert keys.KeySpec("RSA", 4096).mismatch(rsa.generate_private_key(65537, 2048), True) == \
        "has 2048 bits, not 4096"


def test_fingerprints():
    key = ed25519.Ed25519PrivateKey.generate()
    fingerprint = keys.public_key_fingerprint(key)
    assert fingerprint == keys.public_key_fingerprint(key.public_key())
    assert len(fingerprint.split(":")) == 32 and fingerprint == fingerprint.upper()
    assert len(keys.public_key_pin(key)) == 44
