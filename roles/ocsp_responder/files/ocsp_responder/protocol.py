"""OCSP messages on the wire (RFC 6960 §4): request parsing and response encoding.

Requests are parsed with asn1crypto because cryptography's parser takes one certificate
per request only. Responses are assembled from DER pieces: the CertID is copied byte
for byte from the request (so the hash algorithm, and even the NULL-or-absent parameter
choice a client made, is echoed exactly), the rest is a handful of fixed structures.
This is the hot path of live signing, where a general ASN.1 object model would cost
more than an ECDSA signature."""
from __future__ import annotations

import datetime
import functools
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp

# OCSPResponseStatus (RFC 6960 §4.2.1)
SUCCESSFUL = 0
MALFORMED_REQUEST = 1
INTERNAL_ERROR = 2
TRY_LATER = 3
SIG_REQUIRED = 5
UNAUTHORIZED = 6
STATUS_NAMES = {
    MALFORMED_REQUEST: "malformedRequest",
    INTERNAL_ERROR: "internalError",
    TRY_LATER: "tryLater",
    SIG_REQUIRED: "sigRequired",
    UNAUTHORIZED: "unauthorized",
}

NONCE_MAX_OCTETS = 128  # RFC 9654 §2.1

_OID_BASIC = bytes.fromhex("06092b0601050507300101")
_OID_NONCE = bytes.fromhex("06092b0601050507300102")
_OID_EXTENDED_REVOKE = bytes.fromhex("06092b0601050507300109")

HASH_OIDS = {"sha1": "1.3.14.3.2.26", "sha256": "2.16.840.1.101.3.4.2.1",
             "sha384": "2.16.840.1.101.3.4.2.2", "sha512": "2.16.840.1.101.3.4.2.3"}


class MalformedRequest(ValueError):
    """The body is not an OCSP request we can answer; the message says why (for logs)."""


# --- DER helpers ---------------------------------------------------------------------

def der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tag_and_length(tag: int, size: int) -> bytes:
    """The octets before ``size`` octets of content. The short lengths written out: this
    runs several times per live signature."""
    if size < 0x80:
        return bytes((tag, size))
    if size < 0x100:
        return bytes((tag, 0x81, size))
    if size < 0x10000:
        return bytes((tag, 0x82, size >> 8, size & 0xFF))
    return bytes((tag,)) + der_length(size)


def tlv(tag: int, content: bytes) -> bytes:
    return tag_and_length(tag, len(content)) + content


def sequence(*parts: bytes) -> bytes:
    return tlv(0x30, b"".join(parts))


@functools.lru_cache(maxsize=256)  # live signing repeats the same few seconds; strftime is slow
def generalized_time(moment: datetime.datetime) -> bytes:
    # The year zero-padded: strftime's %Y writes "999" for the year 999 (a hand-edited index).
    return tlv(0x18, f"{moment.year:04d}{moment:%m%d%H%M%S}Z".encode("ascii"))


def error_response(status: int) -> bytes:
    """OCSPResponse carrying only a non-successful status (never signed)."""
    return sequence(tlv(0x0A, bytes((status,))))


_EXTENDED_REVOKE_EXTENSION = sequence(_OID_EXTENDED_REVOKE, tlv(0x04, b"\x05\x00"))


# --- requests --------------------------------------------------------------------------

class CertRequest(NamedTuple):  # a tuple: made for every request, a frozen dataclass costs 4x
    hash_algorithm: str          # "sha1", "sha256", ... or the dotted OID if unsupported
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    cert_id_der: bytes           # echoed verbatim in the response


@dataclass
class OcspRequest:
    certs: List[CertRequest]
    nonce_extension: Optional[bytes] = None   # the request's whole Extension, DER
    nonce_length: Optional[int] = None
    # Set by the fast walker when the nonce is a DER OCTET STRING: (start, end) of the
    # Extension and of the nonce octets in the request (for RequestParser).
    nonce_layout: Optional[Tuple[int, int, int, int]] = field(default=None, compare=False)


class _Extension(core.Sequence):
    """An extension whose value stays opaque: asn1crypto's own spec would try to parse a
    nonce as an OCTET STRING and fail on the raw nonces of RFC 2560-era clients."""
    _fields = [("extn_id", core.ObjectIdentifier), ("critical", core.Boolean, {"default": False}),
               ("extn_value", core.OctetString)]


class _Extensions(core.SequenceOf):
    _child_spec = _Extension


