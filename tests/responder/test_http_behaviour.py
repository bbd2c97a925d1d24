"""HTTP behaviour of the running responder: RFC 9919 GET encodings and cache headers,
POST rules, limits, HTTP/1.0 and keep-alive, health, metrics and the request log."""
from __future__ import annotations

import base64
import datetime
import email.utils
import hashlib
import http.client
import random
import re
import resource
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from asn1crypto import core, ocsp, x509

try:
    from .conftest import base_config, der_tlv, launch_responder, ocsp_request_der
    from .interop_support import split_http
except ImportError:  # tests/responder is not a package: pytest put this directory on sys.path
    from conftest import base_config, der_tlv, launch_responder, ocsp_request_der
    from interop_support import split_http

OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}


@pytest.fixture(scope="module")
def responder(pki, tmp_path_factory):
    config = base_config(pki, path_prefix="/ocsp",
                         limits={"max_body_bytes": 4096, "header_timeout": 1, "body_timeout": 1})
    running = launch_responder(tmp_path_factory.mktemp("http"), config)
    yield running
    assert running.stop() == 0


def request_for_serial(pki, serial: int) -> bytes:
    return request_for_serials(pki, [serial])


def request_for_serials(pki, serials) -> bytes:
    """One request (SHA-1 CertIDs of the intermediate), one certificate per serial."""
    ca = x509.Certificate.load(_der(pki.intermediate.cert))
    cert_ids = [ocsp.CertId({
        "hash_algorithm": {"algorithm": "sha1", "parameters": core.Null()},
        "issuer_name_hash": hashlib.sha1(ca.subject.dump()).digest(),
        "issuer_key_hash": hashlib.sha1(ca.public_key["public_key"].contents[1:]).digest(),
        "serial_number": serial,
    }) for serial in serials]
    return ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": cert_id} for cert_id in cert_ids]}}).dump()


def _der(path) -> bytes:
    text = path.read_text()
    body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
    return base64.b64decode(body)


def answered_serial(body: bytes) -> int:
    response = ocsp.OCSPResponse.load(body)
    assert response["response_status"].native == "successful", response["response_status"].native
    return response["response_bytes"]["response"].parsed["tbs_response_data"]["responses"][0]["cert_id"][
        "serial_number"].native


@pytest.fixture(scope="module")
def awkward_request(pki) -> tuple:
    """(serial, base64) of a request whose base64 has '+', '/' and '=' padding: long
    random serials make one within a few dozen tries."""
    rng = random.Random(9919)
    for _attempt in range(100000):
        bits = 8 * rng.randint(8, 19) - 1  # varying length: some totals need '=' padding
        serial = rng.getrandbits(bits) | 1 << bits
        encoded = base64.b64encode(request_for_serial(pki, serial)).decode()
        if "+" in encoded and "/" in encoded and encoded.endswith("="):
            return serial, encoded
    raise AssertionError("no such request")


@pytest.mark.parametrize("variant", ["plain", "percent_all", "raw_plus", "space_for_plus", "no_padding",
                                     "repeated_slashes", "urlsafe"])
def test_get_path_encodings(responder, awkward_request, variant):
    serial, encoded = awkward_request
    path = {
        "plain": quote(encoded, safe=""),
        "percent_all": "".join(f"%{ord(c):02X}" for c in encoded),
        "raw_plus": quote(encoded, safe="+"),
        "space_for_plus": quote(encoded, safe="").replace("%2B", "%20"),
        "no_padding": quote(encoded.rstrip("="), safe=""),
        "repeated_slashes": "//" + quote(encoded, safe="/"),
        "urlsafe": encoded.replace("+", "-").replace("/", "_").rstrip("="),
    }[variant]
    status, headers, body = responder.http("/ocsp/" + path)
    assert status == 200
    assert headers["Content-Type"] == "application/ocsp-response"
    assert answered_serial(body) == serial


