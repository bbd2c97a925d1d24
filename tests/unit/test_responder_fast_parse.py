"""The fast request walker (protocol._fast_parse) against the full asn1crypto parser:
whatever the walker accepts, the full parser must accept with the same result; what the
walker declines (raises _Unusual) the full parser decides. Mutated requests by the
thousand check that the walker never says yes where the full parser says no."""
from __future__ import annotations

import os

import pytest
from asn1crypto import core, ocsp as asn1_ocsp
from hypothesis import HealthCheck, given, settings, strategies as st

from ocsp_responder import protocol

SHA1 = "1.3.14.3.2.26"
SHA256 = "2.16.840.1.101.3.4.2.1"
NONCE = "1.3.6.1.5.5.7.48.1.2"


def request_der(certs=((SHA1, 7),), nonce=None, params_null=True, extra_extension=False, critical=None,
                version=False, single_extension=False, extra_oid="1.2.840.113549.1.9.99", nonce_critical=None,
                nonces=1) -> bytes:
    requests = []
    for algorithm, serial in certs:
        size = 20 if algorithm == SHA1 else 32
        alg = {"algorithm": algorithm}
        if params_null:
            alg["parameters"] = core.Null()
        single = {"req_cert": {"hash_algorithm": alg, "issuer_name_hash": b"N" * size,
                               "issuer_key_hash": b"K" * size, "serial_number": serial}}
        if single_extension:
            single["single_request_extensions"] = [{"extn_id": "1.2.3.4", "extn_value": b"\x05\x00",
                                                    "critical": single_extension == "critical"}]
        requests.append(single)
    tbs = {"request_list": requests}
    if version:
        tbs["version"] = "v1"
    extensions = []
    if nonce is not None:
        for _copy in range(nonces):
            extension = {"extn_id": NONCE, "extn_value": nonce}
            if nonce_critical is not None:
                extension["critical"] = nonce_critical
            extensions.append(protocol._Extension(extension))
    if extra_extension:
        extension = {"extn_id": extra_oid, "extn_value": b"\x05\x00"}
        if critical is not None:
            extension["critical"] = critical
        extensions.append(protocol._Extension(extension))
    if extensions:
        tbs["request_extensions"] = protocol._Extensions(extensions)
    return protocol._OCSPRequest({"tbs_request": protocol._TBSRequest(tbs)}).dump(force=True)


def outcome(parse, der: bytes):
    try:
        return parse(der, 8)
    except protocol.MalformedRequest:
        return "malformed"


def mutated(der: bytes, position: int, value: int, action: str) -> bytes:
    """``der`` with one byte replaced, inserted or deleted at ``position`` (modulo its
    length), or cut there."""
    der = bytearray(der)
    position %= len(der)
    if action == "replace":
        der[position] = value
    elif action == "insert":
        der.insert(position, value)
    elif action == "delete":
        del der[position]
    else:
        der = der[:position]
    return bytes(der)


def assert_agree(der: bytes) -> bool:
    """True if the walker took the request; then the full parser must agree exactly."""
    try:
        fast = protocol._fast_parse(der, 8)
    except protocol._Unusual:
        return False
    assert outcome(protocol._full_parse, der) == fast, der.hex()
    return True


CASES = {
    "sha1": request_der(),
    "sha256 no params": request_der(((SHA256, 2 ** 100),), params_null=False),
    "negative serial": request_der(((SHA1, -5),)),
    "zero serial": request_der(((SHA1, 0),)),
    "serial 128": request_der(((SHA1, 128),)),
    "nonce der": request_der(nonce=core.OctetString(os.urandom(16)).dump()),
    "nonce raw": request_der(nonce=os.urandom(16)),
    "nonce empty": request_der(nonce=core.OctetString(b"").dump()),
    "nonce 129": request_der(nonce=core.OctetString(os.urandom(129)).dump()),
    "nonce then another extension": request_der(nonce=core.OctetString(os.urandom(32)).dump(), extra_extension=True),
    "two certs and a nonce": request_der(((SHA1, 1), (SHA256, 2)), nonce=core.OctetString(os.urandom(8)).dump()),
    "two certs": request_der(((SHA1, 1), (SHA256, 2))),
    "other extension": request_der(extra_extension=True, critical=True),
    "nine certs": request_der(tuple((SHA1, n) for n in range(9))),
    "version": request_der(version=True),
    "single extension": request_der(single_extension=True),
    "critical single extension": request_der(single_extension="critical"),
    "critical nonce": request_der(nonce=core.OctetString(os.urandom(16)).dump(), nonce_critical=True),
    "two nonces": request_der(nonce=core.OctetString(os.urandom(16)).dump(), nonces=2),
    "non-critical other extension": request_der(extra_extension=True, critical=False),
    "critical acceptable responses": request_der(extra_extension=True, critical=True, extra_oid="1.3.6.1.5.5.7.48.1.4"),
}

# RFC 6960 §4.4: an extension marked critical that we do not understand is refused, one we
# understand or that is not critical is accepted; RFC 5280 §4.2: no extension twice.
EXTENSION_RULES = {
    "other extension": "malformed",  # critical, unknown
    "critical single extension": "malformed",
    "two nonces": "malformed",
    "critical nonce": "accepted",
    "non-critical other extension": "accepted",
    "single extension": "accepted",
    "critical acceptable responses": "accepted",
}


@pytest.mark.parametrize("name", list(EXTENSION_RULES))
def test_critical_and_repeated_extensions(name):
    result = outcome(protocol.parse_request, CASES[name])
    assert ("malformed" if result == "malformed" else "accepted") == EXTENSION_RULES[name]


