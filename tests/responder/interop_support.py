"""Independent OCSP clients, driven as subprocesses against a running responder.

Each runner returns a ``ClientResult`` whose ``status`` is read from the client's own
output (``good``/``revoked``/``unknown``), never from its exit code alone: several of
these tools exit 0 after a failed verification. A runner raises ``ClientError`` with the
client's full output when the client did not accept the response.

``RecordingProxy`` sits between the clients and the responder and keeps the raw bytes
in both directions, so a test can prove which HTTP method a client really used and what
the responder answered (nonce echo), without trusting the responder's own account.
"""
from __future__ import annotations

import base64
import datetime
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:  # benchmarks/run.py imports this module with only tests/responder on sys.path
    sys.path.insert(0, str(ROOT))

from tests.helpers.openssl_conf import ca_conf  # noqa: E402

JAVA_SOURCE = HERE / "java" / "OcspCheck.java"
CLIENT_TIMEOUT = 60


class ClientError(AssertionError):
    """The client rejected the response or the exchange failed; carries its output."""


@dataclass
class ClientResult:
    status: str
    reason: Optional[str] = None
    output: str = ""


def run(cmd, *, timeout=CLIENT_TIMEOUT, env=None, cwd=None, input=None) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in cmd], capture_output=True, text=input is None or isinstance(input, str),
                          timeout=timeout, env=env, cwd=cwd, input=input, check=False)


def openssl(*args, cwd=None) -> str:
    proc = run(["openssl", *args], cwd=cwd)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------- PKI

@dataclass
class Pki:
    """Root -> intermediate (an ``openssl ca`` directory) -> delegated signer and leaves."""

    base: Path
    root_cert: Path
    ca_dir: Path
    ca_cert: Path
    ca_key: Path
    index: Path
    signer_cert: Path
    signer_key: Path
    leaves: dict = field(default_factory=dict)
    signer_key_passphrase_file: Optional[Path] = None

    @property
    def chain_pem(self) -> Path:
        """Root and intermediate in one file, for clients that want every CA at once."""
        path = self.base / "chain.pem"
        if not path.exists():
            path.write_text(self.ca_cert.read_text() + self.root_cert.read_text())
        return path


def _new_key_args(key_type: str) -> list:
    if key_type in ("rsa2048", "rsa3072"):
        return ["-newkey", f"rsa:{key_type[3:]}"]
    if key_type == "ec":
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    if key_type == "ed25519":
        return ["-newkey", "ed25519"]
    raise ValueError(f"unknown key type {key_type}")


def issue_unlisted(pki: "Pki", name: str, ocsp_url: str, serial: int = 0x7777,
                   ca_passphrase: Optional[str] = None) -> Path:
    """A leaf the CA key signed outside its database (`openssl x509 -req`, as a
    compromised or careless CA might): the responder cannot know its serial."""
    ext = pki.base / f"{name}-ext.cnf"
    ext.write_text("basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\n"
                   f"extendedKeyUsage=serverAuth\nauthorityInfoAccess=OCSP;URI:{ocsp_url}\n")
    key, csr, cert = pki.base / f"{name}.key", pki.base / f"{name}.csr", pki.base / f"{name}.crt"
    openssl("req", "-new", *_new_key_args("ec"), "-nodes", "-keyout", key, "-out", csr,
            "-subj", f"/O=pkiops interop/CN={name}.interop.test")
    passin = ["-passin", "stdin"] if ca_passphrase else []
    proc = run(["openssl", "x509", "-req", "-in", csr, "-CA", pki.ca_cert, "-CAkey", pki.ca_key, *passin,
                "-set_serial", hex(serial), "-days", "30", "-extfile", ext, "-out", cert],
               input=(ca_passphrase + "\n") if ca_passphrase else None)
    if proc.returncode != 0:
        raise RuntimeError(f"signing {name} outside the database failed:\n{proc.stderr}")
    pki.leaves[name] = cert
    return cert


