"""Our CA database against the real openssl CLI, many processes, and SIGKILL.

OpenSSL is the independent party: what `openssl ca` writes we must read and rewrite byte for
byte; what we write `openssl ca -revoke/-gencrl/-status/-in` and `openssl ocsp -index` must
accept and interpret as we meant.
"""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers.ca_factory import ApiCA, OpensslCA, crl_serials, name, openssl, openssl_status

from ansible_collections.pkiops.ocsp.plugins.module_utils import fileops
from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_db import (
    CADatabase,
    IndexEntry,
    format_index,
    openssl_oneline_subject,
    parse_index,
    serial_to_hex,
)
from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_dir import CADirectory

FORK = multiprocessing.get_context("fork")


def load_pem(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


@pytest.fixture
def openssl_made_ca(tmp_path):
    """A CA run by hand with `openssl ca`, with every kind of line OpenSSL writes."""
    oca = OpensslCA(tmp_path / "oca")
    certs = {cn: oca.issue(f"/C=GB/O=Alice Ltd/CN={cn}") for cn in
             ("valid", "plain", "superseded", "keycomp", "cacomp", "hold", "hold2")}
    certs["far"] = oca.issue("/CN=far future", "-enddate", "20510101000000Z")  # GeneralizedTime
    certs["rand"] = oca.issue("/CN=random serial", "-rand_serial")
    oca.ca("-revoke", certs["plain"])
    oca.ca("-revoke", certs["superseded"], "-crl_reason", "superseded")
    oca.ca("-revoke", certs["keycomp"], "-crl_compromise", "20260101120000Z")
    oca.ca("-revoke", certs["cacomp"], "-crl_CA_compromise", "20250101000000Z")
    oca.ca("-revoke", certs["hold"], "-crl_hold", "holdInstructionReject")
    oca.ca("-revoke", certs["hold2"], "-crl_reason", "certificateHold")
    oca.ca("-revoke", certs["far"], "-crl_reason", "keyCompromise")
    return oca, certs


def test_openssl_written_index_round_trips_byte_exact(openssl_made_ca):
    oca, certs = openssl_made_ca
    text = (oca.path / "index.txt").read_text()
    entries = parse_index(text)
    assert format_index(entries) == text
    by_serial = {e.serial: e for e in entries}
    expect = {"valid": ("V", None), "plain": ("R", None), "superseded": ("R", "superseded"),
              "keycomp": ("R", "keyCompromise"), "cacomp": ("R", "CACompromise"),
              "hold": ("R", "certificateHold"), "hold2": ("R", "certificateHold"),
              "far": ("R", "keyCompromise"), "rand": ("V", None)}
    for cn, (status, reason) in expect.items():
        cert = load_pem(certs[cn])
        entry = by_serial[cert.serial_number]
        assert (entry.status, entry.reason) == (status, reason), cn
        assert entry.filename == "unknown"
        assert entry.subject == openssl_oneline_subject(cert.subject)
        assert entry.expires == cert.not_valid_after_utc
    assert by_serial[load_pem(certs["keycomp"]).serial_number].invalidity_date.isoformat() == "2026-01-01T12:00:00+00:00"
    assert by_serial[load_pem(certs["hold"]).serial_number].hold_instruction == "holdInstructionReject"
    far_line = [line for line in text.splitlines() if "far future" in line][0]
    assert far_line.split("\t")[1] == "20510101000000Z"
    assert load_pem(certs["rand"]).serial_number.bit_length() > 64


def test_we_write_into_an_openssl_made_ca_and_openssl_keeps_working(openssl_made_ca, tmp_path):
    oca, certs = openssl_made_ca
    db = CADatabase(CADirectory(oca.path))
    valid = load_pem(certs["valid"]).serial_number
    db.revoke(valid, "affiliationChanged")
    db.unhold(load_pem(certs["hold2"]).serial_number)
    assert "Revoked (R)" in openssl_status(oca.cnf, serial_to_hex(valid))
    assert "Valid (V)" in openssl_status(oca.cnf, serial_to_hex(load_pem(certs["hold2"]).serial_number))
    revoked = crl_serials(oca.cnf, tmp_path / "crl.pem")
    assert revoked[valid] == "Affiliation Changed"
    assert load_pem(certs["hold2"]).serial_number not in revoked
    # openssl ca can still issue on top of what we wrote
    new = oca.issue("/CN=after our write")
    assert db.find(load_pem(new).serial_number).status == "V"


def test_our_ca_dir_works_with_openssl_ca(tmp_path):
    ca = ApiCA(tmp_path / "ca", ocsp_url=["http://ocsp.example.com"])
    sequential = ca.issue("seq.example.com", policy="sequential")
    by_openssl, by_us, held = (ca.issue(cn) for cn in ("a.example.com", "b.example.com", "c.example.com"))
    newcert = Path(ca.dir.newcerts_dir) / (serial_to_hex(by_openssl.serial_number) + ".pem")
    openssl("ca", "-config", ca.dir.cnf_path, "-revoke", newcert, "-crl_reason", "superseded")
    ca.db.revoke(by_us.serial_number, "keyCompromise", invalidity_date=ca.db.find(by_us.serial_number).expires.replace(year=2025))
    ca.db.revoke(held.serial_number, "certificateHold", hold_instruction="holdInstructionCallIssuer")
    assert ca.db.find(by_openssl.serial_number).reason == "superseded"

    revoked = crl_serials(ca.dir.cnf_path, tmp_path / "crl.pem")
    assert revoked == {by_openssl.serial_number: "Superseded", by_us.serial_number: "Key Compromise",
                       held.serial_number: "Certificate Hold"}
    crl_text = openssl("crl", "-in", tmp_path / "crl.pem", "-noout", "-text").stdout
    assert "Invalidity Date" in crl_text and "Hold Instruction Call Issuer" in crl_text
    assert "Valid (V)" in openssl_status(ca.dir.cnf_path, serial_to_hex(sequential.serial_number))
    assert "Revoked (R)" in openssl_status(ca.dir.cnf_path, serial_to_hex(by_us.serial_number))

    # the guide's CSR flow works on our directory with our openssl.cnf, random serial included
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", tmp_path / "k.pem", "-out", tmp_path / "r.csr", "-subj", "/C=GB/O=Alice Ltd/CN=csr.example.com")
    openssl("ca", "-batch", "-config", ca.dir.cnf_path, "-extensions", "server_cert", "-notext",
            "-in", tmp_path / "r.csr", "-out", tmp_path / "c.pem")
    issued = load_pem(tmp_path / "c.pem")
    assert ca.db.find(issued.serial_number).subject == "/C=GB/O=Alice Ltd/CN=csr.example.com"
    assert issued.serial_number.bit_length() > 64  # rand_serial = yes for the random policy
    assert "OCSP - URI:http://ocsp.example.com" in openssl("x509", "-in", tmp_path / "c.pem", "-noout", "-text").stdout


def test_openssl_ca_uses_the_serial_file_of_a_sequential_directory(tmp_path):
    ca = ApiCA(tmp_path / "ca", serial_policy="sequential")
    first = ca.issue("first.example.com", policy="sequential")
    next_serial = Path(ca.dir.serial_path).read_text().strip()
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", tmp_path / "k.pem", "-out", tmp_path / "r.csr", "-subj", "/C=GB/O=Alice Ltd/CN=seq.example.com")
    openssl("ca", "-batch", "-config", ca.dir.cnf_path, "-extensions", "server_cert", "-notext",
            "-in", tmp_path / "r.csr", "-out", tmp_path / "c.pem")
    issued = load_pem(tmp_path / "c.pem")
    assert serial_to_hex(issued.serial_number) == next_serial == serial_to_hex(first.serial_number + 1)
    assert Path(ca.dir.serial_path).read_text().strip() == serial_to_hex(issued.serial_number + 1)
    assert ca.issue("after.example.com", policy="sequential").serial_number == issued.serial_number + 1


def test_openssl_ocsp_reads_our_index(tmp_path):
    ca = ApiCA(tmp_path / "ca")
    good, revoked, held, lifted = (ca.issue(cn) for cn in ("good", "revoked", "held", "lifted"))
    ca.db.revoke(revoked.serial_number, "cessationOfOperation")
    ca.db.revoke(held.serial_number, "certificateHold")
    ca.db.revoke(lifted.serial_number, "certificateHold")
    ca.db.unhold(lifted.serial_number)
    paths = {}
    for label, cert in (("good", good), ("revoked", revoked), ("held", held), ("lifted", lifted)):
        paths[label] = ca.write_cert(cert, tmp_path / f"{label}.pem")
    unknown = ca.write_cert(ca.build(name("never recorded"), 0x7777), tmp_path / "unknown.pem")
    cert_args = [a for p in (*paths.values(), unknown) for a in ("-cert", p)]
    openssl("ocsp", "-issuer", ca.dir.cert_path, *cert_args, "-reqout", tmp_path / "req.der", "-no_nonce")
    openssl("ocsp", "-index", ca.dir.index_path, "-rsigner", ca.dir.cert_path, "-rkey", ca.dir.key_path,
            "-CA", ca.dir.cert_path, "-reqin", tmp_path / "req.der", "-respout", tmp_path / "resp.der")
    out = openssl("ocsp", "-respin", tmp_path / "resp.der", "-CAfile", ca.dir.cert_path,
                  "-issuer", ca.dir.cert_path, *cert_args, "-no_nonce").stdout
    status = {line.split(":")[0]: line.split(": ")[1] for line in out.splitlines() if line.startswith(str(tmp_path))}
    assert status == {str(paths["good"]): "good", str(paths["revoked"]): "revoked", str(paths["held"]): "revoked",
                      str(paths["lifted"]): "good", str(unknown): "unknown"}
    assert "Reason: cessationOfOperation" in out and "Reason: certificateHold" in out


# -- many processes ----------------------------------------------------------------------------
def _issue_and_revoke(ca_path: str, worker: int, count: int, policy: str, queue) -> None:
    """One Ansible fork's worth of work: issue `count` certs, revoke every 4th right away."""
    ca_dir = CADirectory(ca_path)
    db = CADatabase(ca_dir)  # a fresh instance, as each fork has its own
    key, ca_cert = ca_dir.load_private_key(), ca_dir.load_certificate()
    done = []
    for i in range(count):
        leaf = ec.generate_private_key(ec.SECP256R1()).public_key()
        with db.locked():
            serial = db.allocate_serial(policy)
            cert = (x509.CertificateBuilder().subject_name(name(f"w{worker}-{i}")).issuer_name(ca_cert.subject)
                    .public_key(leaf).serial_number(serial).not_valid_before(ca_cert.not_valid_before_utc)
                    .not_valid_after(ca_cert.not_valid_after_utc).sign(key, hashes.SHA256()))
            db.record_issued(cert)
        revoke = i % 4 == 3
        if revoke:
            db.revoke(serial, "superseded")
        done.append((serial, revoke))
    queue.put(done)


@pytest.mark.slow
def test_200_concurrent_issuances_and_revocations(tmp_path):
    ca = ApiCA(tmp_path / "ca")
    queue = FORK.Queue()
    workers = [FORK.Process(target=_issue_and_revoke,
                            args=(ca.dir.path, w, 25, "sequential" if w % 2 else "random", queue))
               for w in range(8)]
    for proc in workers:
        proc.start()
    results = [item for _worker in workers for item in queue.get(timeout=120)]
    for proc in workers:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    serials = [serial for serial, _revoked in results]
    assert len(serials) == 200 and len(set(serials)) == 200
    entries = {e.serial: e for e in ca.db.entries()}
    assert set(entries) == set(serials)
    expected_revoked = {serial for serial, revoked in results if revoked}
    assert {s for s, e in entries.items() if e.status == "R"} == expected_revoked and len(expected_revoked) == 8 * 6
    sequential = sorted(s for s in serials if s.bit_length() < 64)
    assert sequential == list(range(0x1000, 0x1000 + 100))  # no gap, no reuse under contention
    assert open(ca.dir.serial_path).read() == serial_to_hex(0x1000 + 100) + "\n"
    assert len(os.listdir(ca.dir.newcerts_dir)) == 200
    assert set(crl_serials(ca.dir.cnf_path, tmp_path / "crl.pem")) == expected_revoked
    sample = random.Random(1).sample(serials, 12)
    for serial in sample:
        expected = "Revoked (R)" if serial in expected_revoked else "Valid (V)"
        assert expected in openssl_status(ca.dir.cnf_path, serial_to_hex(serial))


# -- SIGKILL in the middle of writes --------------------------------------------------------------
def _stall_in_index_fsync(conn, after: int) -> None:
    """Fault injection: block forever in the fsync of the `after`-th index temporary file,
    i.e. after the new index is written but before the rename, and say so."""
    real_fsync, calls = os.fsync, [0]

    def fsync(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".index.txt."):
            calls[0] += 1
            if calls[0] > after:
                conn.send("stalled")
                time.sleep(3600)
        real_fsync(fd)

    os.fsync = fsync


def _record_forever(ca_path: str, seed: int, conn, stall_after: int | None = None) -> None:
    if stall_after is not None:
        _stall_in_index_fsync(conn, stall_after)
    ca_dir = CADirectory(ca_path)
    db = CADatabase(ca_dir)
    key, ca_cert = ca_dir.load_private_key(), ca_dir.load_certificate()
    leaf = ec.generate_private_key(ec.SECP256R1()).public_key()
    for i in range(10 ** 6):
        with db.locked():
            serial = db.allocate_serial("random")
            cert = (x509.CertificateBuilder().subject_name(name(f"s{seed}-{i}")).issuer_name(ca_cert.subject)
                    .public_key(leaf).serial_number(serial).not_valid_before(ca_cert.not_valid_before_utc)
                    .not_valid_after(ca_cert.not_valid_after_utc).sign(key, hashes.SHA256()))
            db.record_issued(cert)
        conn.send(serial)  # only after record_issued returned: this entry is "completed"
        if i % 3 == 2:
            db.revoke(serial, "keyCompromise")


@pytest.mark.slow
def test_sigkill_during_writes_never_breaks_the_index(tmp_path):
    ca = ApiCA(tmp_path / "ca")
    # a big index makes each rewrite take long enough to be hit by the kill
    filler = [IndexEntry("V", ca.cert.not_valid_after_utc, n, f"/CN=filler {n}") for n in range(1, 4000)]
    fileops.atomic_write(ca.dir.index_path, format_index(filler).encode())
    completed: set[int] = set()
    rng = random.Random(7)
    stalled_kills = 0
    for round_ in range(24):
        # every 4th round the kill lands deterministically between temp write and rename
        stall_after = rng.randrange(0, 4) if round_ % 4 == 3 else None
        receiver, sender = FORK.Pipe(duplex=False)
        proc = FORK.Process(target=_record_forever, args=(ca.dir.path, round_, sender, stall_after))
        proc.start()
        sender.close()
        if stall_after is None:
            assert receiver.poll(30), "the writer never completed an entry"
            completed.add(receiver.recv())
            time.sleep(rng.uniform(0, 0.1))  # then kill it somewhere in its next writes
        else:
            messages = []
            while "stalled" not in messages:
                assert receiver.poll(30), "the writer never reached the injected stall"
                messages.append(receiver.recv())
            completed.update(m for m in messages if m != "stalled")
            temps = [n for n in os.listdir(ca.dir.path) if n.startswith(".index.txt.") and n.endswith(fileops.TEMP_SUFFIX)]
            assert len(temps) == 1  # the new index is fully written, not yet renamed
            stalled_kills += 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.join(timeout=10)
        assert proc.exitcode == -signal.SIGKILL
        while receiver.poll():
            try:
                message = receiver.recv()
            except EOFError:
                break
            if message != "stalled":
                completed.add(message)
        entries = ca.db.entries()  # must always parse
        present = {e.serial for e in entries}
        assert completed <= present, f"round {round_}: lost {len(completed - present)} completed entries"
        assert set(range(1, 4000)) <= present
    assert stalled_kills == 6
    assert len(completed) > 20
    with ca.db.locked():  # the lock of a killed holder is free, and its temporaries are swept
        pass
    assert not [n for n in os.listdir(ca.dir.path) if n.endswith(fileops.TEMP_SUFFIX)]
    assert set(crl_serials(ca.dir.cnf_path, tmp_path / "crl.pem")) == {e.serial for e in ca.db.entries() if e.status == "R"}
