"""The ca_revoke module, run for real through ansible-playbook on localhost."""
from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers.ansible_run import run_playbook
from tests.helpers.ca_factory import ApiCA, OpensslCA, crl_serials, name, openssl, openssl_status
from tests.integration.pki_fixtures import (  # noqa: F401 pylint: disable=unused-import
    INTER_PASS, base_pki, pki)

from ansible_collections.pkiops.ocsp.plugins.module_utils.ca_db import (
    CADatabase, serial_to_colon_hex, serial_to_hex)


def play(*tasks, check=False, diff=False):
    """Run ca_revoke tasks (name, args[, task keywords]) in one playbook; {name: (outcome, result)}."""
    body = []
    for task in tasks:
        task_name, args = task[0], task[1]
        entry = {"name": task_name, "pkiops.ocsp.ca_revoke": args, "ignore_errors": True}
        entry.update(task[2] if len(task) > 2 else {})
        body.append(entry)
    run = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": body}], check=check, diff=diff)
    outcomes = {entry["task"]: (entry["outcome"], entry["result"]) for entry in run.results}
    missing = [t[0] for t in tasks if t[0] not in outcomes]
    assert not missing, f"tasks did not run: {missing}\n{run.output}"
    return outcomes


def ok(outcomes, task_name):
    outcome, result = outcomes[task_name]
    assert outcome == "ok", f"{task_name}: {result.get('msg')}"
    return result


def failed(outcomes, task_name, message):
    outcome, result = outcomes[task_name]
    assert outcome == "failed", f"{task_name} did not fail: {result}"
    assert message in result["msg"], result["msg"]
    return result


def snapshot(path):
    st = os.stat(path)
    return Path(path).read_bytes(), st.st_mtime_ns, st.st_ino


@pytest.fixture
def ca(tmp_path):
    return ApiCA(tmp_path / "ca")


@pytest.mark.slow
def test_revoke_idempotence_hold_unhold_and_diff(ca, tmp_path):
    certs = {cn: ca.issue(cn) for cn in ("colon", "path", "content", "hold", "decimal")}
    path_pem = ca.write_cert(certs["path"], tmp_path / "path.pem")
    content_pem = certs["content"].public_bytes(serialization.Encoding.PEM).decode()
    colon = serial_to_colon_hex(certs["colon"].serial_number)
    hold = "0x" + serial_to_hex(certs["hold"].serial_number)
    out = play(
        ("revoke colon-hex", {"issuer_dir": ca.dir.path, "serial_number": colon, "reason": "keyCompromise",
                              "invalidity_date": "2026-01-02T03:04:05Z"}),
        ("again", {"issuer_dir": ca.dir.path, "serial_number": colon, "reason": "keyCompromise"}),
        ("again without reason", {"issuer_dir": ca.dir.path, "serial_number": colon}),
        ("revoke by path", {"issuer_dir": ca.dir.path, "path": str(path_pem), "reason": "superseded",
                            "revocation_date": "20260101000000Z"}),
        ("revoke by content", {"issuer_dir": ca.dir.path, "content": content_pem}),
        ("revoke decimal", {"issuer_dir": ca.dir.path, "serial_number": certs["decimal"].serial_number,
                            "reason": "cessationOfOperation"}),
        ("hold", {"issuer_dir": ca.dir.path, "serial_number": hold, "reason": "certificateHold",
                  "hold_instruction": "holdInstructionReject"}),
        ("lift hold", {"issuer_dir": ca.dir.path, "serial_number": hold, "state": "active"}),
        ("lift hold again", {"issuer_dir": ca.dir.path, "serial_number": hold, "state": "active"}),
        diff=True,
    )
    first = ok(out, "revoke colon-hex")
    assert first["changed"] is True
    assert (first["status_before"], first["status_after"], first["reason"]) == ("V", "R", "keyCompromise")
    assert first["serial_number"] == certs["colon"].serial_number
    assert first["serial_hex"] == serial_to_hex(certs["colon"].serial_number)
    assert first["invalidity_date"] == "2026-01-02T03:04:05+00:00"
    assert "status: V" in first["diff"]["before"] and "status: R" in first["diff"]["after"]
    assert "reason: keyCompromise" in first["diff"]["after"]
    for again in ("again", "again without reason"):
        result = ok(out, again)
        assert result["changed"] is False
        assert result["revocation_date"] == first["revocation_date"]
        assert result["invalidity_date"] == first["invalidity_date"]
    by_path = ok(out, "revoke by path")
    assert by_path["changed"] and by_path["revocation_date"] == "2026-01-01T00:00:00+00:00"
    assert ok(out, "revoke by content")["reason"] is None
    assert ok(out, "revoke decimal")["status_after"] == "R"
    held = ok(out, "hold")
    assert held["hold_instruction"] == "holdInstructionReject" and held["status_after"] == "R"
    lifted = ok(out, "lift hold")
    assert (lifted["changed"], lifted["status_before"], lifted["status_after"]) == (True, "R", "V")
    assert ok(out, "lift hold again")["changed"] is False

    # OpenSSL, reading the same directory, agrees
    revoked = crl_serials(Path(ca.dir.cnf_path), tmp_path / "crl.pem")
    assert revoked == {certs["colon"].serial_number: "Key Compromise", certs["path"].serial_number: "Superseded",
                       certs["content"].serial_number: "", certs["decimal"].serial_number: "Cessation Of Operation"}
    assert "Valid (V)" in openssl_status(Path(ca.dir.cnf_path), serial_to_hex(certs["hold"].serial_number))