def test_get_garbage_is_malformed_request(responder):
    for path in ("/ocsp/AAAA", "/ocsp/%%%%", "/ocsp/a"):
        status, headers, body = responder.http(path)
        assert (status, headers["Content-Type"], body) == (200, "application/ocsp-response", bytes.fromhex("30030a0101"))


def test_paths_outside_prefix(pki, responder):
    request = ocsp_request_der(pki, pki.good, nonce=False)
    assert responder.http("/" + quote(base64.b64encode(request).decode(), safe=""))[0] == 404
    assert responder.http("/elsewhere", data=request, headers=OCSP_REQUEST)[0] == 404
    assert responder.http("/ocsp")[0] == 400  # GET without a request
    for path in ("/ocsp", "/ocsp/"):
        assert answered_serial(responder.http(path, data=request, headers=OCSP_REQUEST)[2]) == int(pki.good.serial, 16)


def assert_rfc9919_caching_headers(headers, body):
    """RFC 9919 §6.2 / §7.2 headers of a signed answer, checked against its own times."""
    singles = ocsp.OCSPResponse.load(body)["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
    this_update, next_update = singles[0]["this_update"].native, singles[0]["next_update"].native
    directives = [d.strip() for d in headers["Cache-Control"].split(",")]
    assert {"public", "no-transform", "must-revalidate"} <= set(directives)
    assert not {"no-store", "no-cache"} & set(directives)
    max_age = int(next(d for d in directives if d.startswith("max-age="))[8:])
    assert 0 <= next_update.timestamp() - time.time() - max_age < 5
    assert email.utils.parsedate_to_datetime(headers["Last-Modified"]) == this_update
    assert email.utils.parsedate_to_datetime(headers["Expires"]) == next_update
    assert headers["ETag"] == '"%s"' % hashlib.sha256(body).hexdigest()  # as RFC 9919 §7.2 recommends


def test_cache_headers_and_conditional_get(pki, responder):
    request = ocsp_request_der(pki, pki.good, nonce=False)
    path = "/ocsp/" + quote(base64.b64encode(request).decode(), safe="")
    status, headers, body = responder.http(path)
    assert status == 200
    assert_rfc9919_caching_headers(headers, body)
    etag = headers["ETag"]

    status, headers304, body304 = responder.http(path, headers={"If-None-Match": etag})
    assert (status, body304) == (304, b"")
    assert headers304["ETag"] == etag
    assert responder.http(path, headers={"If-None-Match": '"other"'})[0] == 200
    status, _headers, body304 = responder.http(path, headers={"If-None-Match": "*"})  # RFC 9110 §13.1.2
    assert (status, body304) == (304, b"")
    # The list may come in several field lines (RFC 9110 §5.3): the tag is in the second.
    reply = _raw_exchange(responder, f"GET {path} HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"other\"\r\n"
                                     f"If-None-Match: W/{etag}\r\nConnection: close\r\n\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 304 "), reply[:200]


@pytest.mark.parametrize("kind", ["nonce", "unknown serial", "two certificates"])
def test_signed_answers_not_kept_still_carry_caching_headers(pki, responder, kind):
    """RFC 9919 §7.2: an authoritative answer MUST NOT say no-store or no-cache, even one
    the responder signs per request instead of keeping it."""
    request = {"nonce": lambda: ocsp_request_der(pki, pki.good, nonce=True),
               "unknown serial": lambda: request_for_serial(pki, 0xDEAD0B),
               "two certificates": lambda: ocsp_request_der(pki, pki.good, pki.revoked, nonce=False)}[kind]()
    status, headers, body = responder.http("/ocsp/" + quote(base64.b64encode(request).decode(), safe=""))
    assert status == 200 and ocsp.OCSPResponse.load(body)["response_status"].native == "successful"
    assert_rfc9919_caching_headers(headers, body)


def test_more_certificates_than_max_request_certs_is_malformed(pki, responder):
    """limits.max_request_certs (default 32): 33 CertIDs in one request are a
    malformedRequest; 32 are answered, one SingleResponse each, in request order."""
    serials = [int(pki.good.serial, 16), int(pki.revoked.serial, 16)] + list(range(0xDEAD00, 0xDEAD00 + 31))
    assert len(serials) == 33
    status, _headers, body = responder.http("/ocsp", data=request_for_serials(pki, serials), headers=OCSP_REQUEST)
    assert status == 200 and ocsp.OCSPResponse.load(body)["response_status"].native == "malformed_request"
    assert body == bytes.fromhex("30030a0101")  # unsigned, nothing else
    status, _headers, body = responder.http("/ocsp", data=request_for_serials(pki, serials[:32]), headers=OCSP_REQUEST)
    response = ocsp.OCSPResponse.load(body)
    assert status == 200 and response["response_status"].native == "successful"
    singles = response["response_bytes"]["response"].parsed["tbs_response_data"]["responses"]
    assert [single["cert_id"]["serial_number"].native for single in singles] == serials[:32]
    assert [single["cert_status"].name for single in singles] == ["good", "revoked"] + ["unknown"] * 30


def test_error_answers_on_get_are_not_stored(responder):
    status, headers, body = responder.http("/ocsp/AAAA")
    assert (status, body) == (200, bytes.fromhex("30030a0101"))  # malformedRequest
    assert headers["Cache-Control"] == "no-store"
    assert "ETag" not in headers


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/ocsp-response",
                                          "application/x-www-form-urlencoded"])
