"""Pre-signed response cache (ocsp_responder.cache): never past nextUpdate, never a
status other than the one in service, bounded."""
from __future__ import annotations

import email.utils
import hashlib

from ocsp_responder.cache import ResponseCache, SignedResponse
from ocsp_responder.status_source import GOOD

REVOKED = ("revoked", 1700000000, 1)


def entry(der=b"resp", status=GOOD, this_update=1000.0, next_update=2000.0, serial=1):
    return SignedResponse.create(der, serial, status, this_update, next_update)


def test_http_validators():
    item = entry(der=b"abc")
    assert item.etag == '"%s"' % hashlib.sha256(b"abc").hexdigest()  # RFC 9919 §7.2
    assert email.utils.parsedate_to_datetime(item.last_modified).timestamp() == 1000
    assert email.utils.parsedate_to_datetime(item.expires).timestamp() == 2000


def test_never_served_at_or_past_next_update():
    """docs/responder.md: "A cached answer is served only until 5 s before its nextUpdate"."""
    cache = ResponseCache(10)
    cache.put((0, b"id"), entry())
    assert cache.get((0, b"id"), GOOD, 1500.0) is not None
    assert cache.get((0, b"id"), GOOD, 1994.9) is not None
    assert cache.get((0, b"id"), GOOD, 1995.0) is None
    assert cache.get((0, b"id"), GOOD, 2500.0) is None


def test_not_served_when_status_in_service_differs():
    cache = ResponseCache(10)
    cache.put((0, b"id"), entry(status=GOOD))
    assert cache.get((0, b"id"), REVOKED, 1500.0) is None
    assert cache.get((0, b"id"), None, 1500.0) is None
    cache.put((0, b"id"), entry(status=("revoked", 1700000000, 1)))  # equal value, other object
    assert cache.get((0, b"id"), REVOKED, 1500.0) is not None


def test_bounded_oldest_first_and_refresh_moves_to_end():
    cache = ResponseCache(3)
    for key in (b"a", b"b", b"c"):
        cache.put((0, key), entry())
    cache.put((0, b"a"), entry(der=b"new"))  # re-signed: now the youngest
    cache.put((0, b"d"), entry())
    assert not cache.contains((0, b"b"))
    assert all(cache.contains((0, key)) for key in (b"a", b"c", b"d"))
    assert len(cache) == 3


def test_due_for_refresh():
    cache = ResponseCache(10)
    cache.put((0, b"soon"), entry(next_update=1100.0, serial=7))
    cache.put((0, b"later"), entry(next_update=5000.0))
    due = cache.due_for_refresh(1000.0, margin=200.0)
    assert [(key, item.serial) for key, item in due] == [((0, b"soon"), 7)]


def test_disabled_cache():
    cache = ResponseCache(0)
    cache.put((0, b"id"), entry())
    assert len(cache) == 0
