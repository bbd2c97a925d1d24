"""GET path decoding (RFC 6960 Appendix A.1 / RFC 9919): what clients and proxies do to
base64 in a URL."""
from __future__ import annotations

import base64
from urllib.parse import quote

import pytest

from ocsp_responder.http import BadGetPath, decode_get_path, origin_form

# 3-byte aligned groups that encode to "++++" and "////", and a length that needs "==".
DER = bytes.fromhex("304330413000") + b"\xfb\xef\xbe\xff\xff\xff" + bytes(range(40))
ENCODED = base64.b64encode(DER).decode()


def test_sample_has_all_awkward_characters():
    assert "++++" in ENCODED and "////" in ENCODED and ENCODED.endswith("==")


@pytest.mark.parametrize("tail", [
    ENCODED,                                          # raw: '+', '/' and '=' left as they are
    quote(ENCODED, safe=""),                          # everything reserved percent-encoded
    "".join(f"%{ord(c):02x}" for c in ENCODED),       # every character, lower-case hex
    quote(ENCODED, safe="/"),                         # '/' raw, '+' and '=' encoded
    quote(ENCODED, safe="+="),                        # '+' raw
    ENCODED.replace("+", " "),                        # '+' decoded to space by a form decoder
    quote(ENCODED, safe="").replace("%2B", "+"),
    ENCODED.rstrip("="),                              # padding dropped
    quote(ENCODED.rstrip("="), safe=""),
    "/" + ENCODED,                                    # repeated slash after the prefix
    "///" + quote(ENCODED, safe=""),
    ENCODED.replace("+", "-").replace("/", "_").rstrip("="),  # base64url
])
def test_decodes(tail):
    assert decode_get_path(tail) == DER


@pytest.mark.parametrize("tail", ["", "/", "A", "AAAAA", "MEM!", "%ZZ", "MEMw\x00", "MEMw%00", "ü"])
def test_rejects(tail):
    with pytest.raises((BadGetPath, UnicodeDecodeError)):
        decode_get_path(tail)


@pytest.mark.parametrize("target,path", [
    ("/ocsp/MEMw", "/ocsp/MEMw"),
    ("http://ocsp.example:8080/ocsp/MEMw%2B", "/ocsp/MEMw%2B"),   # absolute-form, RFC 9112 §3.2.2
    ("https://ocsp.example/", "/"),
    ("http://ocsp.example", "/"),
    ("MEMw", "MEMw"),                                              # neither: left to the routing to refuse
])
def test_origin_form(target, path):
    assert origin_form(target) == path
