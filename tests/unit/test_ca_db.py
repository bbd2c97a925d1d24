"""index.txt format, serials, transitions and the locked database (module_utils/ca_db.py)."""
from __future__ import annotations

import datetime
import fcntl
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from tests.helpers.ca_factory import ApiCA, OpensslCA, name

from ansible_collections.pkiops.ocsp.plugins.module_utils import ca_db
from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_db import (
    CADatabase,
    IndexEntry,
    IndexFormatError,
    format_index,
    openssl_oneline_subject,
    parse_index,
    parse_index_line,
    revoked_entry,
    serial_to_hex,
    unheld_entry,
)
from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_dir import CAError
from ansible_collections.pkiops.ocsp.plugins.module_utils.fileops import atomic_write

UTC = datetime.timezone.utc


def dt(*args):
    return datetime.datetime(*args, tzinfo=UTC)


# Lines as OpenSSL 3 writes them (taken from real `openssl ca` runs).
OPENSSL_LINES = (
    "V\t271205141137Z\t\t1000\tunknown\t/CN=host1\n"
    "R\t271205141137Z\t261125141139Z,keyCompromise\t1001\tunknown\t/CN=host2\n"
    "R\t21360601141137Z\t261125141139Z,keyTime,20260101000000Z\t4DA4133FD3ABC479C4C33BB85A6FED961D955A6D\tunknown\t/CN=host0\n"
    "R\t271205141137Z\t261125141139Z,holdInstruction,holdInstructionReject\t1002\tunknown\t/C=GB/O=Alice\\/Ltd\\+\\xC3\\xA9/CN=x\n"
    "R\t271205141137Z\t261125141139Z,CAkeyTime,20250101000000Z\t1003\tunknown\t/CN=h3\n"
    "R\t271205141137Z\t261125141139Z\t1004\tunknown\t/CN=h4\n"
    "E\t990101000000Z\t\t0A\tcerts/old.pem\t/CN=old\n"
)


def test_parse_openssl_lines_and_round_trip_byte_exact():
    entries = parse_index(OPENSSL_LINES)
    assert format_index(entries) == OPENSSL_LINES
    valid, key, key_time, hold, ca_time, bare, expired = entries
    assert (valid.status, valid.serial, valid.expires, valid.revoked_at) == ("V", 0x1000, dt(2027, 12, 5, 14, 11, 37), None)
    assert (key.reason, key.revoked_at, key.invalidity_date) == ("keyCompromise", dt(2026, 11, 25, 14, 11, 39), None)
    assert key_time.expires == dt(2136, 6, 1, 14, 11, 37)  # 4-digit GeneralizedTime year
    assert (key_time.reason, key_time.invalidity_date) == ("keyCompromise", dt(2026, 1, 1))
    assert (hold.reason, hold.hold_instruction, hold.is_on_hold) == ("certificateHold", "holdInstructionReject", True)
    assert (ca_time.reason, ca_time.invalidity_date) == ("CACompromise", dt(2025, 1, 1))
    assert (bare.status, bare.reason) == ("R", None)
    assert (expired.status, expired.expires, expired.filename, expired.serial_hex) == ("E", dt(1999, 1, 1), "certs/old.pem", "0A")


@pytest.mark.parametrize("text, expected", [
    ("500101000000Z", dt(1950, 1, 1)), ("491231235959Z", dt(2049, 12, 31, 23, 59, 59)),
    ("20500101000000Z", dt(2050, 1, 1)), ("19491231235959Z", dt(1949, 12, 31, 23, 59, 59)),
])
def test_time_both_encodings(text, expected):
    assert ca_db.parse_asn1_time(text) == expected
    assert ca_db.format_asn1_time(expected) == text


def test_reason_spelling_is_read_case_insensitively_and_written_canonically():
    entry, = parse_index("R\t271205141137Z\t261125141139Z,KEYCOMPROMISE\t10\tunknown\t/CN=a\n")
    assert entry.reason == "keyCompromise"
    assert format_index([entry]).split("\t")[2] == "261125141139Z,keyCompromise"


def test_comments_skipped_and_tab_in_field_escaped_like_txt_db():
    entry = IndexEntry("V", dt(2030, 1, 1), 0x10, "/CN=a\tb", filename="unknown")
    text = "# a comment\n" + format_index([entry])
    assert "/CN=a\\\tb" in text
    assert parse_index(text) == [entry]


