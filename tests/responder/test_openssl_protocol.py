"""RFC 6960 behaviour of the running responder, judged by ``openssl ocsp`` (which exits 0
on several failures, so its output is what is checked)."""
from __future__ import annotations

import base64
import datetime
from urllib.parse import quote

import pytest
from asn1crypto import core, ocsp

try:
    from .conftest import base_config, launch_responder, ocsp_request_der, openssl_ocsp, verify_response
except ImportError:  # tests/responder is not a package: pytest put this directory on sys.path
    from conftest import base_config, launch_responder, ocsp_request_der, openssl_ocsp, verify_response

OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}


@pytest.fixture(scope="module")
def responder(pki, tmp_path_factory):
    running = launch_responder(tmp_path_factory.mktemp("responder"), base_config(pki))
    yield running
    assert running.stop() == 0


@pytest.fixture(scope="module")
def extended_responder(pki, tmp_path_factory):
    running = launch_responder(tmp_path_factory.mktemp("responder-ext"),
                               base_config(pki, unknown_serial_policy="revoked", nonce_policy="ignore"))
    yield running
    running.stop()


def assert_status(result, leaf, status: str) -> None:
    out = result.stdout + result.stderr
    assert "Response verify OK" in out, out
    assert f"{leaf.cert}: {status}" in out, out
    assert "nonce" not in out.lower() or "WARNING: no nonce" not in out, out


def parse(der: bytes) -> ocsp.OCSPResponse:
    return ocsp.OCSPResponse.load(der)


def basic(der: bytes):
    response = parse(der)
    assert response["response_status"].native == "successful"
    return response["response_bytes"]["response"].parsed


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha384", "sha512"])
@pytest.mark.parametrize("leaf,status", [("good", "good"), ("revoked", "revoked")])
def test_post_status_per_certid_hash(pki, responder, digest, leaf, status):
    result = openssl_ocsp(pki, responder.url, pki.leaves[leaf], digest=digest)
    assert_status(result, pki.leaves[leaf], status)
    if status == "revoked":
        assert "Reason: keyCompromise" in result.stdout


@pytest.mark.parametrize("digest", ["sha1", "sha256"])
def test_response_echoes_certid_hash_algorithm(pki, responder, digest, tmp_path):
    request = ocsp_request_der(pki, pki.good, digest=digest, nonce=False, tmp=tmp_path)
    status, _headers, body = responder.http("/", data=request, headers=OCSP_REQUEST)
    assert status == 200
    single = basic(body)["tbs_response_data"]["responses"][0]
    assert single["cert_id"]["hash_algorithm"]["algorithm"].native == digest
    assert single["cert_id"].dump() == ocsp.OCSPRequest.load(request)["tbs_request"]["request_list"][0]["req_cert"].dump()


@pytest.mark.parametrize("digest", ["sha1", "sha256"])
@pytest.mark.parametrize("leaf,status", [("good", "good"), ("revoked", "revoked")])
def test_get_status_verified_by_openssl(pki, responder, digest, leaf, status, tmp_path):
    request = ocsp_request_der(pki, pki.leaves[leaf], digest=digest, nonce=False, tmp=tmp_path)
    code, headers, body = responder.http("/" + quote(base64.b64encode(request).decode(), safe=""))
    assert code == 200
    assert headers["Content-Type"] == "application/ocsp-response"
    result = verify_response(pki, body, pki.leaves[leaf], tmp=tmp_path, digest=digest, extra=("-no_nonce",))
    assert_status(result, pki.leaves[leaf], status)


def test_nonce_is_echoed_and_response_fresh(pki, responder):
    first = openssl_ocsp(pki, responder.url, pki.good, extra=("-resp_text",))
    second = openssl_ocsp(pki, responder.url, pki.good, extra=("-resp_text",))
    for result in (first, second):
        assert_status(result, pki.good, "good")
        assert "OCSP Nonce" in result.stdout
        assert "WARNING: no nonce in response" not in result.stdout + result.stderr
    nonce = [line for line in first.stdout.splitlines() if line.strip().startswith("04")]
    assert nonce and nonce != [line for line in second.stdout.splitlines() if line.strip().startswith("04")]


def test_without_nonce(pki, responder):
    result = openssl_ocsp(pki, responder.url, pki.revoked, nonce=False, extra=("-resp_text",))
    assert_status(result, pki.revoked, "revoked")
    assert "OCSP Nonce" not in result.stdout