def build_openssl_pki(base: Path, ocsp_url: str, *, ca_key_type="ec", signer_key_type="ec",
                      leaves=("good", "revoked"), revoke=("revoked",)) -> Pki:
    """A PKI made only by the openssl CLI, the way the OpenSSL CA guide makes one.

    Leaves carry ``ocsp_url`` in their AIA (clients without a URL option use it)."""
    base.mkdir(parents=True, exist_ok=True)
    root_key, root_cert = base / "root.key", base / "root.crt"
    openssl("req", "-x509", *_new_key_args(ca_key_type), "-nodes", "-keyout", root_key, "-out", root_cert,
            "-days", "3650", "-subj", "/O=pkiops interop/CN=Interop Root CA",
            "-addext", "basicConstraints=critical,CA:true",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    ca_dir = base / "intermediate"
    for sub in ("newcerts", "private", "certs"):
        (ca_dir / sub).mkdir(parents=True, exist_ok=True)
    (ca_dir / "index.txt").write_text("")
    (ca_dir / "serial").write_text("1000\n")
    cnf = ca_dir / "openssl.cnf"
    cnf.write_text(ca_conf(ca_dir, default_days=365, certificate="ca.crt", private_key="private/ca.key",
                           policy="policy_any", policy_fields=("commonName",),
                           extensions=("leaf_ext", "ocsp_ext"), ocsp_url=ocsp_url))
    ca_key, ca_cert, ca_csr = ca_dir / "private" / "ca.key", ca_dir / "ca.crt", base / "ca.csr"
    openssl("req", "-new", *_new_key_args(ca_key_type), "-nodes", "-keyout", ca_key, "-out", ca_csr,
            "-subj", "/O=pkiops interop/CN=Interop Issuing CA")
    ext = base / "ca_ext.cnf"
    ext.write_text("basicConstraints=critical,CA:true,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    openssl("x509", "-req", "-in", ca_csr, "-CA", root_cert, "-CAkey", root_key, "-CAcreateserial",
            "-days", "1825", "-extfile", ext, "-out", ca_cert)
    os.chmod(ca_key, 0o600)

    def issue(name: str, extensions: str, key_type: str) -> tuple:
        key, csr, cert = ca_dir / "private" / f"{name}.key", base / f"{name}.csr", ca_dir / "certs" / f"{name}.crt"
        openssl("req", "-new", *_new_key_args(key_type), "-nodes", "-keyout", key, "-out", csr,
                "-subj", f"/O=pkiops interop/CN={name}.interop.test")
        openssl("ca", "-batch", "-config", cnf, "-extensions", extensions, "-notext",
                "-in", csr, "-out", cert)
        os.chmod(key, 0o600)
        return cert, key

    signer_cert, signer_key = issue("ocsp-signer", "ocsp_ext", signer_key_type)
    pki = Pki(base, root_cert, ca_dir, ca_cert, ca_key, ca_dir / "index.txt", signer_cert, signer_key)
    for name in leaves:
        pki.leaves[name] = issue(name, "leaf_ext", "ec")[0]
    for name in revoke:
        openssl("ca", "-config", cnf, "-revoke", pki.leaves[name], "-crl_reason", "keyCompromise")
    issue_unlisted(pki, "unknown", ocsp_url)
    return pki


def build_module_pki(base: Path, ocsp_url: str) -> Pki:
    """The same shape made by this collection's modules (ca_cert, ocsp_signer, ca_revoke)
    through ansible-playbook; every key passphrase-protected, as in the OpenSSL guide."""
    from tests.helpers.ansible_run import run_playbook

    base.mkdir(parents=True, exist_ok=True)
    root, inter = base / "root", base / "intermediate"
    secrets = {"root": "interop-root-pass", "inter": "interop-inter-pass", "signer": "interop-signer-pass"}
    ecc = {"privatekey_type": "ECC", "privatekey_curve": "secp256r1"}
    issuer = {"issuer_dir": str(inter), "issuer_passphrase": secrets["inter"]}

    def leaf(name):
        return {"name": name, "pkiops.ocsp.ca_cert": {
            "profile": "server", **issuer, **ecc, "ocsp_url": [ocsp_url],
            "privatekey_path": str(base / f"{name}.key.pem"), "path": str(base / f"{name}.cert.pem"),
            "subject": {"O": "pkiops interop", "CN": f"{name}.interop.test"},
            "subject_alt_name": [f"DNS:{name}.interop.test"]}}

    run = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "root", "pkiops.ocsp.ca_cert": {
            "profile": "root_ca", "ca_dir": str(root), **ecc, "privatekey_passphrase": secrets["root"],
            "subject": {"O": "pkiops interop", "CN": "Interop Module Root CA"}}},
        {"name": "intermediate", "pkiops.ocsp.ca_cert": {
            "profile": "intermediate_ca", "ca_dir": str(inter), "issuer_dir": str(root),
            "issuer_passphrase": secrets["root"], **ecc, "privatekey_passphrase": secrets["inter"],
            "subject": {"O": "pkiops interop", "CN": "Interop Module Issuing CA"}}},
        {"name": "signer", "pkiops.ocsp.ocsp_signer": {
            **issuer, **ecc, "privatekey_path": str(base / "ocsp-signer.key.pem"),
            "privatekey_passphrase": secrets["signer"], "path": str(base / "ocsp-signer.cert.pem"),
            "subject": {"O": "pkiops interop", "CN": "ocsp-signer.interop.test"}}},
        leaf("good"), leaf("revoked"),
        {"name": "revoke", "pkiops.ocsp.ca_revoke": {
            "issuer_dir": str(inter), "path": str(base / "revoked.cert.pem"), "reason": "keyCompromise"}},
    ]}])
    if run.rc != 0:
        raise RuntimeError(f"building the PKI with the modules failed:\n{run.output}")
    passphrase_file = base / "ocsp-signer.pass"
    passphrase_file.write_text(secrets["signer"] + "\n")
    os.chmod(passphrase_file, 0o600)
    pki = Pki(base, root / "certs" / "ca.cert.pem", inter, inter / "certs" / "ca.cert.pem",
              inter / "private" / "ca.key.pem", inter / "index.txt", base / "ocsp-signer.cert.pem",
              base / "ocsp-signer.key.pem", {name: base / f"{name}.cert.pem" for name in ("good", "revoked")},
              passphrase_file)
    issue_unlisted(pki, "unknown", ocsp_url, ca_passphrase=secrets["inter"])
    return pki