@pytest.mark.parametrize("line, message", [
    ("V\t271205141137Z\t\t1000\tunknown\n", "expected 6 tab-separated fields, found 5"),
    ("X\t271205141137Z\t\t1000\tunknown\t/CN=a\n", "status must be V, R or E"),
    ("V\t2712051411Z\t\t1000\tunknown\t/CN=a\n", "not an ASN.1 time"),
    ("V\t271205141137Z\t\t10G0\tunknown\t/CN=a\n", "not hexadecimal"),
    ("V\t271205141137Z\t\t\tunknown\t/CN=a\n", "not hexadecimal"),
    ("R\t271205141137Z\t\t1000\tunknown\t/CN=a\n", "revoked entry without a revocation date"),
    ("R\t271205141137Z\t261125141139Z,privilegeWithdrawn\t1000\tunknown\t/CN=a\n", "unknown revocation reason"),
    ("R\t271205141137Z\t261125141139Z,holdInstruction\t1000\tunknown\t/CN=a\n", "without an instruction"),
    ("R\t271205141137Z\t261125141139Z,keyTime,261125141139Z\t1000\tunknown\t/CN=a\n", "GeneralizedTime"),
    ("R\t271205141137Z\t261125141139Z,superseded,x\t1000\tunknown\t/CN=a\n", "unexpected data"),
    ("\n", "found 1"),
    ("garbage that is not an index\n", "found 1"),
])
def test_garbage_lines_name_the_line(line, message):
    text = "V\t271205141137Z\t\t0F\tunknown\t/CN=ok\n" + line
    with pytest.raises(IndexFormatError) as info:
        parse_index(text, "DIR/index.txt")
    assert "DIR/index.txt line 2" in str(info.value)
    assert message in str(info.value)


def test_duplicate_serial_and_missing_final_newline_are_errors():
    line = "V\t271205141137Z\t\t1000\tunknown\t/CN=a\n"
    with pytest.raises(IndexFormatError, match="serial 1000 already on line 1"):
        parse_index(line + line)
    with pytest.raises(IndexFormatError, match="no newline"):
        parse_index(line.rstrip("\n"))
    assert parse_index("") == []


@pytest.mark.parametrize("serial, text", [(0, "00"), (1, "01"), (0xABC, "0ABC"), (0x1000, "1000"), (-0x1F, "-1F"),
                                          (2 ** 158 + 5, "40" + "00" * 18 + "05")])
def test_serial_hex_like_bn_bn2hex(serial, text):
    assert serial_to_hex(serial) == text
    assert ca_db.parse_serial_hex(text) == serial


NAMES = [
    name("plain.example.com"),
    x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Alice/Ltd + Co"),
               x509.NameAttribute(NameOID.COMMON_NAME, "Zoë\u00e9 ✓ name")]),
    x509.Name([x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "org"), x509.NameAttribute(NameOID.COMMON_NAME, "c"), x509.NameAttribute(NameOID.USER_ID, "u1"),
               x509.NameAttribute(NameOID.EMAIL_ADDRESS, "a@b.example"),
               x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "England"),
               x509.NameAttribute(NameOID.LOCALITY_NAME, "Lon\\don"),
               x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Ops=1,2"),
               x509.NameAttribute(NameOID.SERIAL_NUMBER, "42"),
               x509.NameAttribute(NameOID.GIVEN_NAME, "G"), x509.NameAttribute(NameOID.SURNAME, "S"),
               x509.NameAttribute(ObjectIdentifier("1.2.3.4.5"), "custom")]),
    x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COMMON_NAME, "multi"),
                                               x509.NameAttribute(NameOID.ORGANIZATION_NAME, "valued")])]),
    x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bmp é", _type=x509.name._ASN1Type.BMPString)]),
    x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tab\there")]),
]


def test_oneline_subject_matches_what_openssl_ca_writes(tmp_path):
    """Each subject goes through a real `openssl ca -preserveDN`; its index line is the truth."""
    oca = OpensslCA(tmp_path / "oca")
    for i, subject in enumerate(NAMES):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
        csr_path = tmp_path / f"{i}.csr"
        csr_path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
        oca.ca("-batch", "-notext", "-preserveDN", "-in", csr_path, "-out", tmp_path / f"{i}.pem")
        written = (oca.path / "index.txt").read_text().splitlines()[-1].split("\t")[5]
        issued = x509.load_pem_x509_certificate((tmp_path / f"{i}.pem").read_bytes())
        assert openssl_oneline_subject(issued.subject) == written, subject