def _replace_field(fields, name, spec):
    return [(field_name, spec, *rest) if field_name == name else (field_name, field_spec, *rest)
            for field_name, field_spec, *rest in fields]


class _TBSRequest(asn1_ocsp.TBSRequest):
    _fields = _replace_field(asn1_ocsp.TBSRequest._fields, "request_extensions", _Extensions)


class _OCSPRequest(asn1_ocsp.OCSPRequest):
    _fields = _replace_field(asn1_ocsp.OCSPRequest._fields, "tbs_request", _TBSRequest)


class _Unusual(Exception):
    """The fast walker met something it does not handle: asn1crypto decides."""


def _tlv_at(der: bytes, at: int, end: int) -> Tuple[int, int, int]:
    """(tag, content start, content end) of the DER TLV at ``at``; strict DER lengths
    (definite, minimal) and single-octet tags only, else _Unusual."""
    if at + 2 > end:
        raise _Unusual
    tag = der[at]
    if tag & 0x1F == 0x1F:
        raise _Unusual
    length = der[at + 1]
    at += 2
    if length & 0x80:
        octets = length & 0x7F
        if octets == 0 or octets > 3 or at + octets > end or der[at] == 0:
            raise _Unusual
        length = int.from_bytes(der[at:at + octets], "big")
        if length < 0x80:
            raise _Unusual
        at += octets
    if at + length > end:
        raise _Unusual
    return tag, at, at + length


_HASH_OID_DER = {bytes.fromhex("06052b0e03021a"): "sha1",
                 bytes.fromhex("0609608648016503040201"): "sha256",
                 bytes.fromhex("0609608648016503040202"): "sha384",
                 bytes.fromhex("0609608648016503040203"): "sha512"}
_OID_NONCE_CONTENT = _OID_NONCE[2:]


def _valid_oid_content(content: bytes) -> bool:
    if not content or content[-1] & 0x80:
        return False
    previous = 0
    for octet in content:  # no subidentifier may start with 0x80 (non-minimal)
        if octet == 0x80 and not previous & 0x80:
            return False
        previous = octet
    return True