def test_multi_certificate_request(pki, responder):
    result = openssl_ocsp(pki, responder.url, pki.good, pki.revoked, pki.leaves["other"], digest="sha256")
    out = result.stdout
    assert "Response verify OK" in out + result.stderr
    assert f"{pki.good.cert}: good" in out
    assert f"{pki.revoked.cert}: revoked" in out
    assert f"{pki.leaves['other'].cert}: good" in out


def test_unknown_serial_default_policy(pki, responder):
    result = openssl_ocsp(pki, responder.url, extra=("-serial", "0xDEAD01"))
    assert "Response verify OK" in result.stdout + result.stderr
    assert "0xDEAD01: unknown" in result.stdout


def test_unknown_serial_extended_revoked_policy(pki, extended_responder, tmp_path):
    result = openssl_ocsp(pki, extended_responder.url, extra=("-serial", "0xDEAD02"))
    assert "Response verify OK" in result.stdout + result.stderr
    assert "0xDEAD02: revoked" in result.stdout
    assert "Reason: certificateHold" in result.stdout
    assert "Revocation Time: Jan  1 00:00:00 1970 GMT" in result.stdout
    # The extension where an answer needs it (RFC 6960 §4.4.8), none elsewhere (RFC 9919 §3.2.1).
    for asked, expected in ((("-cert", str(pki.good.cert)), None),
                            (("-cert", str(pki.good.cert), "-serial", "0xDEAD03"), ["1.3.6.1.5.5.7.48.1.9"])):
        saved = tmp_path / "response.der"
        result = openssl_ocsp(pki, extended_responder.url, nonce=False, extra=asked + ("-respout", str(saved)))
        assert "Response verify OK" in result.stdout + result.stderr
        extensions = basic(saved.read_bytes())["tbs_response_data"]["response_extensions"]
        assert (None if extensions.native is None else [ext["extn_id"].dotted for ext in extensions]) == expected


def test_nonce_ignored_by_policy(pki, extended_responder):
    result = openssl_ocsp(pki, extended_responder.url, pki.good)
    assert "Response verify OK" in result.stdout + result.stderr
    assert f"{pki.good.cert}: good" in result.stdout
    assert "WARNING: no nonce in response" in result.stdout + result.stderr


def test_unserved_issuer_is_unauthorized(pki, responder):
    result = openssl_ocsp(pki, responder.url, pki.leaves["stranger"], issuer_cert=pki.other_ca.cert)
    assert "Responder Error: unauthorized (6)" in result.stdout + result.stderr


def test_mixed_issuers_in_one_request_unauthorized(pki, responder, tmp_path):
    ours = ocsp.OCSPRequest.load(ocsp_request_der(pki, pki.good, nonce=False, tmp=tmp_path))
    theirs = ocsp.OCSPRequest.load(ocsp_request_der(pki, pki.leaves["stranger"], nonce=False, tmp=tmp_path,
                                                    issuer_cert=pki.other_ca.cert))
    mixed = ocsp.OCSPRequest({"tbs_request": {"request_list": [
        ours["tbs_request"]["request_list"][0], theirs["tbs_request"]["request_list"][0]]}})
    body = responder.http("/", data=mixed.dump(), headers=OCSP_REQUEST)[2]
    assert parse(body)["response_status"].native == "unauthorized"


@pytest.mark.parametrize("body", [b"", b"garbage", b"\x30\x03\x02\x01\x00", b"\x30\x80" + b"\x00" * 10,
                                  bytes.fromhex("3082ffff")])
def test_malformed_body(responder, body):
    status, headers, response = responder.http("/", data=body, headers=OCSP_REQUEST)
    assert status == 200 and headers["Content-Type"] == "application/ocsp-response"
    assert response == bytes.fromhex("30030a0101")  # malformedRequest


def _tlv(tag: int, content: bytes) -> bytes:
    return core.Asn1Value(class_=tag >> 6, tag=tag & 0x1F, method=(tag >> 5) & 1, contents=content).dump()


