"""The responder against independent OCSP clients (issue 3, Proof).

Every client runs as the real program (or library) and its own verdict is read from its
output: openssl ocsp, GnuTLS ocsptool, NSS vfychain and ocspclnt, Java 17 PKIX with a
PKIXRevocationChecker, pyhanko-certvalidator. A recording proxy in front of the responder
shows what each client really sent (GET or POST, hash algorithm, nonce) and what it got,
so each test also proves the transport variant it claims to cover.

Coverage (as far as each client supports it):
  client            method     CertID hash     nonce
  openssl ocsp      POST       SHA-1, SHA-256  with, without
  openssl (req/verify) + GET   SHA-1, SHA-256  with, without
  ocsptool          POST       SHA-1           with, without
  (openssl req) + ocsptool verify
                    GET, POST  SHA-1 (GET), SHA-256  with, without
  vfychain          GET (AIA)  SHA-1           without (NSS sends none)
  ocspclnt          GET        SHA-1           without
  Java 17 PKIX      GET, POST  SHA-1           without (GET; POST with a padding
                                                extension), 16 octets (GET), 128 octets (POST)
  pyhanko           POST (AIA) SHA-1, SHA-256  with, without
  (openssl req) + GET + pyhanko
                    GET        SHA-1, SHA-256  with, without
each for a `good` and a `revoked` leaf, once on a CA made by `openssl ca` and once on one
made by this collection's modules. Then with ``nonce_policy: ignore``: which clients
accept a cached, nonce-less answer to a nonce request.
"""
from __future__ import annotations

import os
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509 import ocsp

try:  # a package or a plain test directory, depending on tests/responder/__init__.py
    from . import interop_support as clients
except ImportError:
    import interop_support as clients

RecordingProxy, build_openssl_pki = clients.RecordingProxy, clients.build_openssl_pki
try:
    from .conftest import launch_responder
except ImportError:
    from conftest import launch_responder

LEAVES = ("good", "revoked")
EXPECTED_REASON = {"openssl": "keyCompromise", "java": "KEY_COMPROMISE", "pyhanko": "key_compromise"}
HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256}


def require(*tools):
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run scripts/system-deps.sh clients")


@pytest.fixture(scope="module")
def proxy():
    proxy = RecordingProxy()
    yield proxy
    proxy.close()


@pytest.fixture(scope="module", params=["openssl-ca", pytest.param("modules", marks=pytest.mark.slow)])
def pki(request, tmp_path_factory, proxy, interop_prefix):
    """The issuing CA as `openssl ca` leaves it, and as this collection's modules leave it."""
    base = tmp_path_factory.mktemp(f"interop-pki-{request.param}")
    if request.param == "modules":
        return clients.build_module_pki(base, proxy.url(interop_prefix))
    return build_openssl_pki(base, proxy.url(interop_prefix))


@pytest.fixture(scope="module")
def url(proxy, pki, interop_responder, interop_prefix):
    """The responder's URL as clients see it (through the proxy), once it is up."""
    proxy.upstream_port = interop_responder(pki)
    return proxy.url(interop_prefix)


# PKIOPS_INTEROP_TARGET=openssl runs the same clients against `openssl ocsp`: the check
# that the harness itself judges correctly (and the reference when a client disagrees).
TARGET = os.environ.get("PKIOPS_INTEROP_TARGET", "pkiops")


@pytest.fixture(scope="module")
def interop_prefix():
    # Ours under a path prefix, as behind a shared web front; openssl ocsp serves "/" only.
    return "/" if TARGET == "openssl" else "/ocsp/"


@pytest.fixture(scope="module")
def interop_responder(tmp_path_factory, interop_prefix):
    """start(pki) -> the port of a responder serving ``pki``'s issuing CA."""
    started = []

    def start(pki):
        workdir = tmp_path_factory.mktemp("responder")
        if TARGET == "openssl":
            responder = clients.OpensslResponder(pki, clients.free_port(), workdir / "log")
            started.append(responder)
            return responder.port
        issuer = {"name": "interop", "ca_cert": str(pki.ca_cert), "index": str(pki.index),
                  "signer_cert": str(pki.signer_cert), "signer_key": str(pki.signer_key)}
        if pki.signer_key_passphrase_file:
            issuer["signer_key_passphrase_file"] = str(pki.signer_key_passphrase_file)
        responder = launch_responder(workdir, {"listen": ["127.0.0.1:0"], "issuers": [issuer],
                                               "path_prefix": interop_prefix.rstrip("/")})
        started.append(responder)
        return responder.port

    yield start
    for responder in started:
        responder.stop()