def test_check_mode_writes_nothing(ca):
    cert = ca.issue("checked")
    before = snapshot(ca.dir.index_path)
    out = play(("check", {"issuer_dir": ca.dir.path, "serial_number": cert.serial_number, "reason": "superseded"}),
               check=True, diff=True)
    result = ok(out, "check")
    assert result["changed"] is True and result["status_after"] == "R"
    assert "status: R" in result["diff"]["after"]
    assert snapshot(ca.dir.index_path) == before
    assert ca.db.find(cert.serial_number).status == "V"


@pytest.mark.slow
def test_failures_are_clear_and_write_nothing(ca, tmp_path):
    """The failures users meet through the module; option parsing is covered in tests/unit/test_revocation.py."""
    good = ca.issue("target")
    compromised = ca.issue("compromised")
    ca.db.revoke(compromised.serial_number, "keyCompromise")
    stranger = ApiCA(tmp_path / "stranger", cn="Other CA")
    twin = ApiCA(tmp_path / "twin")  # same subject name as `ca`, different key
    foreign = stranger.write_cert(stranger.issue("foreign"), tmp_path / "foreign.pem")
    twin_cert = twin.write_cert(twin.build(name("twin"), good.serial_number), tmp_path / "twin.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    index_before = snapshot(ca.dir.index_path)
    serial = good.serial_number
    base = {"issuer_dir": ca.dir.path}
    out = play(
        ("unknown serial", dict(base, serial_number="0xDEADBEEF")),
        ("other issuer", dict(base, path=str(foreign))),
        ("same name other key", dict(base, path=str(twin_cert))),
        ("lift a keyCompromise", dict(base, serial_number=compromised.serial_number, state="active")),
        ("hold a keyCompromise", dict(base, serial_number=compromised.serial_number, reason="certificateHold")),
        ("downgrade a keyCompromise", dict(base, serial_number=compromised.serial_number, reason="superseded")),
        ("redate a compromise", dict(base, serial_number=compromised.serial_number, reason="keyCompromise",
                                     invalidity_date="2026-01-01T00:00:00Z")),
        ("invalidity without compromise", dict(base, serial_number=serial, reason="superseded",
                                               invalidity_date="2026-01-01T00:00:00Z")),
        ("ambiguous hex", dict(base, serial_number="1A2B")),
        ("future date", dict(base, serial_number=serial, revocation_date="2999-01-01T00:00:00Z")),
        ("unsupported reason", dict(base, serial_number=serial, reason="privilegeWithdrawn")),
        ("removeFromCRL does not revoke", dict(base, serial_number=serial, reason="removeFromCRL")),
        ("garbage cert", dict(base, path=str(garbage))),
        ("two selectors", dict(base, serial_number=serial, path=str(foreign))),
        ("no selector", dict(base)),
        ("not a CA dir", {"issuer_dir": str(tmp_path), "serial_number": serial}),
    )
    failed(out, "unknown serial", "serial DEADBEEF (3735928559) is not in")
    failed(out, "other issuer", "issued by /C=GB/O=Alice Ltd/CN=Other CA, not by this CA")
    failed(out, "same name other key", "authority key identifier does not match")
    failed(out, "lift a keyCompromise", "only a certificateHold can be lifted")
    for task in ("hold a keyCompromise", "downgrade a keyCompromise", "redate a compromise"):
        failed(out, task, "serial %s is revoked with reason keyCompromise, which is permanent"
               % serial_to_hex(compromised.serial_number))
    failed(out, "invalidity without compromise", "only be recorded with reason keyCompromise or CACompromise")
    failed(out, "ambiguous hex", "write hex as 0x1A2B")
    failed(out, "future date", "is in the future")
    failed(out, "unsupported reason", "value of reason must be one of")
    failed(out, "removeFromCRL does not revoke", "value of reason must be one of")
    failed(out, "garbage cert", "neither a PEM nor a DER certificate")
    failed(out, "two selectors", "mutually exclusive")
    failed(out, "no selector", "one of the following is required")
    failed(out, "not a CA dir", "is not a CA directory")
    assert snapshot(ca.dir.index_path) == index_before


def test_revokes_in_a_directory_made_by_openssl_ca(tmp_path):
    oca = OpensslCA(tmp_path / "oca")
    victim = oca.issue("/C=GB/O=Alice Ltd/CN=victim.example.com")
    bystander = oca.issue("/C=GB/O=Alice Ltd/CN=bystander.example.com")
    oca.ca("-revoke", bystander, "-crl_reason", "superseded")
    before = snapshot(oca.path / "index.txt")
    checked = play(("check", {"issuer_dir": str(oca.path), "path": str(victim), "reason": "keyCompromise"}), check=True)
    assert ok(checked, "check")["changed"] is True
    assert snapshot(oca.path / "index.txt") == before
    assert not (oca.path / "index.txt.lock").exists()  # check mode creates nothing, not even the lock
    out = play(("revoke", {"issuer_dir": str(oca.path), "path": str(victim), "reason": "keyCompromise"}),
               ("again", {"issuer_dir": str(oca.path), "path": str(victim), "reason": "keyCompromise"}))
    assert ok(out, "revoke")["changed"] is True and ok(out, "again")["changed"] is False
    revoked = crl_serials(oca.cnf, tmp_path / "crl.pem")
    assert revoked == {oca.serial_of(victim): "Key Compromise", oca.serial_of(bystander): "Superseded"}


def test_lifting_a_hold_keeps_an_openssl_unique_subject_database_loadable(tmp_path):
    oca = OpensslCA(tmp_path / "oca")  # index.txt.attr: unique_subject = yes
    cert = oca.issue("/C=GB/O=Alice Ltd/CN=x.example.com")
    held = oca.serial_of(cert)
    oca.ca("-revoke", cert, "-crl_reason", "certificateHold")
    successor = oca.serial_of(oca.issue("/C=GB/O=Alice Ltd/CN=x.example.com"))  # allowed: the first is on hold
    before = snapshot(oca.path / "index.txt")
    args = {"issuer_dir": str(oca.path), "serial_number": held, "state": "active"}
    for checked in (True, False):
        out = play(("lift", args), check=checked)
        failed(out, "lift", "serial %s is a valid certificate for" % serial_to_hex(successor))
        failed(out, "lift", "making serial %s valid again" % serial_to_hex(held))
    assert snapshot(oca.path / "index.txt") == before
    assert oca.ca("-gencrl", "-out", tmp_path / "crl.pem", check=False).returncode == 0


@pytest.mark.slow
def test_end_to_end_with_ca_cert(tmp_path):
    """ca_cert builds root -> intermediate -> server; ca_revoke revokes the server cert;
    openssl's CRL and `openssl verify -crl_check` see it."""
    root, inter = tmp_path / "root", tmp_path / "intermediate"
    server = tmp_path / "www.cert.pem"
    subject = {"C": "GB", "O": "Alice Ltd"}
    tasks = [
        {"name": "root", "pkiops.ocsp.ca_cert": {"profile": "root_ca", "ca_dir": str(root),
                                                 "subject": dict(subject, CN="E2E Root CA"),
                                                 "privatekey_type": "ECC"}},
        {"name": "intermediate", "pkiops.ocsp.ca_cert": {
            "profile": "intermediate_ca", "ca_dir": str(inter), "issuer_dir": str(root),
            "subject": dict(subject, CN="E2E Intermediate CA"), "privatekey_type": "ECC"}},
        {"name": "server", "pkiops.ocsp.ca_cert": {
            "profile": "server", "issuer_dir": str(inter), "privatekey_path": str(tmp_path / "www.key.pem"),
            "path": str(server), "subject": {"CN": "www.example.com"},
            "subject_alt_name": ["DNS:www.example.com"], "privatekey_type": "ECC"}},
        {"name": "revoke", "pkiops.ocsp.ca_revoke": {"issuer_dir": str(inter), "path": str(server),
                                                     "reason": "keyCompromise"}},
        {"name": "revoke again", "pkiops.ocsp.ca_revoke": {"issuer_dir": str(inter), "path": str(server),
                                                           "reason": "keyCompromise"}},
        {"name": "wrong CA", "pkiops.ocsp.ca_revoke": {"issuer_dir": str(root), "path": str(server)},
         "ignore_errors": True},
    ]
    run = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}])
    assert run.rc == 0, run.output
    issued = run.task("server")
    revoked = run.task("revoke")
    assert revoked["changed"] and revoked["serial_number"] == issued["serial_number"]
    assert run.task("revoke again")["changed"] is False
    assert "not by this CA" in run.task("wrong CA")["msg"]
    crl = tmp_path / "crl.pem"
    assert crl_serials(inter / "openssl.cnf", crl) == {issued["serial_number"]: "Key Compromise"}
    chain = tmp_path / "chain.pem"
    chain.write_bytes((inter / "certs" / "ca-chain.cert.pem").read_bytes())
    root_crl = tmp_path / "root-crl.pem"
    openssl("ca", "-config", root / "openssl.cnf", "-gencrl", "-out", root_crl)
    both = tmp_path / "crls.pem"
    both.write_bytes(crl.read_bytes() + root_crl.read_bytes())
    assert openssl("verify", "-CAfile", chain, server).returncode == 0  # fine without revocation data
    verdict = openssl("verify", "-crl_check_all", "-CRLfile", both, "-CAfile", chain, server, check=False)
    assert verdict.returncode != 0 and "certificate revoked" in verdict.stdout + verdict.stderr


