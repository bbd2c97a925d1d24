"""ocsp_signer through ansible-playbook; extensions checked with openssl x509 -text."""
from __future__ import annotations

import datetime
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.helpers.ansible_run import run_playbook
from tests.integration.pki_fixtures import (  # noqa: F401 pylint: disable=unused-import
    base_pki, file_mode, openssl, pki, run_module, snapshot, task_result, x509_text)

SIGNER_PASS = "ocsp-Secret-55d1"


def signer_args(pki, **extra):
    return {**pki.issuer_args(), "privatekey_path": str(pki.base / "ocsp.key.pem"),
            "privatekey_passphrase": SIGNER_PASS, "privatekey_type": "ECC",
            "path": str(pki.base / "ocsp.cert.pem"),
            "subject": {"C": "GB", "ST": "England", "O": "Alice Ltd", "CN": "ocsp.example.com"}, **extra}


def test_signer_extensions_validity_and_idempotence(pki):
    args = signer_args(pki)
    first = run_module("ocsp_signer", args, diff=True)
    assert first["changed"] is True and not first["failed"], first
    text = x509_text(args["path"])
    # what the guide tells you to check, plus nocheck and CA:FALSE
    assert re.search(r"X509v3 Key Usage: critical\n\s+Digital Signature\n", text)
    assert re.search(r"X509v3 Extended Key Usage: critical\n\s+OCSP Signing\n", text)
    assert "OCSP No Check" in text
    assert re.search(r"Basic Constraints: critical\s+CA:FALSE", text)
    cert = x509.load_pem_x509_certificate(Path(args["path"]).read_bytes())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=30)
    assert file_mode(args["privatekey_path"]) == 0o600
    assert "aes-256-cbc" in openssl("asn1parse", "-in", args["privatekey_path"]).stdout
    assert first["chain"] == (pki.inter / "certs" / "ca-chain.cert.pem").read_text()
    openssl("verify", "-purpose", "ocsphelper", "-CAfile", pki.root / "certs" / "ca.cert.pem",
            "-untrusted", pki.inter / "certs" / "ca-chain.cert.pem", args["path"])
    assert first["diff"]["before"] == {} and first["diff"]["after"]["subject"].endswith("CN=ocsp.example.com")

    before = snapshot(pki.base)
    for check in (True, False):
        again = run_module("ocsp_signer", args, check=check)
        assert again["changed"] is False and again["changed_reason"] is None, again
    assert snapshot(pki.base) == before


def test_signer_renewal_window(pki):
    """A signer close to expiry is renewed with the default 30/10 days; the key is kept."""
    short = run_module("ocsp_signer", signer_args(pki, valid_days=5, renew_before_days=1))
    assert short["changed"] is True and not short["failed"], short
    key_before = Path(pki.base / "ocsp.key.pem").read_bytes()
    renewed = run_module("ocsp_signer", signer_args(pki))
    assert renewed["changed"] is True, renewed
    assert renewed["changed_reason"] == "expires within renew_before_days (10)"
    assert renewed["serial_number"] != short["serial_number"]
    assert Path(pki.base / "ocsp.key.pem").read_bytes() == key_before
    assert run_module("ocsp_signer", signer_args(pki))["changed"] is False


def test_signer_refuses_window_as_long_as_validity(pki):
    before = snapshot(pki.base)
    result = run_module("ocsp_signer", signer_args(pki, valid_days=10, renew_before_days=10))
    assert result["failed"] and "renew_before_days (10) must be shorter than valid_days (10)" in result["msg"]
    assert snapshot(pki.base) == before


def test_signer_default_window_shrinks_for_a_short_validity(pki):
    """Without renew_before_days a short-lived signer renews a third of its validity before
    expiry (7 days: 2), as ca_cert does."""
    first = run_module("ocsp_signer", signer_args(pki, valid_days=7))
    assert first["changed"] is True, first
    again = run_module("ocsp_signer", signer_args(pki, valid_days=7))
    assert again["changed"] is False, again
    # A signer with 5 days left: outside a 7-day validity's window (2), inside an 18-day one's (6).
    assert run_module("ocsp_signer", signer_args(pki, valid_days=5, renew_before_days=1, force=True))["changed"]
    # (check mode: the 5-day signer stays; the window is tested before the validity length)
    outside = run_module("ocsp_signer", signer_args(pki, valid_days=7), check=True)
    assert outside["changed_reason"] == "validity period differs", outside
    inside = run_module("ocsp_signer", signer_args(pki, valid_days=18), check=True)
    assert inside["changed_reason"] == "expires within renew_before_days (6)", inside


def test_signer_check_mode_writes_nothing(pki):
    before = snapshot(pki.base)
    result = run_module("ocsp_signer", signer_args(pki), check=True, diff=True)
    assert result["changed"] is True and result["certificate"] is None, result
    assert result["diff"]["after"]["not_after"] > result["diff"]["after"]["not_before"]
    assert snapshot(pki.base) == before


def test_signer_from_csr_key_stays_on_responder(pki, tmp_path):
    responder = tmp_path / "responder"
    responder.mkdir()
    playbook = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "csr", "register": "req", "pkiops.ocsp.csr": {
            # ECDSA: a fresh CSR signature every run, same public key -> still no change
            "privatekey_path": str(responder / "signer.key.pem"), "privatekey_type": "ECC",
            "subject": {"O": "Alice Ltd", "CN": "responder1.example.com"}}},
        {"name": "sign", "register": "signed", "pkiops.ocsp.ocsp_signer": {
            **pki.issuer_args(), "csr_content": "{{ req.csr }}", "copy_from_csr": ["subject"],
            "path": str(pki.base / "responder1.cert.pem")}},
        {"name": "install", "ansible.builtin.copy": {
            "content": "{{ signed.certificate }}", "dest": str(responder / "signer.cert.pem"), "mode": "0644"}},
    ]}]
    for attempt in (1, 2):
        run = run_playbook(playbook)
        assert run.rc == 0, run.output
        for name in ("csr", "sign", "install"):
            assert task_result(run, name)["changed"] is (attempt == 1), (attempt, name, task_result(run, name))
    cert = x509.load_pem_x509_certificate((responder / "signer.cert.pem").read_bytes())
    key = serialization.load_pem_private_key((responder / "signer.key.pem").read_bytes(), None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert cert.public_key().public_bytes(*spki) == key.public_key().public_bytes(*spki)
    assert "OCSP Signing" in x509_text(responder / "signer.cert.pem")


def test_signer_requires_issuer_and_a_key_source(pki):
    no_issuer = {k: v for k, v in signer_args(pki).items() if k != "issuer_dir"}
    result = run_module("ocsp_signer", no_issuer)
    assert result["failed"] and "issuer_dir" in result["msg"]
    no_key = {k: v for k, v in signer_args(pki).items() if not k.startswith("privatekey")}
    before = snapshot(pki.base)
    result = run_module("ocsp_signer", no_key)
    assert result["failed"] and "one of privatekey_path, csr_path or csr_content" in result["msg"]
    assert snapshot(pki.base) == before