@pytest.mark.parametrize("name", list(CASES))
def test_walker_and_full_parser_agree(name):
    der = CASES[name]
    taken = assert_agree(der)
    # The common shapes must take the fast path (or the benchmark numbers are fiction).
    if name in ("sha1", "sha256 no params", "nonce der", "nonce raw", "two certs", "negative serial"):
        assert taken, name
    assert outcome(protocol.parse_request, der) == outcome(protocol._full_parse, der)


def test_more_certificates_than_the_limit_are_malformed():
    """limits.max_request_certs: one certificate over the limit is a malformedRequest,
    whichever parser reads the request; the limit itself is answered."""
    der = CASES["nine certs"]
    with pytest.raises(protocol.MalformedRequest, match=r"9 certificates in one request \(limit 8\)"):
        protocol.parse_request(der, 8)
    with pytest.raises(protocol.MalformedRequest):
        protocol.RequestParser(8).parse(der)
    assert outcome(protocol._full_parse, der) == "malformed"
    for parsed in (protocol.parse_request(der, 9), protocol.RequestParser(9).parse(der)):
        assert [cert.serial for cert in parsed.certs] == list(range(9))


def test_a_critical_nonce_is_echoed_without_its_flag():
    """RFC 6960 §4.4: response extensions SHOULD NOT be critical; the octets stay the client's."""
    octets = core.OctetString(os.urandom(16)).dump()
    plain = protocol._Extension({"extn_id": NONCE, "extn_value": octets}).dump()
    for critical in (True, False, None):
        der = request_der(nonce=octets, nonce_critical=critical)
        parsed = protocol.parse_request(der, 8)
        assert parsed.nonce_extension == plain and parsed.nonce_length == 16, critical
        echoed = protocol._Extension.load(parsed.nonce_extension)
        assert echoed["critical"].native is False and echoed["extn_value"].contents == octets


def test_walker_reads_what_the_full_parser_reads():
    der = CASES["nonce der"]
    parsed = protocol._fast_parse(der, 8)
    assert parsed.nonce_length == 16 and parsed.certs[0].serial == 7
    assert parsed.certs[0].cert_id_der == asn1_ocsp.OCSPRequest.load(der)["tbs_request"]["request_list"][0][
        "req_cert"].dump()


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(sorted(CASES)), position=st.integers(0, 400), value=st.integers(0, 255),
       action=st.sampled_from(["replace", "insert", "delete", "truncate"]))
def test_mutated_requests_never_accepted_by_walker_alone(case, position, value, action):
    der = mutated(CASES[case], position, value, action)
    assert_agree(der)
    assert outcome(protocol.parse_request, der) == outcome(protocol._full_parse, der)


def nonce_octets(der: bytes):
    layout = protocol._fast_parse(der, 8).nonce_layout
    assert layout is not None
    return layout


def test_request_parser_reuses_a_shape_only_for_another_nonce():
    parser = protocol.RequestParser(8)
    first = CASES["nonce der"]
    extension_start, extension_end, start, end = nonce_octets(first)
    assert parser.parse(first) == protocol.parse_request(first, 8)
    for _round in range(20):
        other = first[:start] + os.urandom(end - start) + first[end:]
        got = parser.parse(other)
        assert got == protocol.parse_request(other, 8)
        assert got.nonce_extension == other[extension_start:extension_end]
    assert parser.reused == 20 and len(parser._shapes) == 1, "another nonce is the same shape"
    # A raw (RFC 2560-era) nonce has no OCTET STRING to delimit: never remembered.
    raw = CASES["nonce raw"]
    assert protocol._fast_parse(raw, 8).nonce_layout is None
    for _round in range(2):
        assert parser.parse(raw) == protocol.parse_request(raw, 8)
    assert parser.reused == 20 and len(parser._shapes) == 1


def test_request_parser_memory_is_bounded():
    parser = protocol.RequestParser(8, max_shapes=3, max_bytes=10_000)
    for serial in range(10):
        parser.parse(request_der(((SHA1, serial),), nonce=core.OctetString(os.urandom(16)).dump()))
        assert len(parser._shapes) <= 3
    parser.max_shapes = 1000
    for round_number in range(30):  # ~1 KB each, all different: the byte bound empties it
        parser.parse(request_der(tuple((SHA256, n + 100 * round_number) for n in range(8)),
                                 nonce=core.OctetString(os.urandom(16)).dump()))
        assert 0 < parser._bytes <= 10_000


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(["nonce der", "nonce 129", "nonce then another extension", "two certs and a nonce"]),
       position=st.integers(0, 400),
       value=st.integers(0, 255), action=st.sampled_from(["replace", "insert", "delete", "truncate", "nonce"]))
def test_request_parser_agrees_with_parse_request_on_mutations(case, position, value, action):
    """A parser that has seen the request answers every variant exactly as a fresh parse:
    a changed byte outside the nonce octets is a new shape, never a hit."""
    parser = protocol.RequestParser(8)
    original = CASES[case]
    parser.parse(original)
    if action == "nonce":
        _extension_start, _extension_end, start, end = nonce_octets(original)
        der = mutated(original, start + position % (end - start), value, "replace")
    else:
        der = mutated(original, position, value, action)
    assert outcome(lambda request, _limit: parser.parse(request), der) == outcome(protocol.parse_request, der)
    if action == "nonce":
        assert parser.reused == 1, "a new nonce in a known request is a reused parse"