def test_post_wrong_content_type_415(pki, responder, content_type):
    request = ocsp_request_der(pki, pki.good, nonce=False)
    headers = {"Content-Type": content_type} if content_type else {}
    assert responder.http("/ocsp", data=request, headers=headers)[0] == 415


def test_post_content_type_parameters_and_case_accepted(pki, responder):
    request = ocsp_request_der(pki, pki.good, nonce=False)
    status, _h, body = responder.http("/ocsp", data=request, headers={"Content-Type": "Application/OCSP-Request; x=1"})
    assert status == 200 and answered_serial(body) == int(pki.good.serial, 16)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS"])
def test_wrong_method_405(responder, method):
    status, headers, _body = responder.http("/ocsp/", data=b"x", headers=OCSP_REQUEST, method=method)
    assert status == 405
    assert headers["Allow"] == "GET, HEAD, POST"


def test_oversize_body_413(responder):
    assert responder.http("/ocsp", data=b"\x30" * 5000, headers=OCSP_REQUEST)[0] == 413


def test_oversize_chunked_body_413(responder):
    connection = http.client.HTTPConnection(responder.host, responder.port, timeout=5)
    connection.request("POST", "/ocsp", body=iter([b"\x30" * 3000, b"\x30" * 3000]), headers=OCSP_REQUEST,
                       encode_chunked=True)
    assert connection.getresponse().status == 413
    connection.close()


def test_oversize_get_path_rejected(responder):
    # RFC 9112 §3: a request-target longer than the server parses MUST get 414 (aiohttp's
    # parser answered 400); an over-long header field is a plain 400.
    assert responder.http("/ocsp/" + "A" * 10000)[0] == 414
    # The client's error is one line in the log, not an error with a traceback.
    assert wait_log(responder, lambda r: r.get("msg", "").startswith("bad HTTP request: Got more than")
                    and r["level"] == "info" and r["remote"] == "127.0.0.1" and r["http_status"] == 414)
    assert responder.http("/ocsp/AAAA", headers={"X-Long": "/" + "b" * 9000})[0] == 400


def test_keep_alive_http11(pki, responder):
    request = ocsp_request_der(pki, pki.good, nonce=False)
    connection = http.client.HTTPConnection(responder.host, responder.port, timeout=5)
    for _attempt in range(3):
        connection.request("POST", "/ocsp", body=request, headers=OCSP_REQUEST)
        response = connection.getresponse()
        assert response.status == 200 and answered_serial(response.read()) == int(pki.good.serial, 16)
    connection.close()


