"""The README's demo command, run for real in a temporary directory.

scripts/demo.sh builds root -> intermediate -> OCSP signer -> server certificate, starts
the responder from the checkout, asks it with `openssl ocsp` (good), revokes, asks again
(revoked) and stops it. Here the outcome is checked with openssl as an independent party,
and a second run must work with the CA part unchanged."""
from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers.ansible_run import ROOT, ansible_env

pytestmark = pytest.mark.slow

CA_TASKS = ("Create the root CA", "Create the intermediate CA, signed by the root",
            "Create the OCSP signing pair (AES-256 encrypted key, as in the guide)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_demo(out_dir: Path, port: int, results: Path, args=()) -> tuple[subprocess.CompletedProcess, dict]:
    results.unlink(missing_ok=True)
    env = ansible_env(str(results))
    env["PKIOPS_DEMO_DIR"] = str(out_dir)
    proc = subprocess.run([str(ROOT / "scripts" / "demo.sh"), "-e", f"demo_ocsp_port={port}", *args],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    by_task = {}
    if results.exists():
        for line in results.read_text().splitlines():
            entry = json.loads(line)
            by_task[entry["task"]] = entry
    return proc, by_task


def openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def index_entry(index: Path, serial_hex: str) -> list[str]:
    for line in index.read_text().splitlines():
        fields = line.split("\t")
        if int(fields[3], 16) == int(serial_hex.replace(":", ""), 16):
            return fields
    raise AssertionError(f"serial {serial_hex} not in {index}")


def assert_good_then_revoked(by_task: dict, cert: Path) -> None:
    before = by_task["Ask the responder about the server certificate"]["result"]
    after = by_task["Ask again until the responder has read the new index.txt (expected revoked)"]["result"]
    assert f"{cert}: good" in before["stdout"]
    assert "Response verify OK" in before["stderr"]
    assert f"{cert}: revoked" in after["stdout"]
    assert "Reason: keyCompromise" in after["stdout"]
    assert by_task["Stop the demo responder"]["result"]["changed"] is True


def test_demo_runs_twice_good_then_revoked(tmp_path):
    out = tmp_path / "demo"
    port = free_port()
    proc, by_task = run_demo(out, port, tmp_path / "results.jsonl")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    inter = out / "intermediate"
    cert = inter / "certs" / "test.example.com.cert.pem"
    assert_good_then_revoked(by_task, cert)

    # The chain verifies with openssl, for the server and as an OCSP signer.
    chain = ["-CAfile", str(out / "root" / "certs" / "ca.cert.pem"),
             "-untrusted", str(inter / "certs" / "ca.cert.pem")]
    verified = openssl("verify", *chain, "-purpose", "sslserver", str(cert))
    assert verified.returncode == 0 and ": OK" in verified.stdout, verified.stderr
    signer = inter / "certs" / "ocsp.example.com.cert.pem"
    verified = openssl("verify", *chain, "-purpose", "ocsphelper", str(signer))
    assert verified.returncode == 0, verified.stderr
    aia = openssl("x509", "-in", str(cert), "-noout", "-ext", "authorityInfoAccess").stdout
    assert f"OCSP - URI:http://127.0.0.1:{port}/" in aia

    # The CA database says what the responder said; the responder is gone.
    first_serial = by_task["Revoke the server certificate"]["result"]["serial_hex"]
    fields = index_entry(inter / "index.txt", first_serial)
    assert fields[0] == "R" and fields[2].endswith(",keyCompromise")
    assert not (out / "responder" / "responder.pid").exists()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, "responder still listening"
    # Secrets stay out of the output and the responder log.
    assert "secretpassword" not in proc.stdout + proc.stderr
    assert "secretpassword" not in (out / "responder" / "responder.log").read_text()
    assert oct((out / "responder" / "signer.passphrase").stat().st_mode & 0o777) == "0o600"

    # Check mode after a run: predicts the retirement of the compromised key and changes nothing.
    index_before = (inter / "index.txt").read_bytes()
    proc, by_task = run_demo(out, port, tmp_path / "results.jsonl", args=["--check"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert by_task["Retire the key of a server certificate revoked by an earlier run"]["result"]["changed"] is True
    assert (inter / "private" / "test.example.com.key.pem").exists()
    assert (inter / "index.txt").read_bytes() == index_before

    # Second run: the CA is left alone, a fresh server certificate tells the story again,
    # for a new key (the old one was revoked for keyCompromise).
    compromised_key = (inter / "private" / "test.example.com.key.pem").read_bytes()
    proc, by_task = run_demo(out, port, tmp_path / "results.jsonl")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    for task in CA_TASKS:
        assert by_task[task]["result"]["changed"] is False, task
    reissued = by_task["Issue the server certificate (a fresh one if the earlier one was revoked)"]["result"]
    assert reissued["changed"] is True
    assert (inter / "private" / "test.example.com.key.pem").read_bytes() != compromised_key
    assert_good_then_revoked(by_task, cert)
    second_serial = by_task["Revoke the server certificate"]["result"]["serial_hex"]
    assert second_serial != first_serial
    assert index_entry(inter / "index.txt", first_serial)[0] == "R"
    assert index_entry(inter / "index.txt", second_serial)[0] == "R"
    assert len(re.findall(r"^R\t", (inter / "index.txt").read_text(), re.M)) == 2


def test_demo_check_mode_on_a_fresh_directory_writes_nothing(tmp_path):
    out = tmp_path / "demo"
    proc, by_task = run_demo(out, free_port(), tmp_path / "results.jsonl", args=["--check"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert by_task["Create the OCSP signing pair (AES-256 encrypted key, as in the guide)"]["result"]["skip_reason"] == "Conditional result was False"
    assert not out.exists()
