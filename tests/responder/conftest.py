"""Fixtures for tests that run the responder as a real process against real clients.

The PKI is made with the openssl CLI (an independent party): a root CA and an
intermediate CA, each a directory operated by ``openssl ca`` (openssl.cnf with
``dir = .``, so a copied directory works from its new place), a delegated OCSP signer
with the OCSPSigning EKU and id-pkix-ocsp-nocheck, a few leaf certificates, one revoked.

Reuse from other test files:
- ``pki`` (session): the shared, never-modified PKI. Use ``pki_copy`` to revoke/issue.
- ``pki_copy``: a private copy of the PKI in tmp_path.
- ``start_responder(pki, **config_overrides)`` -> RunningResponder (stopped at teardown).
- ``openssl_ocsp(...)`` helper and ``ocsp_request_der(...)`` to build requests.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

from tests.helpers.openssl_conf import ca_conf

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = ROOT / "roles" / "ocsp_responder" / "files"

# `openssl ca` runs from inside the directory (dir = .), so a copied CA works where it lands.
CA_CONF = ca_conf(".", default_days=375, ocsp_url="http://127.0.0.1:2560/",
                  extensions=("v3_ca", "v3_intermediate_ca", "server_cert", "ocsp", "ocsp_without_eku"))

KEY_ALGORITHMS = {
    "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    "ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "ed25519": ["-algorithm", "ED25519"],
}


def run(cmd: List[str], cwd: Optional[Path] = None, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def genkey(path: Path, algorithm: str = "rsa", passphrase_file: Optional[Path] = None) -> Path:
    cmd = ["openssl", "genpkey", *KEY_ALGORITHMS[algorithm], "-out", str(path)]
    if passphrase_file is not None:
        cmd += ["-aes-256-cbc", "-pass", f"file:{passphrase_file}"]
    run(cmd)
    os.chmod(path, 0o600)
    return path


@dataclass
class Leaf:
    name: str
    cert: Path
    key: Path
    serial: str  # upper-case hex, as in index.txt


@dataclass
class CaDir:
    """A directory operated by ``openssl ca -config openssl.cnf`` from inside it."""

    path: Path
    name: str

    @property
    def cert(self) -> Path:
        return self.path / "certs" / "ca.cert.pem"

    @property
    def key(self) -> Path:
        return self.path / "private" / "ca.key.pem"

    @property
    def index(self) -> Path:
        return self.path / "index.txt"

    def ca(self, *args: str) -> subprocess.CompletedProcess:
        return run(["openssl", "ca", "-config", "openssl.cnf", "-batch", "-notext", *args], cwd=self.path)

    @classmethod
    def create(cls, path: Path, name: str) -> "CaDir":
        for sub in ("certs", "newcerts", "private", "csr"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        (path / "openssl.cnf").write_text(CA_CONF)
        (path / "index.txt").write_text("")
        (path / "index.txt.attr").write_text("unique_subject = no\n")
        (path / "serial").write_text("1000\n")
        return cls(path, name)

    def sign_csr(self, csr: Path, out: Path, extensions: str, days: int = 375) -> Path:
        self.ca("-extensions", extensions, "-days", str(days), "-in", str(csr.resolve()), "-out", str(out.resolve()))
        return out

    def issue(self, name: str, extensions: str = "server_cert", algorithm: str = "rsa",
              passphrase_file: Optional[Path] = None, days: int = 375) -> Leaf:
        key = genkey(self.path / "private" / f"{name}.key.pem", algorithm, passphrase_file)
        csr = self.path / "csr" / f"{name}.csr.pem"
        cmd = ["openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={name}", "-out", str(csr)]
        if passphrase_file is not None:
            cmd += ["-passin", f"file:{passphrase_file}"]
        run(cmd)
        cert = self.sign_csr(csr, self.path / "certs" / f"{name}.cert.pem", extensions, days)
        serial = run(["openssl", "x509", "-in", str(cert), "-noout", "-serial"]).stdout.strip().split("=")[1]
        return Leaf(name, cert, key, serial.upper())

    def revoke(self, leaf: Leaf, reason: str = "keyCompromise") -> None:
        self.ca("-revoke", str(leaf.cert.resolve()), "-crl_reason", reason)


@dataclass
class Pki:
    base: Path
    root: CaDir
    intermediate: CaDir
    signer: Leaf                       # delegated, OCSPSigning EKU + nocheck, RSA
    leaves: Dict[str, Leaf] = field(default_factory=dict)
    other_ca: Optional[CaDir] = None   # a CA the responder does not serve

    @property
    def good(self) -> Leaf:
        return self.leaves["good"]

    @property
    def revoked(self) -> Leaf:
        return self.leaves["revoked"]

    def chain_file(self) -> Path:
        """Trust anchors for clients: root + intermediate."""
        path = self.base / "ca-chain.cert.pem"
        if not path.exists():
            path.write_text(self.intermediate.cert.read_text() + self.root.cert.read_text())
        return path

    def copy_to(self, target: Path) -> "Pki":
        shutil.copytree(self.base, target, symlinks=True)

        def moved(p: Path) -> Path:
            return target / p.relative_to(self.base)

        def moved_leaf(leaf: Leaf) -> Leaf:
            return Leaf(leaf.name, moved(leaf.cert), moved(leaf.key), leaf.serial)

        return Pki(target, CaDir(moved(self.root.path), "root"), CaDir(moved(self.intermediate.path), "intermediate"),
                   moved_leaf(self.signer), {k: moved_leaf(v) for k, v in self.leaves.items()},
                   CaDir(moved(self.other_ca.path), "other") if self.other_ca else None)

    def issuer_config(self, **overrides) -> dict:
        entry = {
            "name": "intermediate",
            "ca_cert": str(self.intermediate.cert),
            "index": str(self.intermediate.index),
            "signer_cert": str(self.signer.cert),
            "signer_key": str(self.signer.key),
        }
        entry.update(overrides)
        return {k: v for k, v in entry.items() if v is not None}


def make_root(path: Path, name: str) -> CaDir:
    ca = CaDir.create(path, name)
    genkey(ca.key)
    run(["openssl", "req", "-config", "openssl.cnf", "-new", "-x509", "-key", "private/ca.key.pem",
         "-subj", f"/O=pkiops test/CN={name}", "-days", "3650", "-sha256", "-extensions", "v3_ca",
         "-out", "certs/ca.cert.pem"], cwd=ca.path)
    return ca


def build_pki(base: Path) -> Pki:
    base.mkdir(parents=True, exist_ok=True)
    root = make_root(base / "root", "pkiops Test Root CA")
    intermediate = CaDir.create(base / "intermediate", "intermediate")
    genkey(intermediate.key)
    csr = intermediate.path / "csr" / "ca.csr.pem"
    run(["openssl", "req", "-new", "-key", str(intermediate.key), "-subj", "/O=pkiops test/CN=pkiops Test Intermediate CA",
         "-out", str(csr)])
    root.sign_csr(csr, intermediate.cert, "v3_intermediate_ca", days=1825)
    signer = intermediate.issue("ocsp-signer", extensions="ocsp")
    pki = Pki(base, root, intermediate, signer)
    for name in ("good", "revoked", "other"):
        pki.leaves[name] = intermediate.issue(name)
    intermediate.revoke(pki.revoked, "keyCompromise")
    pki.other_ca = make_root(base / "other-ca", "Unrelated CA")
    pki.leaves["stranger"] = pki.other_ca.issue("stranger")
    return pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def pki_copy(pki, tmp_path) -> Pki:
    return pki.copy_to(tmp_path / "pki")


# --- the responder as a process ---------------------------------------------------------

class RunningResponder:
    def __init__(self, process: subprocess.Popen, config_path: Path, log_path: Path, config: dict):
        self.process = process
        self.config_path = config_path
        self.log_path = log_path
        self.config = config
        self.port: Optional[int] = None
        self.host = "127.0.0.1"

    @property
    def url(self) -> str:
        prefix = self.config.get("path_prefix", "/").rstrip("/")
        return f"{self.base()}{prefix}/"

    def base(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def logs(self) -> str:
        return self.log_path.read_text()

    def log_records(self) -> List[dict]:
        records = []
        for line in self.logs().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
        return records

    def wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for record in self.log_records():
                if record.get("msg") == "listening" and self.port is None:
                    host, port = record["address"].rsplit(":", 1)
                    self.port = int(port)
                    self.host = host.strip("[]")
                if record.get("msg") == "ready" and self.port is not None:
                    return
            if self.process.poll() is not None:
                raise AssertionError(f"responder exited with {self.process.returncode}:\n{self.logs()}")
            time.sleep(0.05)
        raise AssertionError(f"responder not ready after {timeout}s:\n{self.logs()}")

    def http(self, path: str, data: Optional[bytes] = None, headers: Optional[dict] = None,
             method: Optional[str] = None, timeout: float = 10.0):
        """(status, headers, body) without raising on 4xx/5xx."""
        request = urllib.request.Request(self.base() + path, data=data, headers=headers or {}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def health(self):
        status, _headers, body = self.http(self.config.get("health_path", "/healthz"))
        return status, json.loads(body)

    def metrics(self) -> str:
        return self.http(self.config.get("metrics", {}).get("path", "/metrics"))[2].decode()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def responder_command(config_path: Path, *extra: str) -> List[str]:
    return [sys.executable, "-m", "ocsp_responder", "--config", str(config_path), *extra]


def responder_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PACKAGE_DIR) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def write_config(directory: Path, config: dict) -> Path:
    path = directory / f"responder-{time.monotonic_ns()}.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def base_config(pki: Pki, **overrides) -> dict:
    config = {
        "listen": ["127.0.0.1:0"],
        "issuers": [pki.issuer_config()],
        "reload_interval": 0.2,
        "log": {"level": "info", "format": "json"},
    }
    config.update(overrides)
    return config


def launch_responder(directory: Path, config: dict, wait: bool = True) -> RunningResponder:
    """Write ``config`` to ``directory`` and start the responder on it (port 0 -> the
    port it logs). The caller stops it (``RunningResponder.stop``)."""
    path = write_config(directory, config)
    log_path = directory / f"{path.stem}.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(responder_command(path), stdout=log_file, stderr=subprocess.STDOUT,
                                   env=responder_env(), cwd=directory)
    responder = RunningResponder(process, path, log_path, config)
    if wait:
        try:
            responder.wait_listening()
        except BaseException:
            responder.stop()
            raise
    return responder


@pytest.fixture
def start_responder(tmp_path):
    """start_responder(pki, wait=True, config=None, **config_overrides) -> RunningResponder;
    every one is stopped at teardown (SIGTERM, then SIGKILL after 15 s)."""
    started: List[RunningResponder] = []

    def start(pki: Pki, wait: bool = True, config: Optional[dict] = None, **overrides) -> RunningResponder:
        config = config if config is not None else base_config(pki, **overrides)
        responder = launch_responder(tmp_path, config, wait=False)
        started.append(responder)
        if wait:
            responder.wait_listening()
        return responder

    yield start
    for responder in started:
        responder.stop()


def der_tlv(tag: int, content: bytes) -> bytes:
    """DER tag-length-value, written here rather than taken from the package under test."""
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(body))) + body + content


# --- clients ---------------------------------------------------------------------------

def ocsp_request_der(pki_or_issuer, *leaves: Leaf, digest: str = "sha1", nonce: bool = True,
                     issuer_cert: Optional[Path] = None, tmp: Optional[Path] = None) -> bytes:
    """A request built by ``openssl ocsp -reqout`` (the independent encoder)."""
    issuer_cert = issuer_cert or pki_or_issuer.intermediate.cert
    out = (tmp or Path(pki_or_issuer.base)) / f"req-{time.monotonic_ns()}.der"
    cmd = ["openssl", "ocsp", "-issuer", str(issuer_cert), f"-{digest}"]
    for leaf in leaves:
        cmd += ["-cert", str(leaf.cert)]
    cmd += ["-reqout", str(out)] + ([] if nonce else ["-no_nonce"])
    run(cmd)
    return out.read_bytes()


def openssl_ocsp(pki: Pki, url: str, *leaves: Leaf, digest: str = "sha1", nonce: bool = True,
                 extra: tuple = (), issuer_cert: Optional[Path] = None) -> subprocess.CompletedProcess:
    """``openssl ocsp`` against ``url``; returns the completed process (check stdout)."""
    cmd = ["openssl", "ocsp", "-url", url, "-issuer", str(issuer_cert or pki.intermediate.cert),
           "-CAfile", str(pki.chain_file()), f"-{digest}", "-timeout", "10"]
    for leaf in leaves:
        cmd += ["-cert", str(leaf.cert)]
    if not nonce:
        cmd.append("-no_nonce")
    cmd += list(extra)
    return run(cmd, check=False)


def verify_response(pki: Pki, response_der: bytes, *leaves: Leaf, tmp: Path, digest: str = "sha1",
                    extra: tuple = ()) -> subprocess.CompletedProcess:
    """``openssl ocsp -respin`` verification of a response we fetched ourselves."""
    path = tmp / f"resp-{time.monotonic_ns()}.der"
    path.write_bytes(response_der)
    cmd = ["openssl", "ocsp", "-respin", str(path), "-CAfile", str(pki.chain_file()),
           "-issuer", str(pki.intermediate.cert), f"-{digest}"]
    for leaf in leaves:
        cmd += ["-cert", str(leaf.cert)]
    return run(cmd + list(extra), check=False)
