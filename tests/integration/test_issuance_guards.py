"""ca_cert / ocsp_signer / csr: a CA's files are never overwritten, path lengths are checked up
the issuer's chain, and smaller result/idempotence guarantees (review of session 11)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers.ansible_run import run_playbook
from tests.integration.pki_fixtures import (  # noqa: F401 pylint: disable=unused-import
    INTER_PASS, ROOT_PASS, base_pki, file_mode, index_lines, intermediate_args, openssl, pki,
    root_args, run_module, snapshot, task_result)


def play(tasks, **kwargs):
    """Run (name, module, args) tasks in one playbook; failures do not stop it."""
    return run_playbook([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": name, f"pkiops.ocsp.{module}": args, "ignore_errors": True}
                  for name, module, args in tasks],
    }], **kwargs)


# ---- a certificate or CSR never replaces a CA's database, counters or config -----------------

DATABASE_FILES = ("index.txt", "index.txt.attr", "serial", "crlnumber", "openssl.cnf", "crl/ca.crl.pem")


def test_path_on_a_ca_database_file_is_refused(pki):
    """`path: <CA>/index.txt` (a typo'd variable) used to replace the issuer's database with the
    certificate just recorded in it: every issued and revoked entry was gone."""
    inter = pki.inter
    (inter / "crl" / "ca.crl.pem").write_text("not really a CRL\n")
    newcert = sorted((inter / "newcerts").iterdir())
    tasks = []
    for name in DATABASE_FILES:
        target = str(inter / name)
        tasks.append((f"ca_cert {name}", "ca_cert", pki.leaf("db", path=target)))
        tasks.append((f"ocsp_signer {name}", "ocsp_signer", {
            **pki.issuer_args(), "privatekey_path": str(pki.base / "signer.key.pem"),
            "path": target, "subject": {"CN": "ocsp.example.com"}}))
        tasks.append((f"csr {name}", "csr", {
            "privatekey_path": str(pki.base / "csr.key.pem"), "subject": {"CN": "x"}, "path": target}))
    # the csr module also keeps off the CA's certificate, chain and archived copies
    for label, target in (("ca cert", inter / "certs" / "ca.cert.pem"),
                          ("ca chain", inter / "certs" / "ca-chain.cert.pem"),
                          ("newcerts", newcert[0] if newcert else inter / "newcerts" / "1000.pem")):
        tasks.append((f"csr {label}", "csr", {
            "privatekey_path": str(pki.base / "csr.key.pem"), "subject": {"CN": "x"}, "path": str(target)}))
    before = snapshot(pki.base)
    for check in (True, False):
        run = play(tasks, check=check)
        for name, _module, _args in tasks:
            result = task_result(run, name)
            assert result["failed"], (name, check, result)
            assert "choose another path" in result["msg"] or "a path of its own" in result["msg"], result
        assert snapshot(pki.base) == before
    result = task_result(run, "ca_cert index.txt")
    assert "database file of the CA" in result["msg"] and str(inter) in result["msg"]


def test_a_file_named_like_a_database_outside_a_ca_is_fine(tmp_path):
    """Only files of a CA directory (one with index.txt or private/ca.key.pem) are protected."""
    result = run_module("csr", {"privatekey_path": str(tmp_path / "k.pem"), "subject": {"CN": "x"},
                                "path": str(tmp_path / "serial")})
    assert not result["failed"] and result["changed"], result


# ---- path lengths up the issuer's chain ----------------------------------------------------

def _openssl_intermediate(root: Path, ca: Path, tmp_path: Path):
    """A CA made by hand from `root` with -extensions v3_ca: no pathlen of its own."""
    for sub in ("certs", "newcerts", "private"):
        (ca / sub).mkdir(parents=True)
    (ca / "index.txt").write_text("")
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca / "private" / "ca.key.pem", "-subj", "/CN=Hand-made CA", "-out", tmp_path / "hm.csr")
    openssl("ca", "-batch", "-config", root / "openssl.cnf", "-extensions", "v3_ca", "-notext",
            "-passin", f"pass:{ROOT_PASS}", "-in", tmp_path / "hm.csr", "-out", ca / "certs" / "ca.cert.pem")
    (ca / "certs" / "ca-chain.cert.pem").write_text(
        (ca / "certs" / "ca.cert.pem").read_text() + (root / "certs" / "ca.cert.pem").read_text())


@pytest.mark.parametrize("root_pathlen, allowed", [(1, False), (2, True)])
def test_pathlen_of_the_issuers_issuer_is_enforced(tmp_path, root_pathlen, allowed):
    """Root pathlen:1 -> hand-made CA without pathlen -> a new intermediate: the root allows one
    CA below it, the hand-made one. Issuing the second made a CA whose certificates OpenSSL
    rejects ("path length constraint exceeded"); it must fail before anything is written."""
    root = tmp_path / "root"
    assert not run_module("ca_cert", root_args(root, path_length=root_pathlen))["failed"]
    hand = tmp_path / "hand"
    _openssl_intermediate(root, hand, tmp_path)
    sub = tmp_path / "sub"
    args = intermediate_args(sub, hand, issuer_passphrase=None, valid_days=100)
    before = snapshot(tmp_path)
    result = run_module("ca_cert", args, check=True)
    assert result["failed"] is not allowed, result
    result = run_module("ca_cert", args)
    if not allowed:
        assert result["failed"], result
        assert "path length exceeded" in result["msg"] and "pathlen:1" in result["msg"], result
        assert "issue this CA from a CA higher up" in result["msg"]
        assert snapshot(tmp_path) == before
        # end-entity certificates from the hand-made CA are still fine
        leaf = run_module("ca_cert", {
            "profile": "server", "issuer_dir": str(hand), "privatekey_path": str(tmp_path / "l.key"),
            "path": str(tmp_path / "l.pem"), "subject": {"CN": "l.example.com"}})
        assert not leaf["failed"], leaf
        return
    assert not result["failed"], result
    leaf = run_module("ca_cert", {
        "profile": "server", "issuer_dir": str(sub), "issuer_passphrase": INTER_PASS,
        "privatekey_path": str(tmp_path / "l.key"), "path": str(tmp_path / "l.pem"),
        "subject": {"CN": "l.example.com"}, "valid_days": 30})
    assert not leaf["failed"], leaf
    openssl("verify", "-CAfile", root / "certs" / "ca.cert.pem", "-untrusted", hand / "certs" / "ca.cert.pem",
            "-untrusted", sub / "certs" / "ca.cert.pem", tmp_path / "l.pem")
    # a path_length the root leaves no room for names the limit
    deeper = run_module("ca_cert", intermediate_args(
        tmp_path / "deeper", hand, issuer_passphrase=None, valid_days=100, path_length=1,
        subject={"CN": "Deeper CA"}))
    assert deeper["failed"] and "path_length 1 must be below 1" in deeper["msg"], deeper


# ---- the authority key identifier repeats the issuer's subject key identifier ----------------

def test_authority_key_identifier_is_the_issuers_own(tmp_path):
    """A CA whose subjectKeyIdentifier is not the SHA-1 of its key (made by other tooling, or
    RFC 7093's methods): `openssl ca` copies that identifier into the authority key
    identifier. We computed it from the key instead, and OpenSSL could not find the issuer
    ("unable to get local issuer certificate")."""
    ca = tmp_path / "ca"
    for sub in ("certs", "newcerts", "private"):
        (ca / sub).mkdir(parents=True)
    (ca / "index.txt").write_text("")
    (ca / "index.txt.attr").write_text("unique_subject = no\n")
    ext = tmp_path / "ext.cnf"
    ext.write_text("[v3]\nsubjectKeyIdentifier = 0102030405060708090A0B0C0D0E0F1011121314\n"
                   "basicConstraints = critical, CA:true\nkeyUsage = critical, keyCertSign, cRLSign\n")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca / "private" / "ca.key.pem", "-subj", "/CN=Other SKI CA", "-days", "100",
            "-config", ext, "-extensions", "v3", "-out", ca / "certs" / "ca.cert.pem")
    args = {"issuer_dir": str(ca), "privatekey_path": str(tmp_path / "l.key"), "path": str(tmp_path / "l.pem"),
            "subject": {"CN": "l.example.com"}, "valid_days": 30}
    signer = {**args, "privatekey_path": str(tmp_path / "o.key"), "path": str(tmp_path / "o.pem"),
              "subject": {"CN": "ocsp.example.com"}}
    for module, task_args in (("ca_cert", {**args, "profile": "server"}), ("ocsp_signer", signer)):
        issued = run_module(module, task_args)
        assert issued["changed"] and not issued["failed"], issued
        openssl("verify", "-CAfile", ca / "certs" / "ca.cert.pem", task_args["path"])
        text = openssl("x509", "-in", task_args["path"], "-noout", "-ext", "authorityKeyIdentifier").stdout
        assert "01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14" in text, text
        again = run_module(module, task_args)
        assert again["changed"] is False, again


# ---- results and idempotence ---------------------------------------------------------------

def test_check_mode_returns_the_subject_alt_name_it_would_issue(pki):
    args = pki.leaf("sanpreview", subject_alt_name=["DNS:sanpreview.example.com", "IP:192.0.2.7"])
    predicted = run_module("ca_cert", args, check=True)
    assert predicted["changed"] and predicted["certificate"] is None, predicted
    issued = run_module("ca_cert", args)
    assert predicted["subject_alt_name"] == issued["subject_alt_name"] == [
        "DNS:sanpreview.example.com", "IP:192.0.2.7"]


def test_csr_force_without_path_changes_nothing(tmp_path):
    args = {"privatekey_path": str(tmp_path / "k.pem"), "privatekey_type": "ECC", "subject": {"CN": "x"},
            "force": True}
    assert run_module("csr", args)["changed"] is True  # the key is generated
    before = snapshot(tmp_path)
    for check in (True, False):
        again = run_module("csr", args, check=check)
        assert again["changed"] is False and again["changed_reason"] is None, again
        assert again["csr"].startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert snapshot(tmp_path) == before


def test_reissue_keeps_the_mode_of_the_certificate_and_csr_files(pki):
    """Without the mode option a replaced file keeps its mode (as Ansible's modules do); it
    used to go back to 0644, so a file task setting 0640 changed again after every renewal."""
    args = pki.leaf("keepmode")
    assert not run_module("ca_cert", args)["failed"]
    os.chmod(args["path"], 0o640)
    again = run_module("ca_cert", {**args, "force": True})
    assert again["changed"] is True and again["changed_reason"] == "force=true", again
    assert file_mode(args["path"]) == 0o640
    csr = {"privatekey_path": args["privatekey_path"], "subject": {"CN": "keepmode"},
           "path": str(pki.base / "keepmode.csr")}
    assert not run_module("csr", csr)["failed"]
    assert file_mode(csr["path"]) == 0o644
    os.chmod(csr["path"], 0o600)
    changed = run_module("csr", {**csr, "subject": {"CN": "keepmode2"}})
    assert changed["changed_reason"] == "subject differs", changed
    assert file_mode(csr["path"]) == 0o600


def test_passphrase_errors_name_the_option_to_fix(pki, tmp_path):
    leaf = pki.leaf("pp", privatekey_passphrase="leaf-pass")
    assert not run_module("ca_cert", leaf)["failed"]
    cases = {
        "issuer missing": ({**leaf, "issuer_passphrase": None}, "encrypted and no passphrase was given: set issuer_passphrase"),
        "issuer wrong": ({**leaf, "issuer_passphrase": "nope"}, "wrong passphrase? Check issuer_passphrase"),
        "key missing": ({**leaf, "privatekey_passphrase": None}, "no passphrase was given: set privatekey_passphrase"),
        "key wrong": ({**leaf, "privatekey_passphrase": "nope"}, "wrong passphrase? Check privatekey_passphrase"),
        "root key": (root_args(pki.root, privatekey_passphrase=None), "set privatekey_passphrase"),
    }
    run = play([(name, "ca_cert", args) for name, (args, _message) in cases.items()]
               + [("csr key", "csr", {"privatekey_path": leaf["privatekey_path"], "subject": {"CN": "pp"}})])
    for name, (_args, message) in list(cases.items()) + [("csr key", (None, "set privatekey_passphrase"))]:
        result = task_result(run, name)
        assert result["failed"] and message in result["msg"], (name, result)