# --------------------------------------------------------------------------- proxy

def check_signed_response(response, signer_cert: Path) -> None:
    """What a relying party must check in a successful response, checked here without
    trusting the client that received it (some accept more than they should): signed with
    the key of the configured ``signer_cert`` over tbsResponseData, that certificate (and
    no other) embedded, produced and valid now. ``response``: cryptography's OCSPResponse.
    No clock skew is allowed: the responder under test (ours, and `openssl ocsp` as the
    reference) dates thisUpdate at or before the moment it signs, and this runs later."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
    from cryptography.hazmat.primitives.serialization import Encoding

    signer = x509.load_pem_x509_certificate(signer_cert.read_bytes())
    key = signer.public_key()
    signature, signed = response.signature, response.tbs_response_bytes
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), response.signature_hash_algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(response.signature_hash_algorithm))
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(signature, signed)
        else:
            raise ClientError(f"unexpected signer key type {type(key).__name__}")
    except InvalidSignature:
        raise ClientError(f"the response signature does not verify with the key of {signer_cert}") from None
    embedded = [cert.public_bytes(Encoding.DER) for cert in response.certificates]
    if embedded != [signer.public_bytes(Encoding.DER)]:
        raise ClientError(f"embedded certificates {[c.subject.rfc4514_string() for c in response.certificates]} "
                          f"are not the configured signer {signer.subject.rfc4514_string()} alone")
    now = datetime.datetime.now(datetime.timezone.utc)
    if response.produced_at_utc > now:
        raise ClientError(f"producedAt {response.produced_at_utc} is after now ({now})")
    for single in response.responses:
        if not single.this_update_utc <= now:
            raise ClientError(f"thisUpdate {single.this_update_utc} is after now ({now})")
        if single.next_update_utc is None or not now < single.next_update_utc:
            raise ClientError(f"nextUpdate {single.next_update_utc} is not after now ({now})")


@dataclass
class Exchange:
    method: str
    target: str
    headers: dict
    body: bytes
    status: Optional[int]
    response_headers: dict
    response_body: bytes

    def request_der(self, prefix: str = "/") -> bytes:
        """The OCSP request: the POST body, or the GET path decoded (RFC 9919 §5)."""
        if self.method == "POST":
            return self.body
        encoded = urllib.parse.unquote(self.target[len(prefix):].lstrip("/"))
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4))


def split_http(stream: bytes) -> list:
    """(start line, lower-cased headers, body) of each Content-Length framed message."""
    messages = []
    while stream:
        head, sep, rest = stream.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _colon, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        messages.append((lines[0], headers, rest[:length]))
        stream = rest[length:]
    return messages


class RecordingProxy:
    """Loopback TCP pass-through that records both directions of every connection."""

    def __init__(self, upstream_port: Optional[int] = None):
        self.upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections: list = []  # [client_bytes, server_bytes] per connection
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def url(self, prefix: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{prefix}"

    def _accept_loop(self):
        while not self._closed:
            try:
                client = self._listener.accept()[0]
            except OSError:
                return
            record = [bytearray(), bytearray()]
            with self._lock:
                self.connections.append(record)
            threading.Thread(target=self._serve, args=(client, record), daemon=True).start()

    def _serve(self, client: socket.socket, record: list):
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=CLIENT_TIMEOUT)
        except OSError:
            client.close()
            return
        done = threading.Event()

        def pump(src, dst, buffer):
            try:
                while True:
                    chunk = src.recv(65536)
                    if not chunk:
                        break
                    buffer += chunk
                    dst.sendall(chunk)
            except OSError:
                pass
            finally:
                for sock in (src, dst):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                done.set()

        threading.Thread(target=pump, args=(upstream, client, record[1]), daemon=True).start()
        pump(client, upstream, record[0])
        done.wait(5)
        client.close()
        upstream.close()

    def clear(self):
        with self._lock:
            self.connections.clear()

    def exchanges(self) -> list:
        """Every HTTP request/response pair clients made since the last clear()."""
        with self._lock:
            streams = [(bytes(conn[0]), bytes(conn[1])) for conn in self.connections]
        found = []
        for sent, received in streams:
            requests, responses = split_http(sent), split_http(received)
            for index, (line, headers, body) in enumerate(requests):
                method, _space, rest = line.partition(" ")
                target = rest.rsplit(" ", 1)[0]
                status, resp_headers, resp_body = None, {}, b""
                if index < len(responses):
                    status_line, resp_headers, resp_body = responses[index]
                    status = int(status_line.split()[1])
                found.append(Exchange(method, target, headers, body, status, resp_headers, resp_body))
        return found

    def close(self):
        self._closed = True
        self._listener.close()


# --------------------------------------------------------------------------- stand-in responder

class OpensslResponder:
    """`openssl ocsp` as a responder: the reference the harness is checked against, and
    the baseline of the benchmarks."""

    def __init__(self, pki: Pki, port: int, log: Path, *, multi: int = 0, nmin: int = 60,
                 index: Optional[Path] = None, preexec_fn=None):
        cmd = ["openssl", "ocsp", "-index", index or pki.index, "-port", str(port), "-rsigner", pki.signer_cert,
               "-rkey", pki.signer_key, "-CA", pki.ca_cert, "-nmin", str(nmin), "-ignore_err"]
        if pki.signer_key_passphrase_file:
            cmd += ["-passin", f"file:{pki.signer_key_passphrase_file}"]
        if multi:
            cmd += ["-multi", str(multi)]
        self.port = port
        self.log = log
        with open(log, "wb") as out:
            # Its own process group (to stop -multi children with it), but not a new
            # session: with -multi, openssl calls setpgid(), which a session leader may not.
            self.proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT,
                                         process_group=0, preexec_fn=preexec_fn)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0):
        # Not by connecting: an empty probe connection stalls `openssl ocsp` until it times out.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"openssl ocsp exited with {self.proc.returncode}: {self.log.read_text()}")
            if b"ACCEPT " in self.log.read_bytes():  # bound and listening (-multi logs nothing more)
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("openssl ocsp did not start listening")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


# --------------------------------------------------------------------------- clients

HASH_OPTION = {"sha1": "-sha1", "sha256": "-sha256", "sha384": "-sha384", "sha512": "-sha512"}


def _fail(client: str, proc, why: str):
    raise ClientError(f"{client}: {why}\n--- exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")


def _openssl_status(proc, leaf: Path, client: str, tolerate: str = "") -> ClientResult:
    """Status from `openssl ocsp` output, which exits 0 even after some failed checks."""
    text = proc.stdout + proc.stderr
    if proc.returncode != 0 or "Response verify OK" not in proc.stderr:
        _fail(client, proc, "response not verified")
    if tolerate:
        text = text.replace(tolerate, "")
    if "WARNING" in text or "error" in text.lower():
        _fail(client, proc, "verification warning (nonce or validity times)")
    match = re.search(rf"^{re.escape(str(leaf))}: (good|revoked|unknown)$", proc.stdout, re.M)
    if not match:
        _fail(client, proc, "no status line")
    reason = re.search(r"^\s*Reason: (\S+)", proc.stdout, re.M)
    return ClientResult(match.group(1), reason.group(1) if reason else None, text)


def openssl_post(pki: Pki, leaf: str, url: str, *, hash_alg="sha1", nonce=True, echo_expected=True) -> ClientResult:
    """`echo_expected=False`: a nonce-less answer to a nonce request is accepted with
    openssl's own "WARNING: no nonce in response" (and nothing else)."""
    cert = pki.leaves[leaf]
    proc = run(["openssl", "ocsp", "-issuer", pki.ca_cert, HASH_OPTION[hash_alg], "-cert", cert, "-url", url,
                "-CAfile", pki.root_cert, "-verify_other", pki.ca_cert, "-nonce" if nonce else "-no_nonce",
                "-timeout", "20"])
    tolerate = "" if echo_expected else "WARNING: no nonce in response"
    if tolerate and tolerate not in proc.stderr:
        _fail("openssl ocsp (POST)", proc, "expected openssl to notice the missing nonce")
    return _openssl_status(proc, cert, "openssl ocsp (POST)", tolerate)


