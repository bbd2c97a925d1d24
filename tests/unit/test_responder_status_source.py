"""index.txt parsing and change detection (ocsp_responder.status_source)."""
from __future__ import annotations

import calendar
import os
import threading

import pytest

from ocsp_responder.status_source import (GOOD, IndexFormatError, IndexSource, changed_serials, parse_index,
                                          parse_index_time)

# Lines as `openssl ca` writes them (V, R with and without reason, E, hold, keyTime).
INDEX = (
    "V\t271205141456Z\t\t1000\tunknown\t/CN=ocsp-signer\n"
    "R\t271205141457Z\t261125141457Z,keyCompromise\t1002\tunknown\t/CN=revoked\n"
    "R\t271205141457Z\t261125141500Z\t1003\tunknown\t/CN=no reason\n"
    "E\t201205141457Z\t\t0A\tunknown\t/CN=expired\n"
    "R\t271205141457Z\t261125141501Z,holdInstruction,1.2.840.10040.2.2\t1004\tunknown\t/CN=held\n"
    "R\t271205141457Z\t261125141502Z,keyTime,20261101000000Z\t1005\tunknown\t/CN=key time\n"
    "R\t20510101000000Z\t20500101000000Z,CACompromise\tABCDEF0123456789ABCDEF0123456789ABCDEF01\tunknown\t/CN=long\n"
)


def ts(*parts) -> int:
    return calendar.timegm(parts + (0, 0, 0))


def test_parse_openssl_index():
    table = parse_index(INDEX.encode())
    assert table[0x1000] is GOOD
    assert table[0x0A] is GOOD  # expired entries are still answered
    assert table[0x1002] == ("revoked", ts(2026, 11, 25, 14, 14, 57), 1)
    assert table[0x1003] == ("revoked", ts(2026, 11, 25, 14, 15, 0), -1)
    assert table[0x1004] == ("revoked", ts(2026, 11, 25, 14, 15, 1), 6)
    assert table[0x1005] == ("revoked", ts(2026, 11, 25, 14, 15, 2), 1)
    assert table[0xABCDEF0123456789ABCDEF0123456789ABCDEF01] == ("revoked", ts(2050, 1, 1, 0, 0, 0), 2)


def test_comment_lines_skipped_as_openssl_does():
    table = parse_index(b"# written by hand\n" + INDEX.encode() + b"#\tV\tnot\tan\tentry\t\n")
    assert table == parse_index(INDEX.encode())


def test_remove_from_crl_is_good_again():
    # RFC 5280 §5.3.1: released from hold; "revoked" in OCSP means revoked or on hold.
    table = parse_index(b"R\t271205141457Z\t261125141457Z,removeFromCRL\t1006\tunknown\t/CN=released\n")
    assert table[0x1006] is GOOD


def test_empty_index_is_valid():
    assert parse_index(b"") == {}


@pytest.mark.parametrize("text", ["50", "49"])
def test_utctime_century_rule(text):
    year = 1950 if text == "50" else 2049
    assert parse_index_time(text + "0101000000Z") == ts(year, 1, 1, 0, 0, 0)


@pytest.mark.parametrize("data,message", [
    (b"V\t271205141456Z\t\t1000\tunknown\t/CN=x", "not terminated"),
    (b"V\t271205141456Z\t\t1000\tunknown\n", "line 8: expected 6 tab-separated fields"),
    (b"X\t271205141456Z\t\t1000\tunknown\t/CN=x\n", "line 8: unknown status"),
    (b"V\t271205141456Z\t\tXYZ\tunknown\t/CN=x\n", "line 8: invalid literal"),
    (b"R\t271205141456Z\t\t1000\tunknown\t/CN=x\n", "line 8: bad time"),
    (b"R\t271205141456Z\t2613Z\t1000\tunknown\t/CN=x\n", "line 8: bad time"),
    (b"R\t271205141456Z\t261325141457Z\t1000\tunknown\t/CN=x\n", "line 8: bad time"),
    (b"R\t271205141456Z\t261125141457Z,notAReason\t1000\tunknown\t/CN=x\n", "line 8: unknown revocation reason"),
    (b"V\t271205141456Z\t261125141457Z\t1000\tunknown\t/CN=x\n", "line 8: revocation field set"),
    (b"V\t271205141456Z\t\t1000\tunknown\t/CN=\xff\n", "not UTF-8 at byte %d" % (len(INDEX) + 34)),
])
def test_corrupt_index_rejected_as_a_whole(data, message):
    """A bad line after seven good ones (INDEX) rejects the whole file, and the error
    names that line."""
    with pytest.raises(IndexFormatError, match=message):
        parse_index(INDEX.encode() + data)


def test_changed_serials():
    old = {1: GOOD, 2: GOOD, 3: ("revoked", 5, 1)}
    new = {1: GOOD, 2: ("revoked", 9, 4), 4: GOOD}
    assert changed_serials(old, new) == {2, 3, 4}


def test_source_keeps_last_good_table(tmp_path):
    path = tmp_path / "index.txt"
    path.write_bytes(INDEX.encode())
    source = IndexSource(str(path), "test")
    assert source.check() == set(parse_index(INDEX.encode()))
    assert source.check() is None  # unchanged: one stat, no parse
    table = source.table
    path.write_bytes(INDEX.encode() + b"garbage\n")
    assert source.check() is None
    assert source.table is table and source.error and "line 8" in source.error
    assert source.healthy(None, 0.5) == (False, source.error)
    path.write_bytes(INDEX.encode().replace(b"V\t271205141456Z\t\t1000", b"R\t271205141456Z\t261201000000Z\t1000"))
    assert source.check() == {0x1000}
    assert source.error is None and source.table[0x1000][0] == "revoked"
    assert source.healthy(None, 0.5) == (True, "ok")