def _fast_parse(der: bytes, max_certs: int) -> OcspRequest:
    """The common request, walked without an object model: no version, requestor name,
    per-certificate extensions or signature; CertIDs with a known hash; extensions well
    formed. Anything else raises _Unusual and the full parser takes over, so this never
    accepts what the full parser would reject, nor answers it differently."""
    end = len(der)
    tag, start, stop = _tlv_at(der, 0, end)
    if tag != 0x30 or stop != end:
        raise _Unusual
    tag, start, tbs_end = _tlv_at(der, start, end)
    if tag != 0x30 or tbs_end != end:   # a trailing optionalSignature: full parser
        raise _Unusual
    tag, at, list_end = _tlv_at(der, start, tbs_end)
    if tag != 0x30:                      # version or requestorName present
        raise _Unusual
    certs = []
    while at < list_end:
        tag, request_start, request_end = _tlv_at(der, at, list_end)
        if tag != 0x30:
            raise _Unusual
        tag, cert_start, cert_end = _tlv_at(der, request_start, request_end)
        if tag != 0x30 or cert_end != request_end:   # singleRequestExtensions: full parser
            raise _Unusual
        tag, alg_start, alg_end = _tlv_at(der, cert_start, cert_end)
        if tag != 0x30:
            raise _Unusual
        tag, oid_start, oid_end = _tlv_at(der, alg_start, alg_end)
        algorithm = _HASH_OID_DER.get(der[alg_start:oid_end]) if tag == 0x06 else None
        if algorithm is None or (oid_end != alg_end and der[oid_end:alg_end] != b"\x05\x00"):
            raise _Unusual
        tag, name_start, name_end = _tlv_at(der, alg_end, cert_end)
        if tag != 0x04:
            raise _Unusual
        tag, key_start, key_end = _tlv_at(der, name_end, cert_end)
        if tag != 0x04:
            raise _Unusual
        tag, serial_start, serial_end = _tlv_at(der, key_end, cert_end)
        if tag != 0x02 or serial_end != cert_end or serial_start == serial_end:
            raise _Unusual
        if serial_end - serial_start > 1 and (
                (der[serial_start] == 0 and der[serial_start + 1] < 0x80)
                or (der[serial_start] == 0xFF and der[serial_start + 1] >= 0x80)):
            raise _Unusual  # non-minimal INTEGER
        certs.append(CertRequest(algorithm, der[name_start:name_end], der[key_start:key_end],
                                 int.from_bytes(der[serial_start:serial_end], "big", signed=True),
                                 der[request_start:cert_end]))  # the CertID TLV opens the Request
        at = request_end
    if not certs or len(certs) > max_certs:
        raise _Unusual  # the full parser words the error
    parsed = OcspRequest(certs)
    if list_end != tbs_end:
        tag, ext_start, ext_end = _tlv_at(der, list_end, tbs_end)
        if tag != 0xA2 or ext_end != tbs_end:
            raise _Unusual
        tag, at, seq_end = _tlv_at(der, ext_start, ext_end)
        if tag != 0x30 or seq_end != ext_end:
            raise _Unusual
        seen_oids = []
        while at < seq_end:
            tag, field_at, extension_end = _tlv_at(der, at, seq_end)
            if tag != 0x30:
                raise _Unusual
            tag, oid_start, oid_end = _tlv_at(der, field_at, extension_end)
            if tag != 0x06 or not _valid_oid_content(der[oid_start:oid_end]):
                raise _Unusual
            oid = der[oid_start:oid_end]
            if oid in seen_oids:
                raise _Unusual  # a repeated extension: the full parser refuses it
            seen_oids.append(oid)
            tag, value_start, value_end = _tlv_at(der, oid_end, extension_end)
            if tag == 0x01:  # critical
                if value_end - value_start != 1 or der[value_start] not in (0x00, 0xFF):
                    raise _Unusual
                if der[value_start]:
                    # The full parser knows which critical extensions we understand, and
                    # echoes a critical nonce without its flag.
                    raise _Unusual
                tag, value_start, value_end = _tlv_at(der, value_end, extension_end)
            if tag != 0x04 or value_end != extension_end:
                raise _Unusual
            if oid == _OID_NONCE_CONTENT:
                parsed.nonce_extension = der[at:extension_end]
                try:
                    tag, octets_start, octets_end = _tlv_at(der, value_start, value_end)
                except _Unusual:
                    tag = None
                if tag == 0x04 and octets_end == value_end:  # the nonce as a DER OCTET STRING
                    parsed.nonce_length = octets_end - octets_start
                    parsed.nonce_layout = (at, extension_end, octets_start, octets_end)
                else:  # raw or unusual: nonce_length's fallbacks decide
                    parsed.nonce_length = nonce_length(der[value_start:value_end])
                    parsed.nonce_layout = None
            at = extension_end
    return parsed


def parse_request(der: bytes, max_certs: int) -> OcspRequest:
    """Parse and validate; every failure is a MalformedRequest (-> malformedRequest).
    The common request takes the fast walker; anything unusual the full parser."""
    if not der:
        raise MalformedRequest("empty request")
    try:
        return _fast_parse(der, max_certs)
    except _Unusual:
        return _full_parse(der, max_certs)


class RequestParser:
    """parse_request, remembering requests that carry a nonce. A client that sends nonces
    sends the same bytes every time but for the nonce octets; a request of the same length
    whose bytes before and after the nonce octets are those of one read before is that
    request with another nonce: same certificates, same nonce length, only the extension
    bytes are new. Only what the strict walker read with the nonce as a DER OCTET STRING
    is remembered: nothing the walker checks lies inside the nonce octets."""

    WINDOWS_PER_LENGTH = 8

    def __init__(self, max_certs: int, max_shapes: int = 4096, max_bytes: int = 4 << 20):
        self.max_certs = max_certs
        self.max_shapes = max_shapes
        self.max_bytes = max_bytes      # of request bytes remembered: a flood of big requests stays bounded
        self.reused = 0                 # parses answered from a remembered shape
        self._bytes = 0
        self._windows: Dict[int, List[Tuple[int, int]]] = {}  # request length -> nonce octets (start, end) seen
        # (length, bytes before the nonce octets, bytes after) -> (certs, extension start, end, nonce length)
        self._shapes: Dict[Tuple[int, bytes, bytes], tuple] = {}

    def parse(self, der: bytes) -> OcspRequest:
        size = len(der)
        for start, end in self._windows.get(size, ()):
            shape = self._shapes.get((size, der[:start], der[end:]))
            if shape is not None:
                certs, extension_start, extension_end, length = shape
                self.reused += 1
                return OcspRequest(list(certs), der[extension_start:extension_end], length)
        request = parse_request(der, self.max_certs)
        if request.nonce_layout is not None:
            self._remember(der, request)
        return request

    def _remember(self, der: bytes, request: OcspRequest) -> None:
        extension_start, extension_end, start, end = request.nonce_layout
        if len(self._shapes) >= self.max_shapes or self._bytes + len(der) > self.max_bytes:
            self._shapes.clear()  # bounded: a flood of shapes only empties it
            self._windows.clear()
            self._bytes = 0
        windows = self._windows.setdefault(len(der), [])
        if (start, end) not in windows:
            if len(windows) >= self.WINDOWS_PER_LENGTH:
                return
            windows.append((start, end))
        self._bytes += len(der)
        self._shapes[(len(der), der[:start], der[end:])] = (
            tuple(request.certs), extension_start, extension_end, request.nonce_length)