@pytest.fixture
def exchange(proxy, pki, url, interop_prefix):
    """The single OCSP exchange a test's client made, checked against the request, its
    response verified here too (signature, signer, times: check_signed_response)."""
    proxy.clear()

    def single(method: str, hash_alg: str = "sha1", nonce=None, echo=True, status=None):
        exchanges = proxy.exchanges()
        assert len(exchanges) == 1, [(e.method, e.target, e.status) for e in exchanges]
        ex = exchanges[0]
        assert ex.method == method
        assert ex.status == 200
        assert ex.response_headers.get("content-type") == "application/ocsp-response"
        request = ocsp.load_der_ocsp_request(ex.request_der(interop_prefix))
        response = ocsp.load_der_ocsp_response(ex.response_body)
        assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        clients.check_signed_response(response, pki.signer_cert)
        assert isinstance(request.hash_algorithm, HASHES[hash_alg])
        assert isinstance(response.hash_algorithm, HASHES[hash_alg]), "CertID hash not echoed"
        assert (response.issuer_name_hash, response.issuer_key_hash, response.serial_number) == (
            request.issuer_name_hash, request.issuer_key_hash, request.serial_number), "CertID not echoed"
        if status is not None:  # what was served, whatever the client makes of it
            assert response.certificate_status.name.lower() == status
        sent = _nonce(request.extensions)
        echoed = _nonce(response.extensions)
        if nonce is not None:
            assert (sent is not None) == nonce, "the client did not send what the test claims"
        if sent is not None and echo:
            assert echoed == sent, "the nonce was not echoed"
        if not echo:
            assert echoed is None, "nonce_policy ignore, yet the nonce was echoed"
        return ex, request, response

    return single


def _nonce(extensions):
    try:
        return extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
    except x509.ExtensionNotFound:
        return None


def _check(result, leaf, client=None):
    assert result.status == leaf, result.output
    if leaf == "revoked" and client in EXPECTED_REASON:
        assert result.reason == EXPECTED_REASON[client], result.output


@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no-nonce"])
@pytest.mark.parametrize("hash_alg", ["sha1", "sha256"])
@pytest.mark.parametrize("leaf", LEAVES)
def test_openssl_post(pki, url, exchange, leaf, hash_alg, nonce):
    require("openssl")
    result = clients.openssl_post(pki, leaf, url, hash_alg=hash_alg, nonce=nonce)
    _check(result, leaf, "openssl")
    exchange("POST", hash_alg, nonce, status=leaf)


@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no-nonce"])
@pytest.mark.parametrize("hash_alg", ["sha1", "sha256"])
@pytest.mark.parametrize("leaf", LEAVES)
def test_openssl_get(pki, url, exchange, tmp_path, leaf, hash_alg, nonce):
    require("openssl")
    result = clients.openssl_get(pki, leaf, url, tmp_path, hash_alg=hash_alg, nonce=nonce)
    _check(result, leaf, "openssl")
    exchange("GET", hash_alg, nonce, status=leaf)


@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no-nonce"])
@pytest.mark.parametrize("leaf", LEAVES)
def test_gnutls_ocsptool(pki, url, exchange, leaf, nonce):
    require("ocsptool")
    _check(clients.gnutls_ocsptool(pki, leaf, url, nonce=nonce), leaf)
    exchange("POST", "sha1", nonce, status=leaf)