def test_keep_alive_answers_match_the_other_forms(pki, responder):
    """HTTP/1.1 keep-alive answers are written from bytes serialised ahead; they must say
    what HTTP/1.0 and Connection: close answers (aiohttp's own responses) say, in order
    when pipelined, with a Content-Length that frames them."""
    good = "/ocsp/" + quote(base64.b64encode(ocsp_request_der(pki, pki.good, nonce=False)).decode(), safe="")
    revoked = ocsp_request_der(pki, pki.revoked, nonce=False)
    nonce = ocsp_request_der(pki, pki.good, nonce=True)

    def get(version: bytes, extra: bytes = b"") -> bytes:
        return b"GET %s HTTP/%s\r\nHost: x\r\n%s\r\n" % (good.encode(), version, extra)

    def post(body: bytes, version: bytes, extra: bytes = b"") -> bytes:
        return (b"POST /ocsp HTTP/%s\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                b"Content-Length: %d\r\n%s\r\n" % (version, len(body), extra)) + body

    pipelined = [get(b"1.1"), post(revoked, b"1.1"), post(nonce, b"1.1"), get(b"1.1"),
                 get(b"1.1", b"Connection: close\r\n")]
    answers = split_http(_raw_exchange(responder, b"".join(pipelined)))
    assert [line for line, _headers, _body in answers] == ["HTTP/1.1 200 OK"] * 5
    keep_get, keep_post, keep_nonce, keep_get_again, close_get = answers
    closed_post = split_http(_raw_exchange(responder, post(revoked, b"1.0")))[0]
    closed_nonce = split_http(_raw_exchange(responder, post(nonce, b"1.1", b"Connection: close\r\n")))[0]

    def comparable(headers: dict) -> dict:
        return {name: value for name, value in headers.items() if name not in ("date", "connection")}

    for keep, closed in ((keep_get, close_get), (keep_get_again, close_get), (keep_post, closed_post)):
        assert keep[2] == closed[2]
        assert comparable(keep[1]) == comparable(closed[1])
        assert "connection" not in keep[1]
        assert abs(email.utils.parsedate_to_datetime(keep[1]["date"]).timestamp() - time.time()) < 5
    assert comparable(keep_nonce[1]).keys() == comparable(closed_nonce[1]).keys()
    assert keep_get[1]["content-type"] == "application/ocsp-response"
    assert "max-age=" in keep_get[1]["cache-control"] and keep_get[1]["etag"]
    assert answered_serial(keep_get[2]) == int(pki.good.serial, 16)
    assert answered_serial(keep_post[2]) == int(pki.revoked.serial, 16)
    assert answered_serial(keep_nonce[2]) == int(pki.good.serial, 16)
    assert echoed_nonce(keep_nonce[2]) == ocsp.OCSPRequest.load(nonce)["tbs_request"]["request_extensions"][0][
        "extn_value"].native


def echoed_nonce(body: bytes):
    data = ocsp.OCSPResponse.load(body)["response_bytes"]["response"].parsed["tbs_response_data"]
    return next(ext["extn_value"].native for ext in data["response_extensions"] if ext["extn_id"].native == "nonce")


def wait_log(responder, predicate, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(predicate(record) for record in responder.log_records()):
            return True
        time.sleep(0.05)
    return False


def _raw_exchange(responder, payload: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection((responder.host, responder.port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_http10_post_then_close(pki, responder):
    request = ocsp_request_der(pki, pki.good, nonce=False)
    reply = _raw_exchange(responder, b"POST /ocsp HTTP/1.0\r\nContent-Type: application/ocsp-request\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(request) + request)
    head, _separator, body = reply.partition(b"\r\n\r\n")
    assert re.match(rb"HTTP/1\.[01] 200", head)
    assert b"\r\nContent-Type: application/ocsp-response\r\n" in head + b"\r\n"
    assert answered_serial(body) == int(pki.good.serial, 16)


def test_expect_100_continue(pki, responder):
    """RFC 9110 §10.1.1: a client that sends ``Expect: 100-continue`` waits for the 100
    before its body (curl waits a second, .NET until its timeout)."""
    request = ocsp_request_der(pki, pki.good, nonce=False)
    with socket.create_connection((responder.host, responder.port), timeout=3) as sock:
        sock.sendall(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                     b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(request))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _separator, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert answered_serial(body) == int(pki.good.serial, 16)
    refused = _raw_exchange(responder, b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                            b"Expect: something-else\r\nContent-Length: 10\r\n\r\n")
    assert refused.startswith(b"HTTP/1.1 417")


def test_absolute_form_request_target(pki, responder):
    """RFC 9112 §3.2.2: a server must accept ``GET http://host/path`` (what proxies send)."""
    request = ocsp_request_der(pki, pki.good, nonce=False)
    origin = f"http://{responder.host}:{responder.port}"
    reply = _raw_exchange(responder, f"GET {origin}/ocsp/{quote(base64.b64encode(request).decode(), safe='')} "
                                     f"HTTP/1.0\r\n\r\n".encode())
    assert answered_serial(reply.partition(b"\r\n\r\n")[2]) == int(pki.good.serial, 16)
    reply = _raw_exchange(responder, f"POST {origin}/ocsp HTTP/1.0\r\nContent-Type: application/ocsp-request\r\n"
                                     f"Content-Length: {len(request)}\r\n\r\n".encode() + request)
    assert answered_serial(reply.partition(b"\r\n\r\n")[2]) == int(pki.good.serial, 16)


def test_slow_header_client_is_cut_off(responder):
    started = time.monotonic()
    with socket.create_connection((responder.host, responder.port), timeout=10) as sock:
        sock.sendall(b"POST /ocsp HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
        assert sock.recv(100) == b""
    assert time.monotonic() - started < 5  # header_timeout 1 s (+ aiohttp's timer granularity)


def test_slow_body_is_cut_off(responder):
    reply = _raw_exchange(responder, b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                          b"Content-Length: 100\r\n\r\n0123456789")
    assert reply.startswith(b"HTTP/1.1 408")


def established_connections(port: int) -> int:
    """Server-side TCP connections on ``port`` (from /proc/net/tcp: IPv4 loopback)."""
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":  # local port, ESTABLISHED
                count += 1
    return count


def test_client_that_stops_reading_is_dropped(pki, start_responder):
    """A client that sends requests and never reads the answers: the server's writes stall.
    aiohttp has no send timeout; limits.send_timeout (TCP_USER_TIMEOUT) drops it."""
    responder = start_responder(pki, limits={"send_timeout": "2s"})
    request = ocsp_request_der(pki, pki.good, nonce=False)
    get = b"GET /" + base64.b64encode(request) + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((responder.host, responder.port))
        assert established_connections(responder.port) == 1
        sock.settimeout(2)
        try:
            while True:
                sock.sendall(get * 100)
        except socket.timeout:
            pass  # both directions are full: the server is stuck writing
        # (On a busy machine the kernel may already have dropped it here: not asserted.)
        deadline = time.monotonic() + 20
        while established_connections(responder.port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert established_connections(responder.port) == 0, "the stalled connection was kept"
    with urllib.request.urlopen(responder.url + quote(base64.b64encode(request).decode(), safe=""), timeout=10) as reply:
        assert answered_serial(reply.read()) == int(pki.good.serial, 16)  # and the server still answers


def test_health_and_metrics(pki, responder):
    status, report = responder.health()
    assert status == 200 and report["status"] == "ok"
    assert report["issuers"]["intermediate"]["entries"] == 4
    before = responder.metrics()
    request = ocsp_request_der(pki, pki.revoked, nonce=False)
    responder.http("/ocsp", data=request, headers=OCSP_REQUEST)
    responder.http("/ocsp", data=request, headers=OCSP_REQUEST)
    after = responder.metrics()

    def value(text: str, name: str, absent=None) -> float:
        """The sample's value; a sample missing from the exposition fails unless ``absent`` is given."""
        match = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        assert match or absent is not None, f"{name} not exported"
        return float(match.group(1)) if match else absent

    assert value(after, 'ocsp_requests_total{method="POST",status="revoked"}') - \
        value(before, 'ocsp_requests_total{method="POST",status="revoked"}', absent=0.0) == 2
    assert value(after, "ocsp_cache_hits_total") - value(before, "ocsp_cache_hits_total", absent=0.0) >= 1
    assert value(after, 'ocsp_index_entries{issuer="intermediate"}') == 4
    assert value(after, 'ocsp_index_load_error{issuer="intermediate"}') == 0
    assert 'ocsp_request_duration_seconds_bucket{le="0.005",method="POST"}' in after
    assert 'ocsp_signings_total{issuer="intermediate",kind="presign"}' in after
    assert "ocsp_index_data_age_seconds{" in after

    # The signer in service, as the operator is told it (docs/responder.md, Operations).
    signer = x509.Certificate.load(_der(pki.signer.cert))
    not_after = signer["tbs_certificate"]["validity"]["not_after"].native
    issuer = report["issuers"]["intermediate"]
    assert issuer["ok"] is True
    assert int(issuer["signer_serial"], 16) == signer.serial_number and issuer["signer_serial"] == pki.signer.serial
    assert datetime.datetime.fromisoformat(issuer["signer_not_after"]) == not_after
    assert value(after, 'ocsp_signer_not_after_timestamp_seconds{issuer="intermediate"}') == not_after.timestamp()
    assert value(after, 'ocsp_issuer_healthy{issuer="intermediate"}') == 1


def test_one_json_log_line_per_request(pki, responder):
    request = ocsp_request_der(pki, pki.revoked, nonce=False)
    responder.http("/ocsp", data=request, headers=OCSP_REQUEST)
    deadline = time.monotonic() + 3  # request lines are flushed every 0.2 s
    while True:
        lines = [r for r in responder.log_records() if r.get("msg") == "request" and r.get("serial") == pki.revoked.serial]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert lines
    line = lines[-1]
    assert line["issuer"] == "intermediate" and line["status"] == "revoked" and line["method"] == "POST"
    assert isinstance(line["cache_hit"], bool) and line["latency_ms"] >= 0 and line["http_status"] == 200


def test_head_ipv6_and_separate_metrics_listener(pki, start_responder):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this host")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback on this host")
    responder = start_responder(pki, listen=["[::1]:0"], metrics={"listen": "127.0.0.1:0", "path": "/prom"})
    assert responder.host == "::1"
    request = ocsp_request_der(pki, pki.good, nonce=False)
    path = "/" + quote(base64.b64encode(request).decode(), safe="")
    status, headers, body = responder.http(path, method="HEAD")
    assert status == 200 and body == b"" and headers["Content-Type"] == "application/ocsp-response"
    assert "max-age=" in headers["Cache-Control"]
    # Not on the public listener: there "/prom" is just an undecodable OCSP GET.
    assert responder.http("/prom")[1]["Content-Type"] == "application/ocsp-response"
    metrics_address = next(r["address"] for r in responder.log_records() if r.get("msg") == "metrics listening")
    with urllib.request.urlopen(f"http://{metrics_address}/prom", timeout=5) as response:
        assert 'ocsp_requests_total{method="HEAD",status="good"} 1.0' in response.read().decode()


@pytest.mark.parametrize("expect", [False, True])
def test_client_hanging_up_mid_body_is_not_an_error(pki, start_responder, expect):
    responder = start_responder(pki, path_prefix="/ocsp")
    request = ocsp_request_der(pki, pki.good, nonce=False)
    hang_ups = 3
    for _connection in range(hang_ups):
        with socket.create_connection((responder.host, responder.port), timeout=5) as sock:
            # With Expect: 100-continue, the hang-up may come before the 100 is written.
            sock.sendall(b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
                         + (b"Expect: 100-continue\r\n" if expect else b"")
                         + b"Content-Length: %d\r\n\r\n" % len(request) + (b"" if expect else request[:10]))
            time.sleep(0 if expect else 0.1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
    time.sleep(0.3)
    metrics = responder.metrics()
    assert 'status="internalError"' not in metrics
    assert f'ocsp_requests_total{{method="POST",status="client_closed"}} {hang_ups}.0' in metrics
    assert "Traceback" not in responder.logs()


def test_signed_request_with_a_deeply_nested_certificate(pki, start_responder):
    """Request signatures are not verified: a certificate in one that is 2,000 nested
    SEQUENCEs (8 KB) is not decoded, so the request is answered, not an internalError
    from the decoder's recursion (nor 100 ms of CPU for a few KB)."""
    running = start_responder(pki, limits={"max_body_bytes": 16384})
    unsigned = request_for_serial(pki, int(pki.good.serial, 16))
    tbs = unsigned[2:] if unsigned[1] < 0x80 else unsigned[2 + (unsigned[1] & 0x7F):]
    nested = b""
    for _level in range(2000):
        nested = der_tlv(0x30, nested)
    sha256_with_rsa = der_tlv(0x30, der_tlv(0x06, bytes.fromhex("2a864886f70d01010b")) + b"\x05\x00")
    signature = der_tlv(0x30, sha256_with_rsa + der_tlv(0x03, b"\x00" + bytes(256)) + der_tlv(0xA0, der_tlv(0x30, nested)))
    signed = der_tlv(0x30, tbs + der_tlv(0xA0, signature))
    assert len(signed) > 8000
    status, _headers, body = running.http("/", data=signed, headers=OCSP_REQUEST)
    assert status == 200
    assert answered_serial(body) == int(pki.good.serial, 16)
    broken = der_tlv(0x30, tbs + der_tlv(0xA0, der_tlv(0x30, sha256_with_rsa + b"\x03\x01")))  # a cut-off signature
    assert running.http("/", data=broken, headers=OCSP_REQUEST)[2] == bytes.fromhex("30030a0101")
    assert "Traceback" not in running.logs()


def test_listeners_limits_and_open_files(pki, start_responder):
    """The metrics listener has the OCSP listener's limits (its half-sent requests were
    kept an hour); both listen with a backlog of 1024 (create_server's default is 100);
    the soft limit on open files is raised to the hard one (at 1024, a few hundred idle
    connections locked every client out); request heads are bounded (32 fields of 2 KB)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        responder = start_responder(pki, metrics={"listen": "127.0.0.1:0"}, limits={"header_timeout": 1})
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    limits = Path(f"/proc/{responder.process.pid}/limits").read_text()
    assert re.search(rf"^Max open files\s+{hard}\s+{hard}\s", limits, re.M), limits

    metrics_address = next(r["address"] for r in responder.log_records() if r.get("msg") == "metrics listening")
    metrics_port = int(metrics_address.rsplit(":", 1)[1])
    for port in (responder.port, metrics_port):
        listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                                   check=True).stdout.split()
        assert listening[2] == "1024", listening  # Send-Q of a listening socket: its backlog
        with socket.create_connection(("127.0.0.1", port), timeout=5) as half_sent:
            half_sent.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            assert half_sent.recv(1024) == b""  # closed by the server
            assert time.monotonic() - started < 4, port

    request = ocsp_request_der(pki, pki.good, nonce=False)
    fine = [("X-Forwarded-For", "192.0.2.1, " * 150 + "192.0.2.1")] + [(f"X-Field-{n}", "v") for n in range(20)]
    status, _headers, body = responder.http("/", data=request, headers=dict(fine, **OCSP_REQUEST))
    assert status == 200 and answered_serial(body) == int(pki.good.serial, 16)
    for refused in ([("X-Big", "v" * 2100)], [(f"X-Field-{n}", "v") for n in range(40)]):
        status, _headers, _body = responder.http("/", data=request, headers=dict(refused, **OCSP_REQUEST))
        assert 400 <= status < 500, (status, refused[0])
    assert responder.process.poll() is None