# ---- all_certificates_of_key: a compromised key is revoked with every certificate of it -----

def test_all_certificates_of_key_revokes_the_older_certificate_of_the_key(pki, tmp_path):
    """ca_cert issues two certificates for one key (a renewal with another SAN) and one for
    another key; revoking the newer one for keyCompromise revokes both, in one write."""
    issue = [
        {"name": "old", "pkiops.ocsp.ca_cert": pki.leaf("www", path=str(pki.base / "www-old.cert.pem"))},
        {"name": "new", "pkiops.ocsp.ca_cert": pki.leaf(
            "www", path=str(pki.base / "www-new.cert.pem"),
            subject_alt_name=["DNS:www.example.com", "DNS:api.example.com"])},
        {"name": "other", "pkiops.ocsp.ca_cert": pki.leaf("other")},
    ]
    run = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": issue}])
    assert run.rc == 0, run.output
    old, new, other = (run.task(task)["serial_number"] for task in ("old", "new", "other"))
    assert len({old, new, other}) == 3
    args = {"issuer_dir": str(pki.inter), "path": str(pki.base / "www-new.cert.pem"), "reason": "keyCompromise",
            "invalidity_date": "2026-01-02T03:04:05Z", "all_certificates_of_key": True}
    index = pki.inter / "index.txt"
    before = snapshot(index)

    checked = ok(play(("check", args), check=True, diff=True), "check")
    assert checked["changed"] is True and checked["serial_number"] == new
    assert [(o["serial_number"], o["serial_hex"], o["status_before"]) for o in checked["also_revoked"]] == \
        [(old, serial_to_hex(old), "V")]
    assert checked["also_revoked"][0]["subject"].endswith("/CN=www.example.com")
    for serial in (old, new):
        assert "serial: %s\nsubject: /O=Alice Ltd/CN=www.example.com\nstatus: R\n" % serial_to_hex(serial) \
            in checked["diff"]["after"]
    assert checked["diff"]["after"].count("reason: keyCompromise") == 2
    assert snapshot(index) == before  # check mode writes nothing

    out = play(("revoke", args), ("again", args))
    revoked = ok(out, "revoke")
    assert revoked["changed"] is True and [o["serial_number"] for o in revoked["also_revoked"]] == [old]
    again = ok(out, "again")
    assert again["changed"] is False and again["also_revoked"] == []
    db = CADatabase(str(pki.inter))
    entries = {serial: db.find(serial) for serial in (old, new, other)}
    for serial in (old, new):
        entry = entries[serial]
        assert (entry.status, entry.reason) == ("R", "keyCompromise")
        assert entry.revoked_at == entries[new].revoked_at
        assert entry.invalidity_date.isoformat() == "2026-01-02T03:04:05+00:00"
    assert entries[other].status == "V"
    # openssl, reading the same directory, lists both
    assert crl_serials(pki.inter / "openssl.cnf", tmp_path / "crl.pem", INTER_PASS) == \
        {old: "Key Compromise", new: "Key Compromise"}