# -- transitions -------------------------------------------------------------------------
VALID = IndexEntry("V", dt(2030, 1, 1), 0x1000, "/CN=a")


def test_revoke_new_defaults_to_now_without_reason():
    before = ca_db.utcnow()
    after = revoked_entry(VALID)
    assert after.status == "R" and after.reason is None and after.revoked_at >= before
    assert after.revoked_at.microsecond == 0


def test_repeating_a_revocation_keeps_date_and_reason():
    first = revoked_entry(VALID, "keyCompromise", dt(2026, 1, 2), invalidity_date=dt(2026, 1, 1))
    assert revoked_entry(first, "keyCompromise") == first
    assert revoked_entry(first) == first
    assert revoked_entry(first, "keyCompromise", invalidity_date=dt(2026, 1, 1)) == first
    assert revoked_entry(first, "keyCompromise", dt(2026, 1, 3)).revoked_at == dt(2026, 1, 3)


@pytest.mark.parametrize("request_", [
    dict(reason="certificateHold"),
    dict(reason="superseded"),
    dict(reason="keyCompromise", invalidity_date=dt(2025, 1, 1)),
])
def test_permanent_revocations_cannot_be_downgraded(request_):
    compromised = revoked_entry(VALID, "keyCompromise", dt(2026, 1, 2), invalidity_date=dt(2026, 1, 1))
    with pytest.raises(CAError, match="serial 1000 is revoked with reason keyCompromise, which is permanent"):
        revoked_entry(compromised, **request_)
    without_reason = revoked_entry(VALID)
    with pytest.raises(CAError, match="serial 1000 is revoked with reason [(]none[)], which is permanent"):
        revoked_entry(without_reason, "certificateHold")
    with pytest.raises(CAError, match="which is permanent: it cannot be made valid again"):
        unheld_entry(compromised)


def test_released_from_hold_is_not_a_revocation():
    # What `openssl ca -crl_reason removeFromCRL` writes; the responder answers it good, so
    # the modules must be able to revoke it (again) or make it valid.
    released = parse_index_line("R\t271205141457Z\t261125141457Z,removeFromCRL\t1000\tunknown\t/CN=x")
    compromised = revoked_entry(released, "keyCompromise")
    assert (compromised.status, compromised.reason) == ("R", "keyCompromise")
    assert compromised.revoked_at > released.revoked_at  # a new revocation, dated now
    assert revoked_entry(released).reason is None
    assert unheld_entry(released).status == "V"


def test_invalid_transitions_are_clear_errors():
    with pytest.raises(CAError, match="invalidity_date can only be recorded with reason keyCompromise"):
        revoked_entry(VALID, "superseded", invalidity_date=dt(2026, 1, 1))
    with pytest.raises(CAError, match="hold_instruction needs reason certificateHold"):
        revoked_entry(VALID, "superseded", hold_instruction="holdInstructionReject")
    with pytest.raises(CAError, match="unknown revocation reason"):
        revoked_entry(VALID, "privilegeWithdrawn")
    with pytest.raises(CAError, match="only a certificateHold can be lifted"):
        unheld_entry(revoked_entry(VALID, "keyCompromise"))


def test_hold_and_unhold():
    held = revoked_entry(VALID, "certificateHold", hold_instruction="holdInstructionCallIssuer")
    assert format_index([held]).split("\t")[2].endswith(",holdInstruction,holdInstructionCallIssuer")
    assert unheld_entry(held) == VALID
    assert unheld_entry(VALID) is VALID
    permanent = revoked_entry(held, "keyCompromise")
    assert (permanent.reason, permanent.hold_instruction, permanent.revoked_at) == ("keyCompromise", None, held.revoked_at)


# -- the database --------------------------------------------------------------------------
@pytest.fixture
def ca(tmp_path):
    return ApiCA(tmp_path / "ca")


