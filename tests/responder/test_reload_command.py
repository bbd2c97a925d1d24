"""``--reload MAINPID`` (the unit's ExecReload): returns once every worker has reloaded,
and fails naming what the files on disk could not put in service."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ocsp_responder.__main__ import WORKER_START_SECONDS

try:
    from .conftest import Leaf, ocsp_request_der, responder_env
    from .test_operations import (OCSP_REQUEST, cert_status, embedded_signer_serial, free_port, put_in_place,
                                  renewed_signer, wait_for)
except ImportError:  # tests/responder is not a package: pytest put this directory on sys.path
    from conftest import Leaf, ocsp_request_der, responder_env
    from test_operations import (OCSP_REQUEST, cert_status, embedded_signer_serial, free_port, put_in_place,
                                 renewed_signer, wait_for)


@pytest.fixture
def runtime_directory(tmp_path, monkeypatch):
    directory = tmp_path / "run"
    directory.mkdir()
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(directory))
    return directory


def reload_command(main_pid: int, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ocsp_responder", "--reload", str(main_pid), *extra],
                          env=responder_env(), capture_output=True, text=True, timeout=90, check=False)


def ready_pids(responder, count: int) -> set:
    return wait_for(lambda: {r["pid"] for r in responder.log_records() if r.get("msg") == "ready"}
                    if len([r for r in responder.log_records() if r.get("msg") == "ready"]) >= count else None,
                    timeout=30)


def served_signers(responder, request: bytes, times: int = 20) -> set:
    return {embedded_signer_serial(responder.http("/", data=request, headers=OCSP_REQUEST)[2]) for _attempt in range(times)}


def test_reload_returns_when_every_worker_serves_the_new_files(pki_copy, start_responder, runtime_directory, tmp_path):
    pki = pki_copy
    responder = start_responder(pki, workers=2, reload_interval=60, listen=[f"127.0.0.1:{free_port()}"])
    workers = ready_pids(responder, 2)
    assert {int(name) for name in os.listdir(runtime_directory / "reloads")} == workers
    request = ocsp_request_der(pki, pki.good, nonce=False)

    new_serial = put_in_place(renewed_signer(pki, new_key=True), pki.signer)
    backup = Leaf("backup", tmp_path / "signer.cert.pem", tmp_path / "signer.key.pem", "")
    put_in_place(pki.signer, backup)
    pki.intermediate.revoke(pki.good)
    result = reload_command(responder.process.pid)
    assert result.returncode == 0, result.stderr
    assert "reloaded (2 worker(s))" in result.stdout
    # No waiting after the command: whichever worker answers has both the index and the signer.
    assert served_signers(responder, request) == {new_serial}
    assert {cert_status(responder, request) for _attempt in range(20)} == {"revoked"}

    # A signer the start-up checks refuse: the command fails and says why; the one in service stays.
    put_in_place(renewed_signer(pki, new_key=True, extensions="ocsp_without_eku"), pki.signer)
    result = reload_command(responder.process.pid)
    assert result.returncode == 1
    assert "not in service: " in result.stderr and "lacks the OCSPSigning extended key usage" in result.stderr
    assert result.stderr.count("lacks the OCSPSigning") == 1, "one line per problem, not per worker"
    assert served_signers(responder, request) == {new_serial}

    # A corrupt index fails it too, naming the issuer's index (its last good data stays in service).
    index = pki.intermediate.index
    good_content = index.read_bytes()
    index.write_bytes(good_content + b"R\tgarbage line without the right fields\n")
    result = reload_command(responder.process.pid)
    assert result.returncode == 1, result.stderr
    assert "not in service: issuers[intermediate].index: " in result.stderr and "line " in result.stderr
    assert {cert_status(responder, request) for _attempt in range(20)} == {"revoked"}
    index.write_bytes(good_content)
    put_in_place(backup, pki.signer)
    result = reload_command(responder.process.pid)
    assert result.returncode == 0, result.stderr

    responder.signal(signal.SIGTERM)
    assert responder.process.wait(20) == 0
    assert os.listdir(runtime_directory / "reloads") == [], "records of stopped workers removed"


def test_reload_names_a_worker_that_does_not_finish(pki, start_responder, runtime_directory):
    responder = start_responder(pki, workers=2, reload_interval=60, listen=[f"127.0.0.1:{free_port()}"])
    stuck = min(ready_pids(responder, 2))
    os.kill(stuck, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = reload_command(responder.process.pid, "--reload-timeout", "1")
        assert time.monotonic() - started < 10
    finally:
        os.kill(stuck, signal.SIGCONT)
    assert result.returncode == 1
    assert f"no reload finished within 1 s in worker(s) {stuck}" in result.stderr, result.stderr
    # Once it runs again it reloads (the SIGHUP was waiting for it) and the next command passes.
    result = reload_command(responder.process.pid)
    assert result.returncode == 0, result.stderr


def test_reload_of_a_single_process_and_a_killed_worker(pki_copy, start_responder, runtime_directory):
    pki = pki_copy
    single = start_responder(pki, reload_interval=60)
    assert os.listdir(runtime_directory / "reloads") == [str(single.process.pid)]
    result = reload_command(single.process.pid)
    assert result.returncode == 0 and "reloaded (1 worker(s))" in result.stdout, result.stderr
    assert single.stop() == 0
    assert os.listdir(runtime_directory / "reloads") == []

    pooled = start_responder(pki, workers=2, reload_interval=60, listen=[f"127.0.0.1:{free_port()}"])
    killed = min(ready_pids(pooled, 2))
    time.sleep(WORKER_START_SECONDS + 0.5)  # a worker dying younger is a failed start: the service stops
    os.kill(killed, signal.SIGKILL)
    assert wait_for(lambda: str(killed) not in os.listdir(runtime_directory / "reloads"), timeout=5), \
        "the master removes the record of a worker that could not"
    result = reload_command(pooled.process.pid)
    assert result.returncode == 0 and "reloaded (" in result.stdout, result.stderr
    assert pooled.process.poll() is None


def test_a_record_that_cannot_be_written_is_not_waited_for(pki, start_responder, runtime_directory):
    """A failed save must not leave a frozen record behind, which every later --reload would
    wait for until its timeout; once saving works again the worker is waited for again."""
    responder = start_responder(pki, reload_interval=60)
    pid = responder.process.pid
    blocker = runtime_directory / "reloads" / f"{pid}.tmp"
    blocker.mkdir()  # open() of the temporary file fails: IsADirectoryError
    responder.signal(signal.SIGHUP)
    assert wait_for(lambda: not (runtime_directory / "reloads" / str(pid)).exists(), timeout=5)
    assert any(r.get("msg", "").startswith("cannot write the reload record") for r in responder.log_records())
    result = reload_command(pid, "--reload-timeout", "3")
    assert result.returncode == 0 and "no worker was serving yet" in result.stdout, result.stderr
    blocker.rmdir()
    responder.signal(signal.SIGHUP)
    assert wait_for((runtime_directory / "reloads" / str(pid)).exists, timeout=5)
    result = reload_command(pid)
    assert result.returncode == 0 and "reloaded (1 worker(s))" in result.stdout, result.stderr


def test_reload_signals_only_a_responder(runtime_directory):
    for pid, message in ((0, "0 is not a process id"), (-1, "-1 is not a process id"), (1, "1 is not a process id")):
        result = reload_command(pid)
        assert result.returncode == 1 and message in result.stderr, result.stderr
    other = subprocess.Popen(["sleep", "30"])
    try:
        result = reload_command(other.pid)
        assert result.returncode == 1 and f"process {other.pid} is not an OCSP responder (sleep 30" in result.stderr
        assert other.poll() is None, "the other process got no SIGHUP"
    finally:
        other.kill()
        other.wait()


def test_reload_usage_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    result = reload_command(os.getpid())
    assert result.returncode == 1 and "RUNTIME_DIRECTORY is not set" in result.stderr
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    result = reload_command(gone.pid)
    assert result.returncode == 1 and f"no process {gone.pid}" in result.stderr
