"""Operating the responder: live reload after ``openssl ca -revoke``, corrupt indexes,
signals (SIGHUP signer rotation included), start-up checks of the signer, key types,
encrypted keys, worker processes."""
from __future__ import annotations

import base64
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

try:
    from .conftest import (Leaf, base_config, ocsp_request_der, openssl_ocsp, responder_command, responder_env,
                           run, write_config)
except ImportError:  # tests/responder is not a package: pytest put this directory on sys.path
    from conftest import (Leaf, base_config, ocsp_request_der, openssl_ocsp, responder_command, responder_env,
                          run, write_config)

from asn1crypto import ocsp

OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}


def cert_status(responder, request: bytes) -> str:
    status, _headers, body = responder.http("/", data=request, headers=OCSP_REQUEST)
    assert status == 200
    response = ocsp.OCSPResponse.load(body)
    assert response["response_status"].native == "successful", response["response_status"].native
    return response["response_bytes"]["response"].parsed["tbs_response_data"]["responses"][0]["cert_status"].name


def embedded_signer_serial(body: bytes) -> int:
    basic = ocsp.OCSPResponse.load(body)["response_bytes"]["response"].parsed
    return basic["certs"][0].serial_number


def unhealthy(responder):
    """The health reply when it is 503, else None (for wait_for)."""
    reply = responder.health()
    return reply if reply[0] == 503 else None


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    reply = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return reply
        reply += chunk


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def test_revocation_served_within_2s_without_failed_requests(pki_copy, start_responder):
    responder = start_responder(pki_copy)
    request = ocsp_request_der(pki_copy, pki_copy.good, nonce=False)
    assert cert_status(responder, request) == "good"

    seen, failures, stop = [], [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                seen.append(cert_status(responder, request))
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _thread in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    pki_copy.intermediate.revoke(pki_copy.good, "superseded")
    revoked_at = time.monotonic()
    became_revoked = wait_for(lambda: cert_status(responder, request) == "revoked", timeout=3)
    elapsed = time.monotonic() - revoked_at
    time.sleep(0.3)
    stop.set()
    for thread in threads:
        thread.join()
    assert became_revoked and elapsed <= 2.0, elapsed
    assert failures == []
    assert set(seen) <= {"good", "revoked"} and seen[-1] == "revoked"
    result = openssl_ocsp(pki_copy, responder.url, pki_copy.good)
    assert "Response verify OK" in result.stdout + result.stderr
    assert f"{pki_copy.good.cert}: revoked" in result.stdout and "Reason: superseded" in result.stdout


def test_newly_issued_certificate_becomes_good(pki_copy, start_responder):
    responder = start_responder(pki_copy)
    leaf = pki_copy.intermediate.issue("late")
    request = ocsp_request_der(pki_copy, leaf, nonce=False)
    assert wait_for(lambda: cert_status(responder, request) == "good", timeout=2)


def test_corrupt_index_keeps_last_good_data_and_turns_health_red(pki_copy, start_responder):
    responder = start_responder(pki_copy)
    assert responder.health()[0] == 200
    assert 'ocsp_issuer_healthy{issuer="intermediate"} 1.0' in responder.metrics()
    index = pki_copy.intermediate.index
    good_content = index.read_bytes()
    index.write_bytes(good_content + b"R\tgarbage line without the right fields\n")
    status, report = wait_for(lambda: unhealthy(responder), timeout=3)
    assert status == 503 and "line 5" in report["issuers"]["intermediate"]["error"]
    assert report["issuers"]["intermediate"]["ok"] is False
    # Last good data still served.
    assert cert_status(responder, ocsp_request_der(pki_copy, pki_copy.revoked, nonce=False)) == "revoked"
    assert cert_status(responder, ocsp_request_der(pki_copy, pki_copy.good, nonce=False)) == "good"
    metrics = responder.metrics()
    assert 'ocsp_index_load_error{issuer="intermediate"} 1.0' in metrics
    assert 'ocsp_issuer_healthy{issuer="intermediate"} 0.0' in metrics
    assert re.search(r'ocsp_index_reloads_total\{issuer="intermediate",result="error"\} [1-9]', metrics)
    assert any(r.get("msg", "").startswith("index not loaded") for r in responder.log_records())

    index.write_bytes(good_content[: len(good_content) // 2])  # partially written file
    time.sleep(0.5)
    assert responder.health()[0] == 503
    index.write_bytes(good_content)
    assert wait_for(lambda: responder.health()[0] == 200, timeout=3)
    assert 'ocsp_issuer_healthy{issuer="intermediate"} 1.0' in responder.metrics()


def revoked_info(responder, request: bytes):
    """The RevokedInfo of the single answer (asn1crypto, from the bytes on the wire)."""
    body = responder.http("/", data=request, headers=OCSP_REQUEST)[2]
    single = ocsp.OCSPResponse.load(body)["response_bytes"]["response"].parsed["tbs_response_data"]["responses"][0]
    assert single["cert_status"].name == "revoked", single["cert_status"].name
    return single["cert_status"].chosen


def test_revocation_reason_absent_or_on_hold_as_openssl_ca_wrote_it(pki_copy, start_responder):
    """docs/responder.md, Status: a revocation without a reason has no revocationReason;
    ``holdInstruction`` (``openssl ca -crl_hold``) is answered certificateHold."""
    responder = start_responder(pki_copy)
    plain, held = pki_copy.good, pki_copy.leaves["other"]
    pki_copy.intermediate.ca("-revoke", str(plain.cert.resolve()))  # no -crl_reason
    pki_copy.intermediate.ca("-revoke", str(held.cert.resolve()), "-crl_hold", "holdInstructionReject")
    lines = {line.split("\t")[3]: line.split("\t")[2] for line in pki_copy.intermediate.index.read_text().splitlines()}
    assert re.fullmatch(r"\d{12}Z", lines[plain.serial]), lines[plain.serial]  # what openssl ca wrote
    assert lines[held.serial].endswith("Z,holdInstruction,holdInstructionReject"), lines[held.serial]
    requests = {leaf.serial: ocsp_request_der(pki_copy, leaf, nonce=False) for leaf in (plain, held)}
    assert wait_for(lambda: all(cert_status(responder, r) == "revoked" for r in requests.values()), timeout=3)

    # Pre-signed answers (no nonce), read from the DER.
    info = revoked_info(responder, requests[plain.serial])
    assert info.contents == info["revocation_time"].dump()  # RevokedInfo holds the time and nothing else
    assert revoked_info(responder, requests[held.serial])["revocation_reason"].native == "certificate_hold"
    # Answers signed for a nonce, read and verified by openssl.
    result = openssl_ocsp(pki_copy, responder.url, plain)
    assert "Response verify OK" in result.stdout + result.stderr
    assert f"{plain.cert}: revoked" in result.stdout and "Reason:" not in result.stdout, result.stdout
    result = openssl_ocsp(pki_copy, responder.url, held)
    assert "Response verify OK" in result.stdout + result.stderr
    assert f"{held.cert}: revoked" in result.stdout and "Reason: certificateHold" in result.stdout, result.stdout


def test_sighup_forces_reload(pki_copy, start_responder):
    responder = start_responder(pki_copy, reload_interval=60)
    request = ocsp_request_der(pki_copy, pki_copy.good, nonce=False)
    assert cert_status(responder, request) == "good"
    pki_copy.intermediate.revoke(pki_copy.good)
    time.sleep(0.5)
    assert cert_status(responder, request) == "good"  # not polled yet: only the signal reloads
    responder.signal(signal.SIGHUP)
    assert wait_for(lambda: cert_status(responder, request) == "revoked", timeout=2)
    assert responder.process.poll() is None


def test_sigterm_finishes_request_in_flight(pki, start_responder):
    responder = start_responder(pki)
    request = ocsp_request_der(pki, pki.good, nonce=False)
    with socket.create_connection((responder.host, responder.port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(request) + request[:10])
        time.sleep(0.2)
        responder.signal(signal.SIGTERM)
        time.sleep(0.3)
        # The listener is closed at once; the request in flight is still answered.
        with pytest.raises(OSError):
            socket.create_connection((responder.host, responder.port), timeout=2).close()
        sock.sendall(request[10:])
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"application/ocsp-response" in reply
    assert responder.process.wait(15) == 0
    assert any(r.get("msg") == "stopped" for r in responder.log_records())


def run_check_config(tmp_path, config: dict) -> subprocess.CompletedProcess:
    path = write_config(tmp_path, config)
    return subprocess.run(responder_command(path, "--check-config"), capture_output=True, text=True,
                          env=responder_env(), timeout=60, check=False)


def test_check_config_ok(pki, tmp_path):
    result = run_check_config(tmp_path, base_config(pki))
    assert result.returncode == 0 and "configuration OK" in result.stdout


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.pop("issuers"), "issuers: required"),
    (lambda c: c["issuers"][0].update(ca_cert="/nonexistent.pem"), "issuers[0].ca_cert: no such file"),
    (lambda c: c.update(listen=["localhost"]), "listen[0]: expected 'host:port'"),
    (lambda c: c.update(nonce_policy="sometimes"), "nonce_policy: must be one of echo, ignore"),
    (lambda c: c.update(response_validty="1h"), "response_validty: unknown key"),
    (lambda c: c.update(limits={"max_body_bytes": -1}), "limits.max_body_bytes: must be >= 64"),
    (lambda c: c["issuers"].append(dict(c["issuers"][0], name="again")),
     "the same CA (subject and key) as issuers[intermediate]"),
    (lambda c: c.update(listen=["127.0.0.1:2561", "127.0.0.1:2561"]), "listen[1]: 127.0.0.1:2561 is already used by listen[0]"),
    (lambda c: c.update(listen=["127.0.0.1:2561"], metrics={"listen": "127.0.0.1:2561"}),
     "metrics.listen: 127.0.0.1:2561 is already used by listen[0]"),
    (lambda c: c.update(workers=2), "listen[0]: port 0 (any free port) needs workers: 1"),
])
def test_check_config_names_the_key(pki, tmp_path, mutate, message):
    config = base_config(pki)
    mutate(config)
    result = run_check_config(tmp_path, config)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_asyncio_event_loop_serves_the_same(pki, start_responder):
    responder = start_responder(pki, event_loop="asyncio")
    assert [r["event_loop"] for r in responder.log_records() if r.get("msg") == "ready"] == ["asyncio"]
    assert cert_status(responder, ocsp_request_der(pki, pki.revoked, nonce=True)) == "revoked"
    assert cert_status(responder, ocsp_request_der(pki, pki.good, nonce=False)) == "good"


def test_uvloop_is_the_default(pki, start_responder):
    responder = start_responder(pki)
    assert [r["event_loop"] for r in responder.log_records() if r.get("msg") == "ready"] == ["uvloop"]


def test_uvloop_missing_is_a_clear_error(pki, tmp_path):
    # An importable "uvloop" that fails to import, ahead of the real one on the path.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "uvloop.py").write_text("raise ImportError('No module named uvloop')\n")
    env = responder_env()
    env["PYTHONPATH"] = f"{shadow}{os.pathsep}{env['PYTHONPATH']}"
    path = write_config(tmp_path, base_config(pki))
    for extra in (["--check-config"], []):
        result = subprocess.run(responder_command(path, *extra), capture_output=True, text=True, env=env,
                                timeout=60, check=False)
        assert result.returncode != 0
        assert "event_loop: uvloop is not installed" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_signer_without_ocsp_eku_refuses_to_start(pki_copy, tmp_path, start_responder):
    signer = pki_copy.intermediate.issue("no-eku-signer", extensions="ocsp_without_eku")
    config = base_config(pki_copy, issuers=[pki_copy.issuer_config(signer_cert=str(signer.cert),
                                                                   signer_key=str(signer.key))])
    result = run_check_config(tmp_path, config)
    assert result.returncode != 0 and "lacks the OCSPSigning extended key usage" in result.stderr
    responder = start_responder(pki_copy, config=config, wait=False)
    assert responder.process.wait(30) != 0
    assert "lacks the OCSPSigning extended key usage" in responder.logs()


@pytest.mark.parametrize("which,message", [
    ("foreign", "not issued by the CA"),
    ("mismatched_key", "the private key does not match the certificate"),
])
def test_unusable_signer_refuses_to_start(pki, tmp_path, which, message):
    if which == "foreign":
        issuer = pki.issuer_config(signer_cert=str(pki.leaves["stranger"].cert), signer_key=str(pki.leaves["stranger"].key))
    else:
        issuer = pki.issuer_config(signer_key=str(pki.good.key))
    result = run_check_config(tmp_path, base_config(pki, issuers=[issuer]))
    assert result.returncode != 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize("algorithm,signature", [("ec", "ecdsa-with-SHA256"), ("ed25519", "ED25519")])
def test_ecdsa_and_ed25519_signers(pki_copy, start_responder, algorithm, signature):
    signer = pki_copy.intermediate.issue(f"{algorithm}-signer", extensions="ocsp", algorithm=algorithm)
    responder = start_responder(pki_copy, issuers=[pki_copy.issuer_config(signer_cert=str(signer.cert),
                                                                          signer_key=str(signer.key))])
    for leaf, status in ((pki_copy.good, "good"), (pki_copy.revoked, "revoked")):
        result = openssl_ocsp(pki_copy, responder.url, leaf, extra=("-resp_text",))
        assert "Response verify OK" in result.stdout + result.stderr, result.stdout + result.stderr
        assert f"{leaf.cert}: {status}" in result.stdout
        assert f"Signature Algorithm: {signature}" in result.stdout


def test_encrypted_signer_key_with_passphrase_file(pki_copy, tmp_path, start_responder):
    passphrase = tmp_path / "signer.pass"
    passphrase.write_text("correct horse battery staple\n")
    passphrase.chmod(0o600)
    signer = pki_copy.intermediate.issue("encrypted-signer", extensions="ocsp", passphrase_file=passphrase)
    assert "ENCRYPTED" in signer.key.read_text()
    issuer = pki_copy.issuer_config(signer_cert=str(signer.cert), signer_key=str(signer.key),
                                    signer_key_passphrase_file=str(passphrase))
    responder = start_responder(pki_copy, issuers=[issuer])
    result = openssl_ocsp(pki_copy, responder.url, pki_copy.good)
    assert "Response verify OK" in result.stdout + result.stderr and f"{pki_copy.good.cert}: good" in result.stdout
    assert "correct horse" not in responder.logs()

    wrong = tmp_path / "wrong.pass"
    wrong.write_text("nope\n")
    result = run_check_config(tmp_path, base_config(pki_copy, issuers=[dict(issuer, signer_key_passphrase_file=str(wrong))]))
    assert result.returncode != 0 and "wrong passphrase" in result.stderr and "nope" not in result.stderr
    missing = dict(issuer)
    missing.pop("signer_key_passphrase_file")
    result = run_check_config(tmp_path, base_config(pki_copy, issuers=[missing]))
    assert result.returncode != 0 and "encrypted" in result.stderr


def test_ca_key_signs_and_responder_id_by_name(pki, start_responder):
    issuer = pki.issuer_config(signer_cert=None, signer_key=None, ca_key=str(pki.intermediate.key))
    responder = start_responder(pki, issuers=[issuer], responder_id="name")
    result = openssl_ocsp(pki, responder.url, pki.revoked, extra=("-resp_text",))
    assert "Response verify OK" in result.stdout + result.stderr
    assert f"{pki.revoked.cert}: revoked" in result.stdout
    assert "Responder Id: O = pkiops test, CN = pkiops Test Intermediate CA" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_worker_processes(pki_copy, start_responder):
    pki = pki_copy
    port = free_port()
    responder = start_responder(pki, listen=[f"127.0.0.1:{port}"], workers=2, reload_interval=60)
    assert wait_for(lambda: len([r for r in responder.log_records() if r.get("msg") == "ready"]) == 2, timeout=30)
    pids = {r["pid"] for r in responder.log_records() if r.get("msg") == "ready"}
    assert len(pids) == 2 and responder.process.pid not in pids
    request = ocsp_request_der(pki, pki.good, nonce=False)
    for _attempt in range(20):
        assert cert_status(responder, request) == "good"
    served_by = wait_for(lambda: {r["pid"] for r in responder.log_records() if r.get("msg") == "request"}, timeout=3)
    assert served_by and served_by <= pids
    # Counters are summed over the workers, whichever answers the scrape (a sibling's
    # counts arrive within metrics.PUBLISH_INTERVAL).
    summed = r'ocsp_requests_total\{method="POST",status="good"\} 20\.0'
    assert wait_for(lambda: re.search(summed, responder.metrics()), timeout=3), responder.metrics()
    # SIGHUP to the master reaches every worker: no answer stays "good" after it.
    pki.intermediate.revoke(pki.good)
    responder.signal(signal.SIGHUP)
    time.sleep(1.0)
    assert {cert_status(responder, request) for _attempt in range(20)} == {"revoked"}
    # ... and every worker puts a rotated signer in service.
    new_serial = put_in_place(renewed_signer(pki, new_key=True), pki.signer)
    responder.signal(signal.SIGHUP)
    time.sleep(1.0)
    served = {embedded_signer_serial(responder.http("/", data=request, headers=OCSP_REQUEST)[2])
              for _attempt in range(20)}
    assert served == {new_serial}
    responder.signal(signal.SIGTERM)
    assert responder.process.wait(20) == 0


def sighup_caught(pid: int) -> bool:
    """Whether the process has a handler for SIGHUP (SigCgt in /proc/PID/status)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            mask = next(line for line in status if line.startswith("SigCgt:")).split()[1]
    except FileNotFoundError:
        return False
    return bool(int(mask, 16) >> (signal.SIGHUP - 1) & 1)


def worker_pids(responder, workers: int) -> list:
    if workers == 1:
        return [responder.process.pid]
    return [int(pid) for pid in run(["pgrep", "-P", str(responder.process.pid)], check=False).stdout.split()]


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_while_starting_is_a_reload_once_ready(pki_copy, start_responder, workers):
    # systemd's ExecReload sends SIGHUP whenever asked, also right after the start.
    # A large index keeps every worker loading for a while.
    with open(pki_copy.intermediate.index, "a", encoding="ascii") as index:
        index.writelines(f"V\t271214154805Z\t\t{0x100000 + i:X}\tunknown\t/CN=x{i}\n" for i in range(500000))
    responder = start_responder(pki_copy, wait=False, workers=workers, listen=[f"127.0.0.1:{free_port()}"],
                                reload_interval=60)
    assert wait_for(lambda: (len(worker_pids(responder, workers)) == workers
                             and all(sighup_caught(pid) for pid in worker_pids(responder, workers))),
                    timeout=20, interval=0.002)
    assert not [r for r in responder.log_records() if r.get("msg") == "listening"], "SIGHUP caught only once serving"
    responder.signal(signal.SIGHUP)
    responder.wait_listening()

    def worker_lines():
        return [(r["pid"], r["msg"]) for r in responder.log_records() if r.get("msg", "").startswith(("ready", "SIGHUP"))]

    assert wait_for(lambda: len(worker_lines()) == 2 * workers, timeout=30), responder.logs()
    for pid in {pid for pid, _msg in worker_lines()}:
        assert [msg for other, msg in worker_lines() if other == pid] == ["ready", "SIGHUP: reloading signers and indexes"]
    assert responder.process.poll() is None and "worker exited" not in responder.logs()
    assert cert_status(responder, ocsp_request_der(pki_copy, pki_copy.revoked, nonce=False)) == "revoked"


def test_sigterm_while_a_worker_restarts_stops_the_service(pki, start_responder):
    responder = start_responder(pki, workers=2, listen=[f"127.0.0.1:{free_port()}"])
    started = time.monotonic()
    assert wait_for(lambda: len(worker_pids(responder, 2)) == 2, timeout=10)
    # The master forks with one thread only (a log-writer thread there took the signals it
    # blocks around fork, and Python 3.12 warns about forking with threads); workers have theirs.
    assert len(os.listdir(f"/proc/{responder.process.pid}/task")) == 1
    assert all(len(os.listdir(f"/proc/{pid}/task")) > 1 for pid in worker_pids(responder, 2))
    time.sleep(max(0.0, 5.5 - (time.monotonic() - started)))  # a worker dying younger stops the service
    os.kill(worker_pids(responder, 2)[0], signal.SIGKILL)
    time.sleep(0.3)  # the master pauses 1 s before starting a new worker
    responder.signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        assert responder.process.wait(5) == 0
        assert time.monotonic() - signalled < 2.0
    finally:
        for pid in worker_pids(responder, 2):  # a replacement nobody stops
            os.kill(pid, signal.SIGKILL)


def test_second_instance_on_the_same_port_refuses_to_start(pki, start_responder):
    # SO_REUSEPORT would let it bind, and the kernel would split the clients between both.
    port = free_port()
    first = start_responder(pki, workers=2, listen=[f"127.0.0.1:{port}"])
    second = start_responder(pki, wait=False, workers=2, listen=[f"127.0.0.1:{port}"])
    assert second.process.wait(30) == 1
    assert f"cannot start: listen[0] 127.0.0.1:{port}: address already in use" in second.logs()
    assert "listening" not in second.logs()
    assert first.process.poll() is None


@pytest.mark.parametrize("key", ["listen[1]", "metrics.listen"])
def test_bind_failure_names_the_key_and_address(pki, start_responder, key):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        listen = [f"127.0.0.1:{free_port()}"] + ([busy] if key == "listen[1]" else [])
        metrics = {"listen": busy} if key == "metrics.listen" else {}
        responder = start_responder(pki, wait=False, listen=listen, metrics=metrics)
        assert responder.process.wait(30) == 1
    errors = [r["msg"] for r in responder.log_records() if r.get("level") == "error"]
    assert errors == [f"cannot start: {key} {busy}: address already in use"], errors


def test_index_missing_at_start_then_pushed(pki_copy, start_responder):
    index = pki_copy.intermediate.index
    content = index.read_bytes()
    index.unlink()
    responder = start_responder(pki_copy)
    status, report = responder.health()
    assert status == 503 and "cannot stat" in report["issuers"]["intermediate"]["reason"]
    request = ocsp_request_der(pki_copy, pki_copy.revoked, nonce=False)
    body = responder.http("/", data=request, headers=OCSP_REQUEST)[2]
    assert ocsp.OCSPResponse.load(body)["response_status"].native == "try_later"
    index.write_bytes(content)
    assert wait_for(lambda: responder.health()[0] == 200, timeout=3)
    assert cert_status(responder, request) == "revoked"


def test_two_issuers_each_with_its_signer(pki, start_responder):
    root = {"name": "root", "ca_cert": str(pki.root.cert), "index": str(pki.root.index), "ca_key": str(pki.root.key)}
    responder = start_responder(pki, issuers=[root, pki.issuer_config()])
    intermediate_as_leaf = type(pki.good)("intermediate", pki.intermediate.cert, pki.intermediate.key, "")
    result = openssl_ocsp(pki, responder.url, intermediate_as_leaf, issuer_cert=pki.root.cert)
    assert "Response verify OK" in result.stdout + result.stderr
    assert f"{pki.intermediate.cert}: good" in result.stdout
    result = openssl_ocsp(pki, responder.url, pki.revoked)
    assert "Response verify OK" in result.stdout + result.stderr and f"{pki.revoked.cert}: revoked" in result.stdout
    health = responder.health()[1]
    assert set(health["issuers"]) == {"root", "intermediate"}


# --- SIGHUP signer rotation -------------------------------------------------------------

def renewed_signer(pki, new_key: bool, extensions: str = "ocsp") -> Leaf:
    """A new signer certificate from the intermediate: for the same key (a renewal) or a
    new one (a re-key), written next to the files in service."""
    if new_key:
        return pki.intermediate.issue(f"signer-{time.monotonic_ns()}", extensions=extensions)
    csr = pki.base / "renewed-signer.csr.pem"
    run(["openssl", "req", "-new", "-key", str(pki.signer.key), "-subj", "/CN=pkiops renewed OCSP signer",
         "-out", str(csr)])
    cert = pki.intermediate.sign_csr(csr, pki.base / "renewed-signer.cert.pem", extensions)
    return Leaf("renewed", cert, pki.signer.key, "")


def put_in_place(source: Leaf, target: Leaf) -> int:
    """What the role does on a rotation: replace the files the config names (by rename,
    key first). Returns the serial of the new certificate."""
    for new, old in ((source.key, target.key), (source.cert, target.cert)):
        if new != old:
            staged = old.with_name(old.name + ".new")
            shutil.copy(new, staged)
            staged.replace(old)
    return int(run(["openssl", "x509", "-in", str(target.cert), "-noout", "-serial"]).stdout.strip().split("=")[1], 16)


def served_signer(pki, responder, tmp_path, nonce: bool) -> int:
    """Serial of the certificate embedded in a response fetched by ``openssl ocsp``, after
    it verified that response (status good, signature, chain to the root)."""
    out = tmp_path / f"resp-{time.monotonic_ns()}.der"
    result = openssl_ocsp(pki, responder.url, pki.good, nonce=nonce, extra=("-respout", str(out)))
    assert "Response verify OK" in result.stdout + result.stderr, result.stdout + result.stderr
    assert f"{pki.good.cert}: good" in result.stdout
    return embedded_signer_serial(out.read_bytes())


@pytest.mark.parametrize("new_key", [False, True], ids=["same-key", "new-key"])
def test_sighup_puts_rotated_signer_in_service(pki_copy, start_responder, tmp_path, new_key):
    pki = pki_copy
    responder = start_responder(pki, reload_interval=60)
    old_serial = served_signer(pki, responder, tmp_path, nonce=False)
    request = ocsp_request_der(pki, pki.good, nonce=False)
    seen, failures, stop = [], [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                status, _headers, body = responder.http("/", data=request, headers=OCSP_REQUEST)
                assert status == 200 and ocsp.OCSPResponse.load(body)["response_status"].native == "successful"
                seen.append(embedded_signer_serial(body))
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                failures.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _thread in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        new_serial = put_in_place(renewed_signer(pki, new_key), pki.signer)
        assert new_serial != old_serial
        responder.signal(signal.SIGHUP)
        signalled = time.monotonic()
        # Cached (nonce-free) and live (nonce) answers both come from the new signer.
        assert wait_for(lambda: served_signer(pki, responder, tmp_path, nonce=False) == new_serial, timeout=3)
        assert time.monotonic() - signalled <= 2.0
        assert served_signer(pki, responder, tmp_path, nonce=True) == new_serial
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert seen and set(seen) <= {old_serial, new_serial} and seen[-1] == new_serial
    assert responder.health()[1]["issuers"]["intermediate"]["signer_serial"] == format(new_serial, "X")
    assert re.search(r'ocsp_signer_reloads_total\{issuer="intermediate",result="ok"\} 1\.0', responder.metrics())
    assert any(r.get("msg") == "signer replaced" for r in responder.log_records())


def test_sighup_rotates_encrypted_signer_and_passphrase(pki_copy, start_responder, tmp_path):
    pki = pki_copy
    passphrase = tmp_path / "signer.pass"
    passphrase.write_text("first passphrase\n")
    first = pki.intermediate.issue("encrypted-first", extensions="ocsp", passphrase_file=passphrase)
    issuer = pki.issuer_config(signer_cert=str(first.cert), signer_key=str(first.key),
                               signer_key_passphrase_file=str(passphrase))
    responder = start_responder(pki, issuers=[issuer], reload_interval=60)
    old_serial = served_signer(pki, responder, tmp_path, nonce=False)
    staged_passphrase = tmp_path / "second.pass"
    staged_passphrase.write_text("second passphrase\n")
    second = pki.intermediate.issue("encrypted-second", extensions="ocsp", passphrase_file=staged_passphrase)
    staged_passphrase.replace(passphrase)
    new_serial = put_in_place(second, first)
    assert new_serial != old_serial
    responder.signal(signal.SIGHUP)
    assert wait_for(lambda: served_signer(pki, responder, tmp_path, nonce=False) == new_serial, timeout=2)
    assert served_signer(pki, responder, tmp_path, nonce=True) == new_serial
    assert "first passphrase" not in responder.logs() and "second passphrase" not in responder.logs()
    # A key the passphrase file does not open: refused, the signer in service stays.
    passphrase.write_text("wrong\n")
    responder.signal(signal.SIGHUP)
    assert wait_for(lambda: "wrong passphrase" in str(signer_error(responder)), timeout=3)
    assert served_signer(pki, responder, tmp_path, nonce=True) == new_serial


def signer_error(responder):
    return responder.health()[1]["issuers"]["intermediate"]["signer_error"]


def test_sighup_with_broken_signer_keeps_the_old_one(pki_copy, start_responder, tmp_path):
    pki = pki_copy
    responder = start_responder(pki, reload_interval=60)
    old_serial = served_signer(pki, responder, tmp_path, nonce=False)
    backup = Leaf("backup", tmp_path / "signer.cert.pem", tmp_path / "signer.key.pem", "")
    put_in_place(pki.signer, backup)
    put_in_place(renewed_signer(pki, new_key=True, extensions="ocsp_without_eku"), pki.signer)
    responder.signal(signal.SIGHUP)
    status, report = wait_for(lambda: unhealthy(responder), timeout=3)
    issuer = report["issuers"]["intermediate"]
    assert status == 503 and "lacks the OCSPSigning extended key usage" in issuer["signer_error"], issuer
    assert "previous signer in service" in issuer["reason"]
    assert issuer["signer_serial"] == format(old_serial, "X")
    for nonce in (False, True):
        assert served_signer(pki, responder, tmp_path, nonce=nonce) == old_serial
    metrics = responder.metrics()
    assert 'ocsp_signer_load_error{issuer="intermediate"} 1.0' in metrics
    assert re.search(r'ocsp_signer_reloads_total\{issuer="intermediate",result="error"\} 1\.0', metrics)
    errors = [r for r in responder.log_records() if r.get("level") == "error"]
    assert any("lacks the OCSPSigning" in r.get("msg", "") for r in errors), errors
    assert "PRIVATE KEY" not in responder.logs()
    # A key that does not match the certificate is refused the same way.
    put_in_place(Leaf("mismatched", backup.cert, pki.good.key, ""), pki.signer)
    responder.signal(signal.SIGHUP)
    assert wait_for(lambda: "does not match" in str(signer_error(responder)), timeout=3)
    assert served_signer(pki, responder, tmp_path, nonce=True) == old_serial
    # The good files back in place: healthy again, same signer.
    put_in_place(backup, pki.signer)
    responder.signal(signal.SIGHUP)
    assert wait_for(lambda: responder.health()[0] == 200, timeout=3)
    assert signer_error(responder) is None


@pytest.mark.parametrize("payload", [
    b"GARBAGE \x00\x01 NOT HTTP\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(64)),  # a TLS ClientHello on the plain port
    b"GET /" + b"A" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",           # request line over the limit
], ids=["garbage", "tls-hello", "long-line"])
def test_unparseable_request_is_one_quiet_log_line(pki, start_responder, payload):
    responder = start_responder(pki)
    before = len(responder.logs().splitlines())
    with socket.create_connection((responder.host, responder.port), timeout=5) as sock:
        sock.sendall(payload)
        sock.settimeout(5)
        reply = read_until_closed(sock)
    assert reply == b"" or re.match(rb"HTTP/1\.[01] 4\d\d ", reply), reply[:100]
    assert cert_status(responder, ocsp_request_der(pki, pki.good, nonce=False)) == "good"  # still serving
    time.sleep(0.5)  # request lines are flushed every 0.2 s
    new_lines = responder.logs().splitlines()[before:]
    assert "Traceback" not in "\n".join(new_lines)
    records = [json.loads(line) for line in new_lines]  # every line is one JSON record
    about_it = [r for r in records if r.get("msg") != "request" or r.get("status") not in ("good",)]
    assert len(about_it) <= 1, about_it
    assert all(r["level"] in ("info", "warning") and "exc" not in r for r in about_it), about_it


@pytest.mark.parametrize("workers", [1, 2])
def test_tells_systemd_when_ready_and_when_stopping(pki, tmp_path, start_responder, monkeypatch, workers):
    """Type=notify: READY=1 once the indexes are loaded and the addresses listen (so
    `systemctl start` returns when it can answer), STOPPING=1 on SIGTERM."""
    notify = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(str(notify))
        systemd.settimeout(30)
        monkeypatch.setenv("NOTIFY_SOCKET", str(notify))
        responder = start_responder(pki, wait=False, workers=workers, listen=[f"127.0.0.1:{free_port()}"])
        assert systemd.recv(100) == b"READY=1"
        responder.wait_listening()
        assert cert_status(responder, ocsp_request_der(pki, pki.good, nonce=False)) == "good"
        if workers > 1:  # one worker ending is not the service stopping: only the master says so
            time.sleep(5.5)  # a worker ending sooner after its start stops the service
            worker = next(r["workers"] for r in responder.log_records() if r.get("msg") == "master started")[0]
            os.kill(worker, signal.SIGTERM)
            systemd.settimeout(3)
            with pytest.raises(socket.timeout):
                while True:
                    assert systemd.recv(100) == b"READY=1"  # from the worker that replaces it
            systemd.settimeout(30)
        responder.process.send_signal(signal.SIGTERM)
        assert systemd.recv(100) == b"STOPPING=1"
        assert responder.process.wait(15) == 0


def test_a_log_reader_that_stops_reading_does_not_stop_the_service(pki, tmp_path):
    """stderr is a pipe nobody reads (journald stalled): requests, health and SIGTERM
    are still served (the writes blocked the event loop after 64 KB of log)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config_path = write_config(tmp_path, base_config(pki, listen=[f"127.0.0.1:{port}"]))
    read_end, write_end = os.pipe()
    process = subprocess.Popen(responder_command(config_path), stdout=write_end, stderr=write_end,
                               env=responder_env(), cwd=tmp_path)
    os.close(write_end)
    try:
        request = ocsp_request_der(pki, pki.good, nonce=False, tmp=tmp_path)
        path = "/" + base64.b64encode(request).decode()
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                reply = connection.getresponse()
                if reply.read() and reply.status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.1)
        for number in range(4000):  # some 1.4 MB of request lines: far beyond a pipe's 64 KB
            connection.request("GET", path)
            reply = connection.getresponse()
            assert reply.status == 200 and reply.read(), number
        connection.request("GET", "/healthz")
        reply = connection.getresponse()
        assert reply.status == 200 and reply.read()
        connection.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.set_blocking(read_end, False)
        output = b""
        try:
            while chunk := os.read(read_end, 1 << 20):
                output += chunk
        except BlockingIOError:
            pass
        os.close(read_end)
    assert b'"msg":"ready"' in output