def test_random_serials_are_159_bit_positive_and_distinct(ca):
    serials = [ca.db.allocate_serial("random") for _attempt in range(50)]
    assert len(set(serials)) == 50
    assert all(s.bit_length() == 159 for s in serials)  # 20 octets in DER, top bit clear
    assert len(set(s & 0xFFFFFFFFFFFFFFFF for s in serials)) == 50


def test_sequential_serials_follow_and_advance_the_serial_file(ca):
    first = ca.issue("a", policy="sequential")
    assert first.serial_number == 0x1000
    assert open(ca.dir.serial_path).read() == "1001\n"
    # a reset serial file must not make us reissue a used serial
    atomic_write(ca.dir.serial_path, b"1000\n")
    second = ca.issue("b", policy="sequential")
    assert second.serial_number == 0x1001
    atomic_write(ca.dir.serial_path, b"FF\n")
    assert ca.db.allocate_serial("sequential") == 0xFF
    assert open(ca.dir.serial_path).read() == "0100\n"  # even-length upper-case like OpenSSL


@pytest.mark.parametrize("content", [b"", b"xyz\n", b"-10\n"])
def test_bad_serial_file(ca, content):
    atomic_write(ca.dir.serial_path, content)
    with pytest.raises(CAError, match="serial"):
        ca.db.allocate_serial("sequential")


def test_unknown_serial_policy(ca):
    with pytest.raises(CAError, match="random or sequential"):
        ca.db.allocate_serial("predictable")


def test_record_issued_writes_newcert_and_line(ca):
    cert = ca.issue("host.example.com")
    entry = ca.db.find(cert.serial_number)
    assert entry.status == "V" and entry.subject == "/C=GB/O=Alice Ltd/CN=host.example.com"
    assert entry.expires == cert.not_valid_after_utc and entry.filename == "unknown"
    newcert = os.path.join(ca.dir.newcerts_dir, serial_to_hex(cert.serial_number) + ".pem")
    assert x509.load_pem_x509_certificate(open(newcert, "rb").read()) == cert


def _snapshot(path):
    st = os.stat(path)
    return open(path, "rb").read(), st.st_mtime_ns, st.st_ino


def test_record_issued_refuses_duplicates_without_writing(ca):
    cert = ca.issue("dup")
    before = _snapshot(ca.dir.index_path)
    with pytest.raises(CAError, match="already in"):
        ca.db.record_issued(cert)
    assert _snapshot(ca.dir.index_path) == before


def test_unique_subject_yes_is_enforced(ca):
    ca.issue("same")
    ca.issue("same")  # our layout says unique_subject = no
    atomic_write(ca.dir.index_attr_path, b"unique_subject = yes\n")
    with pytest.raises(CAError, match="unique_subject = yes"):
        ca.issue("same")
    os.unlink(ca.dir.index_attr_path)  # OpenSSL's default when the file is missing is yes
    with pytest.raises(CAError, match="unique_subject = yes"):
        ca.issue("same")
    ca.issue("other")


@pytest.mark.parametrize("check_mode", [True, False])
def test_lifting_a_hold_refuses_a_second_valid_subject_under_unique_subject(ca, check_mode):
    held = ca.issue("same")
    ca.db.revoke(held.serial_number, "certificateHold")
    atomic_write(ca.dir.index_attr_path, b"unique_subject = yes\n")
    successor = ca.issue("same")  # allowed: the held one is R
    before = _snapshot(ca.dir.index_path)
    with pytest.raises(CAError, match="serial %s is a valid certificate for /C=GB/O=Alice Ltd/CN=same; making "
                                      "serial %s valid again" % (serial_to_hex(successor.serial_number),
                                                                 serial_to_hex(held.serial_number))):
        ca.db.unhold(held.serial_number, check_mode=check_mode)
    assert _snapshot(ca.dir.index_path) == before
    ca.db.revoke(successor.serial_number, "superseded")
    assert ca.db.unhold(held.serial_number)[1].status == "V"


def test_revoke_unknown_serial_and_check_mode_write_nothing(ca):
    cert = ca.issue("x")
    before = _snapshot(ca.dir.index_path)
    with pytest.raises(CAError, match="serial 0ABC \\(2748\\) is not in"):
        ca.db.revoke(0xABC, "superseded")
    old, new = ca.db.revoke(cert.serial_number, "superseded", check_mode=True)
    assert (old.status, new.status) == ("V", "R")
    assert _snapshot(ca.dir.index_path) == before
    ca.db.revoke(cert.serial_number, "superseded")
    assert ca.db.find(cert.serial_number).reason == "superseded"
    assert os.stat(ca.dir.index_path).st_mode & 0o777 == 0o644