def _urlopen_any_status(request) -> tuple:
    """(status, headers, body), also for a 4xx/5xx answer."""
    try:
        with urllib.request.urlopen(request, timeout=20) as reply:
            return reply.status, reply.headers, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def http_get_ocsp(url: str, der_request: bytes) -> tuple:
    """GET {url}{percent-encoded base64}, as RFC 9919 §5 describes; (status, headers, body)."""
    target = url.rstrip("/") + "/" + urllib.parse.quote(base64.b64encode(der_request).decode(), safe="")
    return _urlopen_any_status(target)


def http_post_ocsp(url: str, der_request: bytes) -> tuple:
    request = urllib.request.Request(url, data=der_request, headers={"Content-Type": "application/ocsp-request"})
    return _urlopen_any_status(request)


def fetch_saved(pki: Pki, leaf: str, url: str, workdir: Path, *, method="GET", hash_alg="sha1", nonce=False
                ) -> tuple:
    """(request file, response file): the request made by `openssl ocsp -reqout`, sent by
    urllib (GET: openssl's, ocsptool's and pyhanko's own clients only POST; POST: ocsptool's
    own asks with SHA-1 only). The nonce echo is compared here: a client verifying a saved
    response has no request to compare it with."""
    from cryptography.x509 import ocsp as x509_ocsp, OCSPNonce

    req_file, resp_file = workdir / f"{leaf}-{hash_alg}-req.der", workdir / f"{leaf}-{hash_alg}-resp.der"
    openssl("ocsp", "-issuer", pki.ca_cert, HASH_OPTION[hash_alg], "-cert", pki.leaves[leaf], "-reqout", req_file,
            "-nonce" if nonce else "-no_nonce")
    if method == "GET":
        status, headers, body = http_get_ocsp(url, req_file.read_bytes())
    else:
        status, headers, body = http_post_ocsp(url, req_file.read_bytes())
    if status != 200 or headers.get("Content-Type") != "application/ocsp-response":
        raise ClientError(f"GET answered {status} {headers.get('Content-Type')!r}")
    resp_file.write_bytes(body)
    if nonce:
        sent = x509_ocsp.load_der_ocsp_request(req_file.read_bytes()).extensions.get_extension_for_class(OCSPNonce)
        echoed = [e for e in x509_ocsp.load_der_ocsp_response(body).extensions if e.oid == sent.oid]
        if not echoed or echoed[0].value.nonce != sent.value.nonce:
            raise ClientError("GET response does not echo the request nonce")
    return req_file, resp_file