def _issue_with_text(oca, key, cn):
    """openssl ca without -notext: newcerts/ gets openssl's text dump before the PEM."""
    csr, out = oca.path / "csr" / f"{cn}.csr.pem", oca.path / "certs" / f"{cn}.cert.pem"
    openssl("req", "-new", "-key", key, "-subj", f"/C=GB/O=Alice Ltd/CN={cn}", "-out", csr, "-config", oca.cnf)
    oca.ca("-batch", "-extensions", "leaf", "-in", csr, "-out", out)
    serial = oca.serial_of(out)
    assert (oca.path / "newcerts" / f"{serial_to_hex(serial)}.pem").read_bytes().startswith(b"Certificate:")
    return serial


def test_all_certificates_of_key_finds_certificates_issued_by_openssl_ca(tmp_path):
    """newcerts/ copies written by openssl ca itself (text dump + PEM) are read, also for the
    certificate selected by serial; a held certificate of the key and a valid certificate
    without a newcerts/ copy are left alone and named in warnings."""
    oca = OpensslCA(tmp_path / "oca")
    key = tmp_path / "leaked.key.pem"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key)
    old = _issue_with_text(oca, key, "old.example.com")
    held = _issue_with_text(oca, key, "held.example.com")
    oca.ca("-revoke", oca.path / "certs" / "held.example.com.cert.pem", "-crl_reason", "certificateHold")
    current = _issue_with_text(oca, key, "current.example.com")
    stranger = oca.serial_of(oca.issue("/C=GB/O=Alice Ltd/CN=stranger.example.com"))
    orphan = oca.serial_of(oca.issue("/C=GB/O=Alice Ltd/CN=orphan.example.com"))
    (oca.path / "newcerts" / f"{serial_to_hex(orphan)}.pem").unlink()
    args = {"issuer_dir": str(oca.path), "serial_number": "0x" + serial_to_hex(current), "reason": "keyCompromise",
            "all_certificates_of_key": True}
    result = ok(play(("revoke", args)), "revoke")
    assert result["changed"] is True and [o["serial_number"] for o in result["also_revoked"]] == [old]
    warnings = " ".join(result.get("warnings", []))
    assert serial_to_hex(orphan) in warnings and "no readable copy" in warnings, result
    assert serial_to_hex(held) in warnings and "on hold" in warnings, result
    assert serial_to_hex(stranger) not in warnings
    assert crl_serials(oca.cnf, tmp_path / "crl.pem") == {
        old: "Key Compromise", current: "Key Compromise", held: "Certificate Hold"}
    for serial in (stranger, orphan):
        assert "Valid (V)" in openssl_status(oca.cnf, serial_to_hex(serial))