def test_lock_is_exclusive_across_open_files_and_reentrant(ca):
    with ca.db.locked():
        with ca.db.locked():  # re-entrant within one CADatabase
            assert ca.db.is_locked
        fd = os.open(ca.dir.lock_path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    fd = os.open(ca.dir.lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released afterwards
    finally:
        os.close(fd)


def test_lock_removes_temporaries_of_killed_writers(ca):
    stale = [os.path.join(ca.dir.path, ".index.txt.dead1234.tmp"), os.path.join(ca.dir.path, ".serial.x.tmp"),
             os.path.join(ca.dir.newcerts_dir, ".0A.pem.y.tmp")]
    keep = [os.path.join(ca.dir.path, ".openssl.cnf.z.tmp"), os.path.join(ca.dir.newcerts_dir, "0A.pem")]
    for path in stale + keep:
        open(path, "w").write("half a line")
    with ca.db.locked():
        assert [os.path.exists(p) for p in stale + keep] == [False, False, False, True, True]


def test_database_on_missing_dir_is_clear(tmp_path):
    with pytest.raises(CAError, match="does not exist"):
        CADatabase(tmp_path / "nope").entries()
    (tmp_path / "empty").mkdir()
    with pytest.raises(CAError, match="index.txt is missing"):
        CADatabase(tmp_path / "empty").revoke(1)


def test_atomic_write_modes_and_cleanup(tmp_path):
    target = tmp_path / "f"
    atomic_write(target, b"one", 0o600)
    assert target.read_bytes() == b"one" and target.stat().st_mode & 0o777 == 0o600
    atomic_write(target, "two", mode=None)  # keeps the existing mode
    assert target.read_bytes() == b"two" and target.stat().st_mode & 0o777 == 0o600
    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError):
        atomic_write(tmp_path / "adir", b"x")  # cannot replace a directory
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir", "f"]


@pytest.mark.parametrize("text, unique", [
    ("unique_subject = no\n", False), ("unique_subject=False\n", False), ("unique_subject = 0\n", False),
    ("unique_subject = yes\n", True), ("unique_subject = off\n", True),  # OpenSSL reads only 'o': yes
    ("unique_subject = maybe\n", True), ("# nothing\n", True),
])
def test_unique_subject_parsed_like_openssl_parse_yesno(tmp_path, text, unique):
    attr = tmp_path / "index.txt.attr"
    attr.write_text(text)
    assert ca_db.read_unique_subject(str(attr)) is unique


def test_parse_cache_sees_every_external_change(ca):
    cert = ca.issue("a")
    reader = CADatabase(ca.dir)
    assert reader.find(cert.serial_number).subject.endswith("CN=a")
    text = open(ca.dir.index_path).read()
    atomic_write(ca.dir.index_path, text.replace("CN=a", "CN=b").encode())  # same size, maybe same inode/mtime
    assert reader.find(cert.serial_number).subject.endswith("CN=b")
    ca.db.revoke(cert.serial_number, "superseded")  # another instance writes
    assert reader.find(cert.serial_number).status == "R"


@pytest.mark.parametrize("change, message", [
    (dict(reason="privilegeWithdrawn"), "unknown revocation reason"),
    (dict(reason="certificateHold", hold_instruction="a,b"), "not an OID name"),
    (dict(subject="/CN=a\nV"), "newline"),
    (dict(status="X"), "must be one of V, R, E"),
    (dict(revoked_at=None), "needs a revocation date"),
])
def test_format_refuses_entries_openssl_could_not_read(change, message):
    entry = IndexEntry("R", dt(2030, 1, 1), 0x10, "/CN=a", revoked_at=dt(2026, 1, 1))
    with pytest.raises(CAError, match=message):
        format_index([ca_db.replace(entry, **change)])


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_atomic_write_keeps_owner_and_group(tmp_path):
    target = tmp_path / "index.txt"
    target.write_bytes(b"old")
    os.chown(target, 65534, 65534)
    atomic_write(target, b"new", mode=None)
    st = target.stat()
    assert (st.st_uid, st.st_gid, target.read_bytes()) == (65534, 65534, b"new")