def openssl_get(pki: Pki, leaf: str, url: str, workdir: Path, *, hash_alg="sha1", nonce=False) -> ClientResult:
    """The response fetched by GET (fetch_saved) verified by `openssl ocsp -respin`."""
    _req_file, resp_file = fetch_saved(pki, leaf, url, workdir, hash_alg=hash_alg, nonce=nonce)
    return openssl_respin(pki, leaf, resp_file, hash_alg=hash_alg, client="openssl ocsp (GET)")


def openssl_respin(pki: Pki, leaf: str, resp_file: Path, *, hash_alg="sha1", client="openssl ocsp -respin"
                   ) -> ClientResult:
    """A saved response verified by `openssl ocsp -respin` (signer chained to the root,
    the answer for ``leaf`` read from it)."""
    cert = pki.leaves[leaf]
    proc = run(["openssl", "ocsp", "-respin", resp_file, "-issuer", pki.ca_cert, HASH_OPTION[hash_alg],
                "-cert", cert, "-CAfile", pki.root_cert, "-verify_other", pki.ca_cert, "-no_nonce"])
    return _openssl_status(proc, cert, client)


def gnutls_ocsptool_verify(pki: Pki, leaf: str, req_file: Path, resp_file: Path) -> ClientResult:
    """GnuTLS ocsptool on a saved response (any CertID hash, any transport): the signature
    checked with the issuing CA as the trust anchor of its delegated signer, as --ask does."""
    proc = run(["ocsptool", "--verify-response", "--load-response", resp_file, "--load-request", req_file,
                "--load-trust", pki.ca_cert, "--load-issuer", pki.ca_cert, "--load-cert", pki.leaves[leaf]])
    result = _ocsptool_status(proc)
    # ocsptool verifies the signature but does not match the answer to --load-cert: the
    # serial it printed must be the leaf's.
    from cryptography import x509

    serials = re.findall(r"^\s*Serial Number: ([0-9a-fA-F]+)$", proc.stdout, re.M)
    expected = x509.load_pem_x509_certificate(pki.leaves[leaf].read_bytes()).serial_number
    if [int(serial, 16) for serial in serials] != [expected]:
        _fail("ocsptool", proc, f"the response answers for serial(s) {serials}, not {leaf}'s {expected:X}")
    return result