def test_all_certificates_of_key_only_with_state_revoked(ca):
    cert = ca.issue("selected")
    ca.issue("bystander")
    before = snapshot(ca.dir.index_path)
    args = {"issuer_dir": ca.dir.path, "serial_number": cert.serial_number, "state": "active",
            "all_certificates_of_key": True}
    for checked in (True, False):
        failed(play(("active", args), check=checked), "active",
               "all_certificates_of_key only applies to state=revoked")
        assert snapshot(ca.dir.index_path) == before


def test_all_certificates_of_key_without_the_selected_copy_still_revokes_it(ca):
    """By serial_number the key comes from newcerts/: without that copy the selected
    certificate is revoked all the same (a compromise is never blocked), with a warning."""
    cert = ca.issue("selected")
    bystander = ca.issue("bystander")
    (Path(ca.dir.newcerts_dir) / f"{serial_to_hex(cert.serial_number)}.pem").unlink()
    result = ok(play(("revoke", {"issuer_dir": ca.dir.path, "serial_number": cert.serial_number,
                                 "reason": "keyCompromise", "all_certificates_of_key": True})), "revoke")
    assert result["changed"] is True and result["status_after"] == "R" and result["also_revoked"] == []
    assert "no other certificate was searched" in " ".join(result.get("warnings", []))
    assert ca.db.find(bystander.serial_number).status == "V"