@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no-nonce"])
@pytest.mark.parametrize("method, hash_alg", [("GET", "sha1"), ("GET", "sha256"), ("POST", "sha256")])
@pytest.mark.parametrize("leaf", LEAVES)
def test_gnutls_ocsptool_saved_response(pki, url, exchange, tmp_path, leaf, method, hash_alg, nonce):
    """The cells ``ocsptool --ask`` cannot reach (it POSTs SHA-1 CertIDs): a response
    fetched for an openssl-made request, verified and read by ocsptool."""
    require("ocsptool", "openssl")
    req_file, resp_file = clients.fetch_saved(pki, leaf, url, tmp_path, method=method, hash_alg=hash_alg,
                                              nonce=nonce)
    _check(clients.gnutls_ocsptool_verify(pki, leaf, req_file, resp_file), leaf)
    exchange(method, hash_alg, nonce, status=leaf)


@pytest.fixture(scope="module")
def nss_db(pki, tmp_path_factory):
    require("certutil")
    return clients.make_nss_db(pki, tmp_path_factory.mktemp("nssdb"))


@pytest.mark.parametrize("leaf", LEAVES)
def test_nss_vfychain(pki, url, nss_db, proxy, exchange, tmp_path, leaf):
    require("vfychain")
    _check(clients.nss_vfychain(pki, leaf, nss_db), leaf)
    # vfychain's -8180 names no certificate (it shows the root) and stands for unknown too:
    # openssl reads every answer NSS got.
    for number, served in enumerate(proxy.exchanges()):
        saved = tmp_path / f"vfychain-response-{number}.der"
        saved.write_bytes(served.response_body)
        _check(clients.openssl_respin(pki, leaf, saved), leaf, "openssl")
    exchange("GET", "sha1", nonce=False, status=leaf)


@pytest.mark.parametrize("leaf", LEAVES)
def test_nss_ocspclnt(pki, url, nss_db, exchange, leaf):
    require("ocspclnt")
    _check(clients.nss_ocspclnt(pki, leaf, url, nss_db), leaf)
    exchange("GET", "sha1", nonce=False, status=leaf)


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory):
    require("javac", "java")
    return clients.compile_java(tmp_path_factory.mktemp("java"))


@pytest.mark.parametrize("nonce_bytes, padding_bytes, method",
                         [(0, 0, "GET"), (16, 0, "GET"), (128, 0, "POST"), (0, 200, "POST")],
                         ids=["no-nonce-GET", "nonce16-GET", "nonce128-POST", "no-nonce-POST"])
@pytest.mark.parametrize("leaf", LEAVES)
def test_java_pkix(pki, url, java_classes, exchange, leaf, nonce_bytes, padding_bytes, method):
    _check(clients.java_pkix(pki, leaf, url, java_classes, nonce_bytes=nonce_bytes, padding_bytes=padding_bytes),
           leaf, "java")
    request = exchange(method, "sha1", nonce=bool(nonce_bytes), status=leaf)[1]
    if nonce_bytes:
        assert len(_nonce(request.extensions)) == nonce_bytes


def test_java_pkix_uses_aia(pki, url, java_classes, exchange):
    """Without an explicit responder Java must find the responder through the AIA."""
    _check(clients.java_pkix(pki, "good", None, java_classes), "good")
    exchange("GET", "sha1", nonce=False, status="good")


@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no-nonce"])
@pytest.mark.parametrize("hash_alg", ["sha1", "sha256"])
@pytest.mark.parametrize("leaf", LEAVES)
def test_pyhanko(pki, url, exchange, leaf, hash_alg, nonce):
    _check(clients.pyhanko_validate(pki, leaf, hash_alg=hash_alg, nonce=nonce), leaf, "pyhanko")
    exchange("POST", hash_alg, nonce, status=leaf)


@pytest.mark.parametrize("nonce", [True, False], ids=["nonce", "no-nonce"])
@pytest.mark.parametrize("hash_alg", ["sha1", "sha256"])
@pytest.mark.parametrize("leaf", LEAVES)
def test_pyhanko_get(pki, url, exchange, tmp_path, leaf, hash_alg, nonce):
    """pyhanko validating with a response fetched by GET (its own fetcher only POSTs)."""
    require("openssl")
    _req_file, resp_file = clients.fetch_saved(pki, leaf, url, tmp_path, hash_alg=hash_alg, nonce=nonce)
    _check(clients.pyhanko_validate(pki, leaf, fetched_response=resp_file.read_bytes()), leaf, "pyhanko")
    exchange("GET", hash_alg, nonce, status=leaf)