def gnutls_ocsptool(pki: Pki, leaf: str, url: str, *, nonce=True) -> ClientResult:
    """GnuTLS ocsptool: POST, SHA-1 CertID, verifies the delegated signer against the issuer."""
    proc = run(["ocsptool", f"--ask={url}", "--load-cert", pki.leaves[leaf], "--load-issuer", pki.ca_cert,
                "--nonce" if nonce else "--no-nonce"])
    if nonce and not re.search(r"^\s*Nonce: [0-9a-f]+$", proc.stdout, re.M):
        _fail("ocsptool", proc, "nonce requested but none in the response")
    return _ocsptool_status(proc)


def _ocsptool_status(proc) -> ClientResult:
    if proc.returncode != 0 or "Response Status: Successful" not in proc.stdout:
        _fail("ocsptool", proc, "no successful response")
    if "Verifying OCSP Response: Success." not in proc.stdout:
        _fail("ocsptool", proc, "response not verified")
    match = re.search(r"Certificate Status: (good|revoked|unknown)", proc.stdout)
    if not match:
        _fail("ocsptool", proc, "no certificate status")
    return ClientResult(match.group(1), None, proc.stdout + proc.stderr)


def make_nss_db(pki: Pki, dbdir: Path) -> str:
    """A temporary NSS database trusting the root; returns the `sql:` location."""
    dbdir.mkdir(parents=True, exist_ok=True)
    db = f"sql:{dbdir}"
    for cmd in (["certutil", "-N", "-d", db, "--empty-password"],
                ["certutil", "-A", "-d", db, "-n", "interop-root", "-t", "CT,C,C", "-a", "-i", pki.root_cert],
                ["certutil", "-A", "-d", db, "-n", "interop-ca", "-t", ",,", "-a", "-i", pki.ca_cert],
                ["certutil", "-A", "-d", db, "-n", "interop-ocsp-signer", "-t", ",,", "-a", "-i", pki.signer_cert]):
        proc = run(cmd)
        if proc.returncode != 0:
            _fail("certutil", proc, "NSS database set-up failed")
    return db