def _certificate_of(public_key, cn, serial, issuer_name, issuer_key):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(issuer_name).public_key(public_key)
            .serial_number(serial).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(issuer_key, hashes.SHA256()))


def _record(ca, cert):
    with ca.db.locked():
        ca.db.record_issued(cert)
    return cert


def test_all_certificates_of_key_trusts_only_copies_of_their_own(ca, tmp_path):
    """A newcerts/ copy tells the key of its entry only if it holds that serial and this CA
    issued it: a misnamed copy, or another CA's certificate of the leaked key under the same
    serial (a new_certs_dir shared by two CAs counting alike), revoked bystanders."""
    leaked = ec.generate_private_key(ec.SECP256R1()).public_key()
    selected = _record(ca, _certificate_of(leaked, "selected", 0x1001, ca.name, ca.key))
    misnamed, foreign = ca.issue("misnamed"), ca.issue("foreign")  # other keys
    newcerts = Path(ca.dir.newcerts_dir)
    copy = newcerts / f"{serial_to_hex(misnamed.serial_number)}.pem"
    copy.write_bytes((newcerts / f"{serial_to_hex(selected.serial_number)}.pem").read_bytes())
    other = ApiCA(tmp_path / "other", cn="CA Two")
    ca.write_cert(_certificate_of(leaked, "foreign", foreign.serial_number, other.name, other.key),
                  newcerts / f"{serial_to_hex(foreign.serial_number)}.pem")
    result = ok(play(("revoke", {"issuer_dir": ca.dir.path, "serial_number": selected.serial_number,
                                 "reason": "keyCompromise", "all_certificates_of_key": True})), "revoke")
    assert result["status_after"] == "R" and result["also_revoked"] == [], result
    warnings = " ".join(result.get("warnings", []))
    assert "no readable copy of their own" in warnings, result
    for bystander in (misnamed, foreign):
        assert serial_to_hex(bystander.serial_number) in warnings
        assert CADatabase(ca.dir.path).find(bystander.serial_number).status == "V"


def test_all_certificates_of_key_with_a_key_cryptography_cannot_load(ca, tmp_path):
    """An SM2 certificate (openssl makes them; cryptography cannot load the key): it is revoked
    all the same, with a warning, instead of the task failing with a traceback."""
    key, public = tmp_path / "sm2.key", tmp_path / "sm2.pub"
    openssl("genpkey", "-algorithm", "SM2", "-out", key)
    openssl("pkey", "-in", key, "-pubout", "-out", public)
    ca_key = tmp_path / "ca.key"
    ca_key.write_bytes(ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    leaf = tmp_path / "sm2.pem"
    openssl("x509", "-new", "-force_pubkey", public, "-subj", "/O=Alice Ltd/CN=sm2", "-CA", ca.dir.cert_path,
            "-CAkey", ca_key, "-days", "30", "-set_serial", "0x5A2", "-out", leaf)
    _record(ca, x509.load_pem_x509_certificate(leaf.read_bytes()))
    bystander = ca.issue("bystander")
    result = ok(play(("revoke", {"issuer_dir": ca.dir.path, "serial_number": "0x5A2", "reason": "keyCompromise",
                                 "all_certificates_of_key": True})), "revoke")
    assert result["status_after"] == "R" and result["also_revoked"] == [], result
    assert "the key of serial 05A2 cannot be read" in " ".join(result.get("warnings", [])), result
    assert CADatabase(ca.dir.path).find(bystander.serial_number).status == "V"