def test_workers_end_when_the_master_is_killed(pki, start_responder):
    """Without systemd's cgroup nobody else would stop them: a worker left behind would go on
    serving old files on the port, beside the next instance. They get SIGTERM, a graceful stop."""
    responder = start_responder(pki, workers=2, listen=[f"127.0.0.1:{free_port()}"])
    assert wait_for(lambda: len([r for r in responder.log_records() if r.get("msg") == "ready"]) == 2, timeout=10)
    workers = worker_pids(responder, 2)
    # Process handles, not bare pids: a pid freed by an ended worker may be reused meanwhile.
    handles = [os.pidfd_open(pid) for pid in workers]
    try:
        responder.process.kill()
        responder.process.wait(5)
        assert wait_for(lambda: all(select.select([handle], [], [], 0)[0] for handle in handles), timeout=5)
        assert wait_for(lambda: sorted(r["pid"] for r in responder.log_records() if r.get("msg") == "stopped")
                        == sorted(workers), timeout=3), responder.logs()
    finally:
        for handle in handles:
            if not select.select([handle], [], [], 0)[0]:
                signal.pidfd_send_signal(handle, signal.SIGKILL)
            os.close(handle)


def test_replacement_worker_that_cannot_start_leaves_the_others_serving(pki_copy, start_responder, tmp_path):
    """A worker restarted after a crash loads the files on disk; signer files that a SIGHUP
    refused make its start fail. The workers still up keep serving with the signer in
    service (the whole service used to stop), and the start is tried again until it works."""
    pki = pki_copy
    responder = start_responder(pki, workers=2, listen=[f"127.0.0.1:{free_port()}"], reload_interval=60)
    started = time.monotonic()
    assert wait_for(lambda: len(worker_pids(responder, 2)) == 2, timeout=10)
    backup = Leaf("backup", tmp_path / "signer.cert.pem", tmp_path / "signer.key.pem", "")
    put_in_place(pki.signer, backup)
    put_in_place(renewed_signer(pki, new_key=True, extensions="ocsp_without_eku"), pki.signer)
    responder.signal(signal.SIGHUP)
    assert wait_for(lambda: len([r for r in responder.log_records() if "signer not reloaded" in r.get("msg", "")]) == 2,
                    timeout=5), responder.logs()
    time.sleep(max(0.0, 5.5 - (time.monotonic() - started)))  # a first-generation worker dying younger stops all
    os.kill(worker_pids(responder, 2)[0], signal.SIGKILL)
    assert wait_for(lambda: "a replacement worker could not start" in responder.logs(), timeout=10), responder.logs()
    assert responder.process.poll() is None
    # The replacement's own refusal, not the SIGHUP's that the workers logged before.
    assert [r for r in responder.log_records() if r.get("msg", "").startswith("cannot start:")
            and "lacks the OCSPSigning" in r["msg"]], responder.logs()
    request = ocsp_request_der(pki, pki.good, nonce=False)
    assert {cert_status(responder, request) for _attempt in range(10)} == {"good"}
    put_in_place(backup, pki.signer)
    # Tried again 5 s after the failed start: the good files are back, so it starts.
    assert wait_for(lambda: len([r for r in responder.log_records() if r.get("msg") == "ready"]) == 3, timeout=15), \
        responder.logs()
    assert len(worker_pids(responder, 2)) == 2 and responder.process.poll() is None
    responder.signal(signal.SIGTERM)
    assert responder.process.wait(20) == 0