# Extensions we act on or may ignore, so a client may mark them critical (RFC 6960 §4.4):
# the nonce; AcceptableResponses (we answer id-pkix-ocsp-basic, which every client must
# accept, §4.4.3); PreferredSignatureAlgorithms (a preference, §4.4.7); and in a single
# request the ServiceLocator (we answer for our issuers ourselves, §4.4.6).
_UNDERSTOOD_REQUEST_EXTENSIONS = {"1.3.6.1.5.5.7.48.1.2", "1.3.6.1.5.5.7.48.1.4", "1.3.6.1.5.5.7.48.1.8"}
_UNDERSTOOD_SINGLE_EXTENSIONS = {"1.3.6.1.5.5.7.48.1.7"}


def _check_extensions(extensions, understood: set, where: str) -> None:
    seen = set()
    for extension in extensions or ():
        oid = extension["extn_id"].dotted
        if oid in seen:  # RFC 5280 §4.2: an extension appears at most once
            raise MalformedRequest(f"{where} extension {oid} appears twice")
        seen.add(oid)
        if extension["critical"].native and oid not in understood:
            raise MalformedRequest(f"critical {where} extension {oid} is not supported")


def _full_parse(der: bytes, max_certs: int) -> OcspRequest:
    try:
        request = _OCSPRequest.load(der, strict=True)
        tbs = request["tbs_request"]
        if tbs["version"].native != "v1":
            raise MalformedRequest("unsupported request version")
        request_list = tbs["request_list"]
        if len(request_list) == 0:
            raise MalformedRequest("no certificate in the request")
        if len(request_list) > max_certs:
            raise MalformedRequest(f"{len(request_list)} certificates in one request (limit {max_certs})")
        certs = []
        for single in request_list:
            cert_id = single["req_cert"]
            algorithm = cert_id["hash_algorithm"]["algorithm"]
            parameters = cert_id["hash_algorithm"]["parameters"]
            # RFC 5754 §2: absent or NULL. Anything else would be echoed in the CertID of
            # a response that clients' parsers reject.
            if not isinstance(parameters, core.Void) and parameters.dump() != b"\x05\x00":
                raise MalformedRequest("hash algorithm parameters other than NULL")
            name = algorithm.native
            certs.append(CertRequest(
                hash_algorithm=name if name in HASH_OIDS else algorithm.dotted,
                issuer_name_hash=cert_id["issuer_name_hash"].native,
                issuer_key_hash=cert_id["issuer_key_hash"].native,
                serial=cert_id["serial_number"].native,
                cert_id_der=cert_id.dump(),
            ))
            _check_extensions(single["single_request_extensions"], _UNDERSTOOD_SINGLE_EXTENSIONS, "singleRequest")
        parsed = OcspRequest(certs)
        _check_extensions(tbs["request_extensions"], _UNDERSTOOD_REQUEST_EXTENSIONS, "request")
        for extension in tbs["request_extensions"] or ():
            if extension["extn_id"].dotted == "1.3.6.1.5.5.7.48.1.2":
                # Echoed without a critical flag: RFC 6960 §4.4 says response extensions
                # SHOULD NOT be critical; the nonce octets stay the client's.
                parsed.nonce_extension = (sequence(extension["extn_id"].dump(), extension["extn_value"].dump())
                                          if extension["critical"].native else extension.dump())
                parsed.nonce_length = nonce_length(extension["extn_value"].contents)
        _check_optional_signature(request["optional_signature"])
    except MalformedRequest:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError) as exc:
        raise MalformedRequest(f"not a DER OCSPRequest: {type(exc).__name__}") from None
    return parsed


