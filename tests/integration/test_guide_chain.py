"""The OpenSSL guide's chain, built by a playbook of our modules, checked the guide's way."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.ansible_run import run_playbook
from tests.integration.pki_fixtures import openssl, task_result, x509_text

PLAYBOOK = Path(__file__).with_name("guide_chain.yml")
SECRETS = {"vault_root_passphrase": "guide-root-9d1e", "vault_intermediate_passphrase": "guide-int-4c7a",
           "vault_ocsp_passphrase": "guide-ocsp-e25f"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ocsp_query(ca: Path, cert: Path) -> str:
    """One request against `openssl ocsp` as responder with our index and signer (the guide)."""
    inter = ca / "intermediate"
    port = free_port()
    responder = subprocess.Popen(
        ["openssl", "ocsp", "-port", str(port), "-index", inter / "index.txt",
         "-CA", inter / "certs" / "ca-chain.cert.pem",
         "-rkey", inter / "private" / "ocsp.example.com.key.pem",
         "-rsigner", inter / "certs" / "ocsp.example.com.cert.pem",
         "-passin", f"pass:{SECRETS['vault_ocsp_passphrase']}", "-nrequest", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            client = subprocess.run(
                ["openssl", "ocsp", "-CAfile", ca / "certs" / "ca.cert.pem",
                 "-verify_other", inter / "certs" / "ca-chain.cert.pem",
                 "-url", f"http://127.0.0.1:{port}", "-resp_text",
                 "-issuer", inter / "certs" / "ca.cert.pem", "-cert", cert],
                capture_output=True, text=True, check=False)
            if client.returncode == 0 or time.monotonic() > deadline or responder.poll() is not None:
                break
            time.sleep(0.2)
        return client.stdout + client.stderr
    finally:
        responder.kill()
        responder.wait()


# Target hosts may run Debian 12's python3 + cryptography 38.0.4. Point this variable at
# such an interpreter (scripts/test.sh sets Debian's /usr/bin/python3 with
# python3-cryptography; a python3.9 venv with cryptography==38.0.4 works too) to run the
# chain on it; the controller side stays the project venv.
COMPAT_PYTHON = os.environ.get("PKIOPS_COMPAT_PYTHON")


@pytest.mark.slow
@pytest.mark.parametrize("interpreter", [None, pytest.param(COMPAT_PYTHON, id="compat-python", marks=pytest.mark.skipif(
    not COMPAT_PYTHON, reason="set PKIOPS_COMPAT_PYTHON to a Python 3.9+ with cryptography 38"))])
def test_guide_chain_playbook(tmp_path, interpreter):
    ca = tmp_path / "ca"
    extra = {"pki_dir": str(ca), **SECRETS}
    if interpreter:
        extra["ansible_python_interpreter"] = interpreter
    first = run_playbook(PLAYBOOK, extra_vars=extra)
    assert first.rc == 0, first.output
    assert re.search(r"localhost\s+: ok=5\s+changed=5\s", first.stdout), first.stdout
    second = run_playbook(PLAYBOOK, extra_vars=extra, diff=True)
    assert second.rc == 0, second.output
    assert re.search(r"localhost\s+: ok=5\s+changed=0\s", second.stdout), second.stdout
    for secret in SECRETS.values():
        assert secret not in first.output + second.output

    inter = ca / "intermediate"
    certs = inter / "certs"
    for leaf in ("ocsp.example.com", "test.example.com", "alice@example.com"):
        openssl("verify", "-CAfile", ca / "certs" / "ca.cert.pem", "-untrusted", certs / "ca-chain.cert.pem",
                certs / f"{leaf}.cert.pem")
    text = x509_text(certs / "ocsp.example.com.cert.pem")
    assert re.search(r"X509v3 Key Usage: critical\n\s+Digital Signature\n", text)
    assert re.search(r"X509v3 Extended Key Usage: critical\n\s+OCSP Signing\n", text)
    assert "OCSP No Check" in text
    assert "OCSP - URI:http://ocsp.example.com" in x509_text(certs / "test.example.com.cert.pem")

    # the guide's OCSP round trip: good, revoke with openssl ca, revoked
    server_cert = certs / "test.example.com.cert.pem"
    answer = ocsp_query(ca, server_cert)
    assert "Response verify OK" in answer and f"{server_cert}: good" in answer, answer
    assert "Responder Id: C = GB, ST = England, O = Alice Ltd, OU = Alice Ltd Certificate Authority, CN = ocsp.example.com" in answer
    openssl("ca", "-config", inter / "openssl.cnf", "-revoke", server_cert,
            "-passin", f"pass:{SECRETS['vault_intermediate_passphrase']}")
    answer = ocsp_query(ca, server_cert)
    assert "Response verify OK" in answer and f"{server_cert}: revoked" in answer, answer

    # the next run replaces the revoked certificate (same key) and touches nothing else
    third = run_playbook(PLAYBOOK, extra_vars=extra)
    assert re.search(r"localhost\s+: ok=5\s+changed=1\s", third.stdout), third.stdout
    assert task_result(third, "Server certificate (guide - Revoke a certificate, test.example.com)")[
        "changed_reason"] == "revoked in the issuer database"
    answer = ocsp_query(ca, server_cert)
    assert f"{server_cert}: good" in answer, answer