def _with_nonce(pki, tmp_path, nonce: bytes, raw: bool = False) -> bytes:
    """The request with a Nonce extension assembled by hand (asn1crypto would refuse to
    encode the malformed ones this test needs)."""
    request = ocsp.OCSPRequest.load(ocsp_request_der(pki, pki.good, nonce=False, tmp=tmp_path))
    value = nonce if raw else _tlv(0x04, nonce)
    extension = _tlv(0x30, core.ObjectIdentifier("1.3.6.1.5.5.7.48.1.2").dump() + _tlv(0x04, value))
    tbs = _tlv(0x30, request["tbs_request"]["request_list"].dump() + _tlv(0xA2, _tlv(0x30, extension)))
    return _tlv(0x30, tbs)


@pytest.mark.parametrize("length", [1, 16, 32, 128])
def test_nonce_lengths_accepted(pki, responder, tmp_path, length):
    nonce = bytes(range(256))[:length]
    body = responder.http("/", data=_with_nonce(pki, tmp_path, nonce), headers=OCSP_REQUEST)[2]
    extensions = basic(body)["tbs_response_data"]["response_extensions"]
    assert [(e["extn_id"].native, e["extn_value"].parsed.native) for e in extensions] == [("nonce", nonce)]


@pytest.mark.parametrize("length", [0, 129, 200])
def test_nonce_lengths_rejected_per_rfc9654(pki, responder, tmp_path, length):
    body = responder.http("/", data=_with_nonce(pki, tmp_path, b"\x01" * length), headers=OCSP_REQUEST)[2]
    assert parse(body)["response_status"].native == "malformed_request"


def test_legacy_raw_nonce_echoed_verbatim(pki, responder, tmp_path):
    raw = b"\x11" * 20  # RFC 2560-era clients: the nonce bytes without an inner OCTET STRING
    body = responder.http("/", data=_with_nonce(pki, tmp_path, raw, raw=True), headers=OCSP_REQUEST)[2]
    assert parse(body)["response_status"].native == "successful"
    echoed = _tlv(0x30, core.ObjectIdentifier("1.3.6.1.5.5.7.48.1.2").dump() + _tlv(0x04, raw))
    assert _tlv(0xA1, _tlv(0x30, echoed)) in body  # responseExtensions [1] holding exactly that nonce


def test_response_times_and_signer(pki, responder, tmp_path):
    request = ocsp_request_der(pki, pki.good, nonce=False, tmp=tmp_path)
    response = basic(responder.http("/", data=request, headers=OCSP_REQUEST)[2])
    now = datetime.datetime.now(datetime.timezone.utc)
    single = response["tbs_response_data"]["responses"][0]
    assert single["this_update"].native <= now
    assert single["next_update"].native > now + datetime.timedelta(hours=7)
    # Responder ID by key hash (default) and the delegated signer embedded.
    assert response["tbs_response_data"]["responder_id"].name == "by_key"
    certs = response["certs"]
    assert len(certs) == 1 and certs[0].subject.native["common_name"] == "ocsp-signer"


@pytest.mark.parametrize("parameters", [b"\x04\x00", b"\x30\x00", b"\x0c\x00"])
def test_hash_parameters_other_than_null_are_malformed(pki, responder, tmp_path, parameters):
    request = ocsp_request_der(pki, pki.good, digest="sha256", nonce=False, tmp=tmp_path)
    sha256_null = bytes.fromhex("0609608648016503040201") + b"\x05\x00"
    assert sha256_null in request
    body = request.replace(sha256_null, sha256_null[:-2] + parameters)  # same length: enclosing lengths hold
    assert responder.http("/", data=body, headers=OCSP_REQUEST)[2] == bytes.fromhex("30030a0101")


def test_absent_hash_parameters_accepted_and_echoed(pki, responder, tmp_path):
    request = ocsp_request_der(pki, pki.good, digest="sha1", nonce=False, tmp=tmp_path)
    cert_id = ocsp.OCSPRequest.load(request)["tbs_request"]["request_list"][0]["req_cert"]
    without = ocsp.CertId({"hash_algorithm": {"algorithm": "sha1"}, "issuer_name_hash": cert_id["issuer_name_hash"],
                           "issuer_key_hash": cert_id["issuer_key_hash"], "serial_number": cert_id["serial_number"]})
    body = ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": without}]}}).dump()
    single = basic(responder.http("/", data=body, headers=OCSP_REQUEST)[2])["tbs_response_data"]["responses"][0]
    assert single["cert_id"].dump() == without.dump() and single["cert_status"].name == "good"