def _check_optional_signature(signature) -> None:
    """A broken signature is malformed, but the certificates it carries are never used
    (request signatures are not verified): only their headers are read, not their
    insides, whose nesting the client chooses (a few KB of nested SEQUENCEs cost a
    recursive decoder 100 ms, a few more a RecursionError)."""
    if isinstance(signature, core.Void):
        return
    signature["signature_algorithm"].native
    signature["signature"].native
    certs = signature["certs"]
    if not isinstance(certs, core.Void):
        len(certs)  # parses each certificate's header, nothing below it


def nonce_length(extn_value: bytes) -> int:
    """Octets of the nonce. RFC 6960/9654 put a DER OCTET STRING inside extnValue;
    clients of the RFC 2560 era put the raw bytes there, so fall back to that length."""
    try:
        tag, start, end = _tlv_at(extn_value, 0, len(extn_value))
        if tag == 0x04 and end == len(extn_value):
            return end - start
    except _Unusual:
        pass
    try:
        inner = core.OctetString.load(extn_value, strict=True)
        return len(inner.native)
    except (ValueError, TypeError):
        return len(extn_value)


# --- responses -------------------------------------------------------------------------

class SingleAnswer(NamedTuple):
    cert_id_der: bytes
    status: str                  # good | revoked | unknown
    revoked_at: Optional[datetime.datetime] = None
    reason: int = -1


def _cert_status(answer: SingleAnswer) -> bytes:
    if answer.status == "good":
        return b"\x80\x00"
    if answer.status == "unknown":
        return b"\x82\x00"
    info = generalized_time(answer.revoked_at)
    if answer.reason >= 0:
        info += tlv(0xA0, tlv(0x0A, bytes((answer.reason,))))
    return tlv(0xA1, info)


def single_response(answer: SingleAnswer, this_update: datetime.datetime, next_update: datetime.datetime) -> bytes:
    return sequence(answer.cert_id_der, _cert_status(answer), generalized_time(this_update),
                    tlv(0xA0, generalized_time(next_update)))


def tbs_head(signer, responder_id_mode: str, singles: Sequence[bytes], produced_at: datetime.datetime) -> bytes:
    """The fields of a ResponseData before its extensions: responderID, producedAt,
    responses."""
    return signer.responder_id(responder_id_mode) + generalized_time(produced_at) + sequence(*singles)


def build_response(signer, head: bytes, nonce_extension: Optional[bytes] = None,
                   extended_revoke: bool = False) -> bytes:
    """A successful OCSPResponse with a BasicOCSPResponse signed by ``signer``; ``head``
    from tbs_head."""
    if nonce_extension is None and not extended_revoke:
        tbs = tlv(0x30, head)
    else:
        extensions = (nonce_extension or b"") + (_EXTENDED_REVOKE_EXTENSION if extended_revoke else b"")
        tbs = tlv(0x30, head + tlv(0xA1, tlv(0x30, extensions)))
    signature = signer.sign(tbs)
    # Written outside in, from the lengths, and joined once: the signature and the signer
    # certificate are copied once instead of once per enclosing structure.
    certs = signer.certs_field
    bits = tag_and_length(0x03, len(signature) + 1)
    basic_size = len(tbs) + len(signer.algorithm_der) + len(bits) + 1 + len(signature) + len(certs)
    basic = tag_and_length(0x30, basic_size)
    octets = tag_and_length(0x04, len(basic) + basic_size)
    response_bytes_size = len(_OID_BASIC) + len(octets) + len(basic) + basic_size
    response_bytes = tag_and_length(0x30, response_bytes_size)
    explicit = tag_and_length(0xA0, len(response_bytes) + response_bytes_size)
    outer = tag_and_length(0x30, 3 + len(explicit) + len(response_bytes) + response_bytes_size)
    return b"".join((outer, b"\x0a\x01\x00", explicit, response_bytes, _OID_BASIC, octets, basic,
                     tbs, signer.algorithm_der, bits, b"\x00", signature, certs))


def response_summary(response_der: bytes) -> Tuple[int, List[str]]:
    """(responseStatus, [cert status names]) of a response: for logs and tests."""
    parsed = asn1_ocsp.OCSPResponse.load(response_der)
    status = parsed["response_status"].native
    code = {v: k for k, v in asn1_ocsp.OCSPResponseStatus._map.items()}[status]
    if code != SUCCESSFUL:
        return code, []
    basic = parsed["response_bytes"]["response"].parsed
    return code, [single["cert_status"].name for single in basic["tbs_response_data"]["responses"]]