# SEC_ERROR_REVOKED_CERTIFICATE. NSS libpkix reports an OCSP "unknown" with this code too,
# and names the root rather than the leaf ("CERT 2. interop-root ... ERROR -8180"), so a
# vfychain verdict alone cannot tell revoked from unknown nor which certificate it is about:
# the tests also check what was served (check_signed_response) and have `openssl ocsp
# -respin` read the served answer (openssl_respin).
NSS_ERRORS = {"-8180": "revoked"}


def nss_vfychain(pki: Pki, leaf: str, db: str) -> ClientResult:
    """NSS libpkix path validation, OCSP required for the leaf (URL from the AIA, GET)."""
    proc = run(["vfychain", "-d", db, "-pp", "-u", "1", "-g", "leaf", "-h", "requireFreshInfo", "-m", "ocsp",
                "-s", "failIfNoInfo", "-a", pki.leaves[leaf], "-a", pki.ca_cert])
    output = proc.stdout + proc.stderr
    if proc.returncode == 0 and "Chain is good!" in output:
        return ClientResult("good", None, output)
    codes = re.findall(r"ERROR (-\d+):", output)
    if "Chain is bad!" in output and len(set(codes)) == 1 and codes[0] in NSS_ERRORS:
        return ClientResult(NSS_ERRORS[codes[0]], None, output)
    _fail("vfychain", proc, "neither a good chain nor a revocation error")