def test_source_holds_back_an_index_rewritten_in_place(tmp_path):
    """Truncated, then written: until the writer finishes, the file is a prefix of itself
    that parses. It must not replace the table in service (its last serials would be
    answered unknown, or revoked under unknown_serial_policy: revoked)."""
    path = tmp_path / "index.txt"
    path.write_bytes(INDEX.encode())
    source = IndexSource(str(path), "test")
    source.check()
    table = source.table
    lines = INDEX.encode().splitlines(keepends=True)
    for partial in (b"", b"".join(lines[:3])):
        with open(path, "wb") as handle:  # in place: same inode
            handle.write(partial)
        assert source.check() is None
        assert source.table is table
        assert "serials of the index in service are missing" in source.error
        assert source.healthy(None, 0.5)[0] is False
    revoked = INDEX.encode().replace(b"V\t271205141456Z\t\t1000", b"R\t271205141456Z\t261201000000Z\t1000")
    with open(path, "wb") as handle:
        handle.write(revoked + b"V\t271205141456Z\t\t2000\tunknown\t/CN=new\n")
    assert source.check() == {0x1000, 0x2000}
    assert source.error is None and source.healthy(None, 0.5) == (True, "ok")
    path.write_bytes(b"".join(lines[:3]))
    assert source.check() is None and len(source.table) == len(table) + 1
    assert {0x1000, 0x2000} <= source.check(force=True)  # SIGHUP: loaded as it is
    assert sorted(source.table) == [0x1000, 0x1002, 0x1003] and source.error is None


def test_source_missing_file_then_back(tmp_path):
    path = tmp_path / "index.txt"
    source = IndexSource(str(path), "test")
    assert source.check(force=True) is None and not source.loaded
    assert source.healthy(None, 0.5)[0] is False
    path.write_bytes(INDEX.encode())
    assert source.check()
    assert source.loaded and source.healthy(None, 0.5)[0]
    os.rename(path, tmp_path / "index.txt.old")
    source.check()
    assert source.error and source.table  # keeps serving
    os.rename(tmp_path / "index.txt.old", path)
    source.check()
    assert source.error is None


def test_source_index_max_age(tmp_path):
    path = tmp_path / "index.txt"
    path.write_bytes(INDEX.encode())
    os.utime(path, (1, 1))
    source = IndexSource(str(path), "test")
    source.check()
    assert source.healthy(3600, 0.5)[0] is False
    assert source.healthy(None, 0.5)[0] is True


def test_memory_per_entry_is_small():
    """1,000 revoked + 9,000 valid entries: well under the 2 KiB/entry budget."""
    import tracemalloc

    lines = []
    for serial in range(10000):
        if serial % 10 == 0:
            lines.append(f"R\t271205141456Z\t261125141457Z,superseded\t{serial + 0x10000000000000000000:X}\tunknown\t/CN=x\n")
        else:
            lines.append(f"V\t271205141456Z\t\t{serial + 0x10000000000000000000:X}\tunknown\t/CN=host{serial}.example\n")
    data = "".join(lines).encode()
    tracemalloc.start()
    table = parse_index(data)
    current, _peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(table) == 10000
    assert current / len(table) < 512


def test_source_sees_a_same_size_rewrite_with_its_mtime_set_back(tmp_path):
    """cp -p, rsync -t and tar restore the mtime; only the ctime tells."""
    path = tmp_path / "index.txt"
    path.write_bytes(INDEX.encode())
    source = IndexSource(str(path), "test")
    source.check()
    before = os.stat(path)
    released = INDEX.encode().replace(b"261125141457Z,keyCompromise", b"261125141457Z,removeFromCRL")
    assert len(released) == len(INDEX.encode()) and released != INDEX.encode()
    with open(path, "r+b") as handle:  # in place: same inode, same size
        handle.write(released)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    changed = source.check()
    assert changed and all(source.table[serial] == GOOD for serial in changed)


def test_source_health_follows_the_file_on_disk(tmp_path):
    """A refused file that vanishes for a moment and comes back is still refused (health
    went green over it); the file in service coming back clears an error about another."""
    path, aside = tmp_path / "index.txt", tmp_path / "aside"
    path.write_bytes(INDEX.encode())
    source = IndexSource(str(path), "test")
    source.check()
    (tmp_path / "broken").write_bytes(INDEX.encode() + b"garbage\n")
    os.rename(path, aside)
    os.rename(tmp_path / "broken", path)
    assert source.check() is None and "line 8" in source.error
    os.rename(path, tmp_path / "broken")
    source.check()
    assert "cannot stat" in source.error
    os.rename(tmp_path / "broken", path)
    source.check()
    assert "line 8" in source.error and source.healthy(None, 0.5)[0] is False
    os.rename(aside, path)  # the file in service, back
    source.check()
    assert source.error is None and source.healthy(None, 0.5) == (True, "ok")


def test_source_missing_between_openssl_renames_is_no_error(tmp_path):
    """openssl ca: index.txt -> index.txt.old, then index.txt.new -> index.txt. A check
    in between waits a moment for the new file instead of raising an alarm."""
    path = tmp_path / "index.txt"
    path.write_bytes(INDEX.encode())
    source = IndexSource(str(path), "test")
    source.check()
    revoked = INDEX.encode().replace(b"V\t271205141456Z\t\t1000", b"R\t271205141456Z\t261201000000Z\t1000")
    (tmp_path / "index.txt.new").write_bytes(revoked)
    os.rename(path, tmp_path / "index.txt.old")
    renamer = threading.Timer(0.01, os.rename, (tmp_path / "index.txt.new", path))
    renamer.start()
    try:
        assert source.check() == {0x1000}
    finally:
        renamer.join()
    assert source.error is None and source.reloads_failed == 0
