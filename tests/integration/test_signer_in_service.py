"""The waits that end the responder plays, against a real responder process:
playbooks/files/ocsp_signer_in_service.py (must tell the signer in service from another
one), the task files tasks/wait_signer_served.yml and tasks/wait_index_served.yml run
through ansible-playbook, and the rotation they guard (new signer certificate + key in
place, SIGHUP) ending with the new signer in service."""
from __future__ import annotations

import datetime
import http.server
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from asn1crypto import ocsp as asn1_ocsp, x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from tests.helpers.ansible_run import ROOT, run_playbook
from tests.responder.conftest import base_config, build_pki, launch_responder

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "playbooks" / "files" / "ocsp_signer_in_service.py"


def in_service(url: str, issuer, signer) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), url, str(issuer), str(signer)],
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    base = tmp_path_factory.mktemp("signer")
    pki = build_pki(base / "pki")
    responder = launch_responder(base, base_config(pki))
    yield pki, responder
    responder.stop()


def test_reports_the_signer_in_service(running):
    pki, responder = running
    result = in_service(responder.url, pki.intermediate.cert, pki.signer.cert)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signer in service" in result.stdout


def test_reports_a_different_signer(running):
    pki, responder = running
    other = pki.intermediate.issue("ocsp-signer-next", extensions="ocsp")
    result = in_service(responder.url, pki.intermediate.cert, other.cert)
    assert result.returncode == 1
    assert "expected" in result.stdout


def test_reports_an_answer_not_signed_by_the_served_certificate(running, tmp_path):
    """A responder that embeds the new signer certificate but still signs with the old key
    (a half-done rotation) fails every client: it is not "in service"."""
    pki, _responder = running
    issuer = x509.load_pem_x509_certificate(pki.intermediate.cert.read_bytes())
    signer = x509.load_pem_x509_certificate(pki.signer.cert.read_bytes())
    previous = pki.intermediate.issue("ocsp-signer-previous", extensions="ocsp")
    previous_cert = x509.load_pem_x509_certificate(previous.cert.read_bytes())
    previous_key = serialization.load_pem_private_key(previous.key.read_bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    signed = (ocsp.OCSPResponseBuilder()
              .add_response(signer, issuer, hashes.SHA1(), ocsp.OCSPCertStatus.GOOD, now,
                            now + datetime.timedelta(hours=1), None, None)
              .responder_id(ocsp.OCSPResponderEncoding.HASH, previous_cert)
              .sign(previous_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    # The certificate on disk embedded, the previous key's signature kept.
    response = asn1_ocsp.OCSPResponse.load(signed)
    basic = response["response_bytes"]["response"].parsed
    basic["certs"] = [asn1_x509.Certificate.load(signer.public_bytes(serialization.Encoding.DER))]
    response["response_bytes"]["response"] = basic
    answer = response.dump(force=True)

    class MisSigning(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server hook name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/ocsp-response")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MisSigning)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = in_service(f"http://127.0.0.1:{server.server_address[1]}/", pki.intermediate.cert,
                            pki.signer.cert)
    finally:
        server.shutdown()
    assert result.returncode == 1, result.stdout
    assert "not signed by its key" in result.stdout


def test_reports_an_unreachable_responder(running):
    pki, _responder = running
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = in_service(f"http://127.0.0.1:{port}/", pki.intermediate.cert, pki.signer.cert)
    assert result.returncode == 1
    assert "no answer" in result.stdout


def wait_play(pki, responder, signer_dir, index_path, retries=30):
    return [{
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {
            "pki_issuer_name": "intermediate",
            "pki_responder_index_path": str(index_path),
            "pki_ocsp_health_address": f"127.0.0.1:{responder.port}",
            "pki_ocsp_health_url": f"http://127.0.0.1:{responder.port}/healthz",
            "pki_ocsp_signer_dir": str(signer_dir),
            "ocsp_responder_venv_dir": sys.prefix,
            "pki_responder_wait_retries": retries,
        },
        "tasks": [
            {"name": "index", "ansible.builtin.import_tasks": str(ROOT / "playbooks/tasks/wait_index_served.yml")},
            {"name": "signer", "ansible.builtin.import_tasks": str(ROOT / "playbooks/tasks/wait_signer_served.yml")},
        ],
    }]


def signer_dir_with(tmp_path, issuer_cert, signer_cert):
    """The role's per-issuer layout: ca.cert.pem and signer.cert.pem side by side."""
    directory = tmp_path / "issuer"
    directory.mkdir(exist_ok=True)
    shutil.copy(issuer_cert, directory / "ca.cert.pem")
    shutil.copy(signer_cert, directory / "signer.cert.pem")
    return directory


def test_wait_tasks_pass_once_the_responder_serves_the_new_index(running, tmp_path):
    pki, responder = running
    pki.intermediate.revoke(pki.leaves["other"])  # what revoke.yml does before it waits
    run = run_playbook(wait_play(pki, responder, signer_dir_with(tmp_path, pki.intermediate.cert, pki.signer.cert),
                                 pki.intermediate.index))
    assert run.rc == 0, run.output[-4000:]
    health = run.task("Wait until the responder has loaded that index")["json"]
    assert health["issuers"]["intermediate"]["entries"] == len(pki.intermediate.index.read_text().splitlines())
    assert run.task("Wait until the responder signs with the certificate on disk")["rc"] == 0


def test_wait_tasks_fail_when_the_responder_serves_something_else(running, tmp_path):
    pki, responder = running
    other_index = tmp_path / "index.txt"
    other_index.write_text(pki.intermediate.index.read_text())  # same content, other file
    other = pki.intermediate.issue("ocsp-signer-other", extensions="ocsp")
    run = run_playbook(wait_play(pki, responder, signer_dir_with(tmp_path, pki.intermediate.cert, other.cert),
                                 other_index, retries=1))
    assert run.rc != 0
    assert "Wait until the responder has loaded that index" in run.output
    # The signer check on its own fails too.
    plays = wait_play(pki, responder, signer_dir_with(tmp_path, pki.intermediate.cert, other.cert),
                      pki.intermediate.index, retries=1)
    run = run_playbook(plays)
    assert run.rc != 0
    assert "expected" in run.task("Wait until the responder signs with the certificate on disk")["stdout"]


def test_sighup_puts_a_rotated_signer_in_service(tmp_path):
    pki = build_pki(tmp_path / "pki")
    responder = launch_responder(tmp_path, base_config(pki))
    try:
        rotated = pki.intermediate.issue("ocsp-signer-rotated", extensions="ocsp")
        # What the role does on a rotation: the files in place change, then a reload.
        shutil.copy(rotated.key, pki.signer.key)
        shutil.copy(rotated.cert, pki.signer.cert)
        responder.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while True:
            result = in_service(responder.url, pki.intermediate.cert, pki.signer.cert)
            if result.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert result.returncode == 0, result.stdout
    finally:
        responder.stop()