def nss_ocspclnt(pki: Pki, leaf: str, url: str, db: str) -> ClientResult:
    """NSS ocspclnt -S: status of one certificate from a given responder, signer pinned."""
    cert = pki.leaves[leaf]
    proc = run(["ocspclnt", "-d", db, "-S", cert, "-a", "-l", url, "-t", "interop-ocsp-signer"])
    if re.search(rf'Check of certificate "{re.escape(str(cert))}" succeeded\.', proc.stdout):
        return ClientResult("good", None, proc.stdout)
    if re.search(r"failed\.\s+Reason:\s+Peer's Certificate has been revoked\.", proc.stdout):
        return ClientResult("revoked", None, proc.stdout)
    if re.search(r"failed\.\s+Reason:\s+The OCSP server has no status for the certificate\.", proc.stdout):
        return ClientResult("unknown", None, proc.stdout)
    _fail("ocspclnt", proc, "unexpected output")


def compile_java(outdir: Path) -> Path:
    outdir.mkdir(parents=True, exist_ok=True)
    proc = run(["javac", "-d", outdir, JAVA_SOURCE], timeout=120)
    if proc.returncode != 0:
        _fail("javac", proc, "compilation failed")
    return outdir


def java_pkix(pki: Pki, leaf: str, url: Optional[str], classes: Path, *, nonce_bytes=0, padding_bytes=0
              ) -> ClientResult:
    """Java 17 CertPathValidator + PKIXRevocationChecker (OCSP only, leaf only)."""
    proc = run(["java", "-cp", classes, "OcspCheck", pki.root_cert, pki.ca_cert, pki.leaves[leaf],
                url or "aia", str(nonce_bytes), str(padding_bytes)])
    match = re.fullmatch(r"STATUS (good|revoked|unknown)(?: (\w+))?\n", proc.stdout)
    if proc.returncode != 0 or not match:
        _fail("java", proc, "validation failed")
    return ClientResult(match.group(1), match.group(2), proc.stdout)


def pyhanko_validate(pki: Pki, leaf: str, *, hash_alg="sha1", nonce=True, fetched_response: Optional[bytes] = None
                     ) -> ClientResult:
    """pyhanko-certvalidator, hard-fail revocation mode; OCSP URL from the AIA; POST.
    With ``fetched_response`` (a response fetched by GET: pyhanko's fetcher only POSTs) it
    fetches nothing and validates with that response only."""
    import asyncio

    import aiohttp
    from asn1crypto import pem, x509
    from pyhanko_certvalidator import CertificateValidator, ValidationContext
    from pyhanko_certvalidator.errors import RevokedError
    from pyhanko_certvalidator.fetchers import Fetchers
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers.cert_fetch_client import AIOHttpCertificateFetcher
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers.crl_client import AIOHttpCRLFetcher
    from pyhanko_certvalidator.fetchers.aiohttp_fetchers.ocsp_client import AIOHttpOCSPFetcher

    def load(path: Path):
        der = pem.unarmor(path.read_bytes())[2]
        return x509.Certificate.load(der)

    async def validate() -> ClientResult:
        async with aiohttp.ClientSession() as session:
            fetchers = Fetchers(
                ocsp_fetcher=AIOHttpOCSPFetcher(session, certid_hash_algo=hash_alg, request_nonces=nonce),
                crl_fetcher=AIOHttpCRLFetcher(session), cert_fetcher=AIOHttpCertificateFetcher(session))
            context = ValidationContext(trust_roots=[load(pki.root_cert)], other_certs=[load(pki.ca_cert)],
                                        allow_fetching=fetched_response is None, revocation_mode="hard-fail",
                                        fetchers=fetchers, ocsps=[fetched_response] if fetched_response else [])
            validator = CertificateValidator(load(pki.leaves[leaf]), validation_context=context)
            try:
                await validator.async_validate_usage(set())
            except RevokedError as exc:
                return ClientResult("revoked", exc.reason.native, str(exc))
            if len(context.ocsps) != 1:
                raise ClientError(f"pyhanko: expected one OCSP response used, got {len(context.ocsps)}")
            return ClientResult("good", None, "")

    return asyncio.run(validate())