@pytest.fixture(scope="module")
def ignoring_responder(pki, url, interop_prefix, tmp_path_factory):
    """A second responder on the same CA with ``nonce_policy: ignore`` (every answer
    pre-signed and cacheable)."""
    if TARGET == "openssl":
        pytest.skip("openssl ocsp has no nonce policy")
    issuer = {"name": "interop", "ca_cert": str(pki.ca_cert), "index": str(pki.index),
              "signer_cert": str(pki.signer_cert), "signer_key": str(pki.signer_key)}
    if pki.signer_key_passphrase_file:
        issuer["signer_key_passphrase_file"] = str(pki.signer_key_passphrase_file)
    responder = launch_responder(tmp_path_factory.mktemp("responder-ignore"), {
        "listen": ["127.0.0.1:0"], "issuers": [issuer], "path_prefix": interop_prefix.rstrip("/"),
        "nonce_policy": "ignore"})
    yield responder
    responder.stop()


@pytest.fixture
def behind_proxy_ignoring(proxy, ignoring_responder):
    """The proxy (the leaves' AIA URL) leads to the ignoring responder for one test."""
    echoing_port = proxy.upstream_port
    proxy.upstream_port = ignoring_responder.port
    yield
    proxy.upstream_port = echoing_port


@pytest.mark.parametrize("client", ["openssl", "java-GET", "java-POST", "pyhanko", "ocsptool"])
def test_nonce_policy_ignore(pki, url, behind_proxy_ignoring, java_classes, exchange, client):
    """What operators get with ``nonce_policy: ignore``: clients that send a nonce receive
    the cached answer without one. openssl (with a warning), Java and pyhanko accept it;
    GnuTLS ``ocsptool --nonce`` rejects it ("could not read response's nonce"), which is
    why the default policy is to echo."""
    if client == "ocsptool":
        require("ocsptool")
        with pytest.raises(clients.ClientError, match="could not read response's nonce"):
            clients.gnutls_ocsptool(pki, "revoked", url, nonce=True)
        exchange("POST", "sha1", nonce=True, echo=False, status="revoked")
        return
    if client == "openssl":
        result, method = clients.openssl_post(pki, "revoked", url, nonce=True, echo_expected=False), "POST"
    elif client.startswith("java"):
        method = client.split("-")[1]
        result = clients.java_pkix(pki, "revoked", url, java_classes, nonce_bytes=16 if method == "GET" else 128)
    else:
        result, method = clients.pyhanko_validate(pki, "revoked", nonce=True), "POST"
    _check(result, "revoked", client.split("-")[0])
    exchange(method, "sha1", nonce=True, echo=False, status="revoked")


@pytest.mark.parametrize("client", ["openssl", "ocsptool", "ocspclnt", "java"])
def test_unknown_serial(pki, url, nss_db, java_classes, exchange, proxy, client):
    """A certificate the CA signed outside its database is ``unknown`` (the default
    unknown_serial_policy) to every client that can say so. (NSS vfychain reports an
    unknown as revoked and pyhanko as missing revocation info; not listed here.)"""
    if client == "openssl":
        result, method = clients.openssl_post(pki, "unknown", url), "POST"
    elif client == "ocsptool":
        require("ocsptool")
        result, method = clients.gnutls_ocsptool(pki, "unknown", url, nonce=False), "POST"
    elif client == "ocspclnt":
        require("ocspclnt")
        result, method = clients.nss_ocspclnt(pki, "unknown", url, nss_db), "GET"
    else:
        result, method = clients.java_pkix(pki, "unknown", url, java_classes), "GET"
    _check(result, "unknown")
    if client == "ocspclnt":
        # NSS asks once more by POST when the GET answer says unknown.
        assert [e.method for e in proxy.exchanges()] == ["GET", "POST"]
        for ex in proxy.exchanges():
            response = ocsp.load_der_ocsp_response(ex.response_body)
            assert response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN
            clients.check_signed_response(response, pki.signer_cert)
        return
    exchange(method, "sha1", status="unknown")
