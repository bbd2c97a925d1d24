"""ca_cert through ansible-playbook, checked with the openssl CLI as the independent party."""
from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.helpers.ansible_run import ROOT, run_playbook
from tests.integration.pki_fixtures import (  # noqa: F401 pylint: disable=unused-import
    INTER_PASS, ROOT_PASS, Pki, base_pki, file_mode, index_lines, intermediate_args, openssl,
    pki, root_args, run_module, snapshot, task_result, write_protected, x509_text)


def play(*tasks, **kwargs):
    """Run tasks (name, module, args) in one playbook; failures do not stop it."""
    run = run_playbook([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [{"name": name, f"pkiops.ocsp.{mod}": args, "ignore_errors": True}
                  for name, mod, args in tasks],
    }], **kwargs)
    return run


# ---- CA creation ---------------------------------------------------------------------------

def test_ca_layout_keys_and_chain(base_pki):
    root, inter = base_pki.root, base_pki.inter
    for ca in (root, inter):
        assert file_mode(ca / "private") == 0o700
        assert file_mode(ca / "private" / "ca.key.pem") == 0o600
        for name in ("index.txt", "index.txt.attr", "serial", "crlnumber", "openssl.cnf"):
            assert (ca / name).is_file(), name
        for name in ("newcerts", "certs", "crl"):
            assert (ca / name).is_dir(), name
        # AES-256 encrypted PKCS#8, as the guide's genrsa -aes256
        parsed = openssl("asn1parse", "-in", ca / "private" / "ca.key.pem").stdout
        assert "PBES2" in parsed and "aes-256-cbc" in parsed
        openssl("pkey", "-in", ca / "private" / "ca.key.pem", "-noout",
                "-passin", f"pass:{ROOT_PASS if ca == root else INTER_PASS}")
    root_pem = (root / "certs" / "ca.cert.pem").read_text()
    inter_pem = (inter / "certs" / "ca.cert.pem").read_text()
    assert (root / "certs" / "ca-chain.cert.pem").read_text() == root_pem
    assert (inter / "certs" / "ca-chain.cert.pem").read_text() == inter_pem + root_pem
    openssl("verify", "-CAfile", root / "certs" / "ca.cert.pem", inter / "certs" / "ca.cert.pem")

    text = x509_text(inter / "certs" / "ca.cert.pem")
    assert re.search(r"Basic Constraints: critical\s+CA:TRUE, pathlen:0", text)
    assert re.search(r"Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign", text)
    root_text = x509_text(root / "certs" / "ca.cert.pem")
    assert re.search(r"Basic Constraints: critical\s+CA:TRUE\s", root_text)
    # The intermediate is recorded in the root's database (the root in its own).
    inter_cert = x509.load_pem_x509_certificate(inter_pem.encode())
    serial_hex = f"{inter_cert.serial_number:X}"
    assert any(line.startswith("V\t") and serial_hex in line for line in index_lines(root))
    assert (root / "newcerts" / f"{serial_hex}.pem").read_text() == inter_pem


def test_second_run_changes_nothing_and_check_mode_agrees(base_pki):
    for args in (root_args(base_pki.root), intermediate_args(base_pki.inter, base_pki.root)):
        before = snapshot(base_pki.base)
        for check in (True, False):
            result = run_module("ca_cert", args, check=check)
            assert result["changed"] is False, result
            assert result["changed_reason"] is None
        assert snapshot(base_pki.base) == before


def test_openssl_ca_works_on_created_ca(pki, tmp_path):
    cnf = pki.inter / "openssl.cnf"
    key = tmp_path / "k.pem"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-subj", "/CN=by-openssl.example.com", "-out", tmp_path / "r.csr")
    openssl("ca", "-batch", "-config", cnf, "-extensions", "server_cert", "-days", "30",
            "-passin", f"pass:{INTER_PASS}", "-in", tmp_path / "r.csr", "-out", tmp_path / "c.pem")
    text = x509_text(tmp_path / "c.pem")
    assert "OCSP - URI:http://ocsp.example.com" in text  # openssl_cnf.ocsp_url
    openssl("ca", "-config", cnf, "-passin", f"pass:{INTER_PASS}", "-revoke", tmp_path / "c.pem")
    openssl("ca", "-config", cnf, "-passin", f"pass:{INTER_PASS}", "-gencrl", "-out", tmp_path / "crl.pem")
    # and our module still issues from it afterwards
    result = run_module("ca_cert", pki.leaf("after-openssl"))
    assert result["changed"] is True and not result.get("failed"), result


def test_openssl_cnf_of_a_pathlen_0_ca_offers_no_intermediate_ca(pki, tmp_path):
    """The intermediate has pathlen:0, yet its openssl.cnf offered v3_intermediate_ca:
    `openssl ca -extensions v3_intermediate_ca` issued a CA whose certificates all fail
    `openssl verify`. The section is left out (a comment says why) and openssl ca refuses."""
    cnf = pki.inter / "openssl.cnf"
    text = cnf.read_text()
    assert not re.search(r"^\[ v3_intermediate_ca \]$", text, re.M)
    assert "this CA's certificate has pathlen:0" in text
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", tmp_path / "sub.key", "-subj", "/CN=Sub CA", "-out", tmp_path / "sub.csr")
    before = snapshot(pki.inter)
    refused = openssl("ca", "-batch", "-config", cnf, "-extensions", "v3_intermediate_ca", "-days", "30",
                      "-passin", f"pass:{INTER_PASS}", "-in", tmp_path / "sub.csr", "-out", tmp_path / "sub.pem",
                      check=False)
    assert refused.returncode != 0, refused.stdout
    assert "v3_intermediate_ca" in refused.stderr, refused.stderr
    assert snapshot(pki.inter) == before
    # the same inputs render the same file: managing the CA again changes nothing
    again = run_module("ca_cert", intermediate_args(pki.inter, pki.root))
    assert again["changed"] is False, again


@pytest.mark.parametrize("root_pathlen", [0, 2])
def test_openssl_cnf_intermediate_ca_section_follows_the_roots_pathlen(tmp_path, root_pathlen):
    """v3_intermediate_ca of a root with pathlen:N offers pathlen:N-1 (none with pathlen:0),
    and what `openssl ca` issues with it verifies down to a leaf."""
    root = tmp_path / "root"
    args = root_args(root, path_length=root_pathlen)
    assert not run_module("ca_cert", args)["failed"]
    cnf = root / "openssl.cnf"
    text = cnf.read_text()
    assert again_unchanged(args)
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", tmp_path / "sub.key", "-subj", "/CN=Sub CA", "-out", tmp_path / "sub.csr")
    issued = openssl("ca", "-batch", "-config", cnf, "-extensions", "v3_intermediate_ca", "-days", "30",
                     "-passin", f"pass:{ROOT_PASS}", "-in", tmp_path / "sub.csr", "-out", tmp_path / "sub.pem",
                     check=False)
    if root_pathlen == 0:
        assert not re.search(r"^\[ v3_intermediate_ca \]$", text, re.M)
        assert issued.returncode != 0
        return
    assert "CA:true, pathlen:%d\n" % (root_pathlen - 1) in text
    assert issued.returncode == 0, issued.stderr
    assert re.search(r"CA:TRUE, pathlen:%d" % (root_pathlen - 1), x509_text(tmp_path / "sub.pem"))
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", tmp_path / "leaf.key", "-subj", "/CN=leaf.example.com", "-out", tmp_path / "leaf.csr")
    openssl("x509", "-req", "-in", tmp_path / "leaf.csr", "-CA", tmp_path / "sub.pem", "-CAkey", tmp_path / "sub.key",
            "-set_serial", "7", "-days", "1", "-out", tmp_path / "leaf.pem")
    openssl("verify", "-CAfile", root / "certs" / "ca.cert.pem", "-untrusted", tmp_path / "sub.pem",
            tmp_path / "leaf.pem")


def again_unchanged(args):
    result = run_module("ca_cert", args)
    return result["changed"] is False and not result["failed"]


def test_check_mode_creates_nothing(tmp_path):
    result = run_module("ca_cert", root_args(tmp_path / "newroot"), check=True, diff=True)
    assert result["changed"] is True and not result.get("failed"), result
    assert result["diff"]["before"] == {}
    assert "CN=Alice Ltd Root CA" in result["diff"]["after"]["subject"]
    assert not (tmp_path / "newroot").exists()


def test_check_mode_predicts_a_missing_parent_directory(tmp_path):
    for check in (True, False):
        result = run_module("ca_cert", root_args(tmp_path / "missing" / "root"), check=check)
        assert result["failed"] and "its parent directory %s does not exist" % (tmp_path / "missing") in result["msg"]
    assert not (tmp_path / "missing").exists()


def test_check_mode_leaf_writes_nothing(pki):
    before = snapshot(pki.base)
    result = run_module("ca_cert", pki.leaf("www"), check=True, diff=True)
    assert result["changed"] is True and result["serial_number"] is None, result
    assert result["diff"]["after"]["subject_alt_name"] == ["DNS:www.example.com"]
    assert snapshot(pki.base) == before


# ---- leaves ------------------------------------------------------------------------------

@pytest.mark.parametrize("profile,key_type,purposes,eku,key_enc", [
    ("server", "RSA", ["sslserver"], "TLS Web Server Authentication", True),
    ("client", "ECC", ["sslclient"], "TLS Web Client Authentication", False),
    ("server_client", "Ed25519", ["sslserver", "sslclient"],
     "TLS Web Server Authentication, TLS Web Client Authentication", False),
])
def test_leaf_profiles(pki, profile, key_type, purposes, eku, key_enc):
    args = pki.leaf("leaf", profile=profile, key_type=key_type,
                    subject_alt_name=["DNS:leaf.example.com", "IP:192.0.2.7", "email:ops@example.com",
                                      "URI:https://leaf.example.com/"],
                    ocsp_url=["http://ocsp.example.com"], crl_url="http://crl.example.com/i.crl",
                    ca_issuers_url="http://ca.example.com/i.cer")
    first = run_module("ca_cert", args)
    assert first["changed"] is True and not first.get("failed"), first
    cert_path = Path(args["path"])
    assert file_mode(args["privatekey_path"]) == 0o600
    text = x509_text(cert_path)
    assert re.search(r"Basic Constraints: critical\s+CA:FALSE", text)
    assert re.search(r"Extended Key Usage: \n\s+" + re.escape(eku), text)
    ku = re.search(r"Key Usage: critical\s+(.+)", text).group(1)
    assert ("Key Encipherment" in ku) == key_enc and "Digital Signature" in ku
    assert "OCSP - URI:http://ocsp.example.com" in text
    assert "CA Issuers - URI:http://ca.example.com/i.cer" in text
    assert "URI:http://crl.example.com/i.crl" in text
    assert "DNS:leaf.example.com, IP Address:192.0.2.7, email:ops@example.com, URI:https://leaf.example.com/" in text
    chain = pki.inter / "certs" / "ca-chain.cert.pem"
    for purpose in purposes:
        openssl("verify", "-purpose", purpose, "-CAfile", pki.root / "certs" / "ca.cert.pem",
                "-untrusted", chain, cert_path)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    assert first["serial_number"] == cert.serial_number
    assert first["serial_number_hex"] == f"{cert.serial_number:X}".rjust(40, "0")[-len(first["serial_number_hex"]):]
    assert first["certificate"] == cert_path.read_text()
    assert first["chain"] == chain.read_text()
    assert first["subject"] == "/O=Alice Ltd/CN=leaf.example.com"
    assert cert.serial_number.bit_length() >= 64
    # recorded in the issuer's database, newcerts/ holds the same certificate
    assert (pki.inter / "newcerts" / f"{first['serial_number_hex']}.pem").read_bytes() == cert_path.read_bytes()
    assert first["serial_number_hex"] in (pki.inter / "index.txt").read_text()

    second = run_module("ca_cert", args)
    assert second["changed"] is False and second["serial_number"] == first["serial_number"], second


@pytest.mark.slow
def test_reissue_reasons(pki, tmp_path):
    """Each difference reissues, with its reason; the same spec again does not."""
    other = tmp_path / "other-inter"
    base = pki.leaf("r", valid_days=30)
    steps = [
        ("first", base, True, "no certificate"),
        ("same", base, False, None),
        ("san", {**base, "subject_alt_name": ["DNS:r.example.com", "DNS:r2.example.com"]}, True,
         "subjectAltName differs"),
        ("subject", {**base, "subject": {"CN": "r.example.com"}}, True, "subject differs"),
        ("digest", {**base, "subject": {"CN": "r.example.com"}, "digest": "sha384"}, True, "digest differs"),
        ("profile", {**base, "subject": {"CN": "r.example.com"}, "digest": "sha384",
                     "profile": "server_client"}, True, "extendedKeyUsage differs"),
        ("ocsp", {**base, "subject": {"CN": "r.example.com"}, "digest": "sha384", "profile": "server_client",
                  "ocsp_url": ["http://ocsp.example.com"]}, True, "extensions differ"),
    ]
    final = steps[-1][1]
    steps += [
        ("validity", {**final, "valid_days": 5, "renew_before_days": 1}, True, "validity period differs"),
        ("short-stable", {**final, "valid_days": 5, "renew_before_days": 1}, False, None),
        ("renew", {**final, "valid_days": 40, "renew_before_days": 10}, True,
         "expires within renew_before_days (10)"),
        ("stable", {**final, "valid_days": 40, "renew_before_days": 10}, False, None),
        ("issuer", {**final, "valid_days": 40, "issuer_dir": str(other)}, True, "issued by a different issuer"),
        ("force", {**final, "valid_days": 40, "issuer_dir": str(other), "force": True}, True, "force"),
    ]
    run = play(("other intermediate", "ca_cert", intermediate_args(other, pki.root)),
               *[(name, "ca_cert", args) for name, args, _c, _r in steps])
    serials = []
    for name, _args, changed, reason in steps:
        result = task_result(run, name)
        assert not result["failed"], (name, result)
        assert result["changed"] is changed, (name, result)
        if reason is None:
            assert result["changed_reason"] is None, (name, result)
        else:
            assert reason in result["changed_reason"], (name, result)
        serials.append(result["serial_number"])
    assert len(set(serials)) == sum(1 for s in steps if s[2])  # a new serial per reissue
    text = x509_text(final["path"])
    assert "Subject: CN = r.example.com" in text and "SHA384" in text


def test_new_key_reissues(pki):
    args = pki.leaf("k")
    first = run_module("ca_cert", args)
    os.remove(args["privatekey_path"])
    second = run_module("ca_cert", args)
    assert second["changed"] is True and second["changed_reason"] == "public key differs", second
    assert second["public_key_fingerprint"] != first["public_key_fingerprint"]


def test_intermediate_respec_keeps_key_and_updates_chain(pki):
    key_before = (pki.inter / "private" / "ca.key.pem").read_bytes()
    result = run_module("ca_cert", intermediate_args(pki.inter, pki.root, crl_url="http://crl.example.com/root.crl"))
    assert result["changed"] is True and "extensions differ" in result["changed_reason"], result
    assert (pki.inter / "private" / "ca.key.pem").read_bytes() == key_before
    pem = (pki.inter / "certs" / "ca.cert.pem").read_text()
    assert (pki.inter / "certs" / "ca-chain.cert.pem").read_text() == pem + (pki.root / "certs" / "ca.cert.pem").read_text()
    assert "URI:http://crl.example.com/root.crl" in x509_text(pki.inter / "certs" / "ca.cert.pem")


def test_renewed_root_updates_intermediate_chain_only(pki):
    """A root renewed with the same key and name still verifies the intermediate: only the
    intermediate's chain file changes, the intermediate certificate is kept."""
    inter_cert = (pki.inter / "certs" / "ca.cert.pem").read_bytes()
    root = run_module("ca_cert", root_args(pki.root, force=True))
    assert root["changed"] is True and root["changed_reason"] == "force=true", root
    inter = run_module("ca_cert", intermediate_args(pki.inter, pki.root))
    assert inter["changed"] is True and inter["changed_reason"] == "chain file updated", inter
    assert (pki.inter / "certs" / "ca.cert.pem").read_bytes() == inter_cert
    assert (pki.inter / "certs" / "ca-chain.cert.pem").read_text() == \
        inter_cert.decode() + (pki.root / "certs" / "ca.cert.pem").read_text()
    assert root["certificate"] == (pki.root / "certs" / "ca.cert.pem").read_text()


def test_diff_shows_before_and_after(pki):
    args = pki.leaf("d")
    run_module("ca_cert", args)
    result = run_module("ca_cert", {**args, "subject_alt_name": ["DNS:d2.example.com"]}, diff=True)
    assert result["diff"]["before"]["subject_alt_name"] == ["DNS:d.example.com"]
    assert result["diff"]["after"]["subject_alt_name"] == ["DNS:d2.example.com"]
    assert result["diff"]["before"]["serial_number"] != result["diff"]["after"]["serial_number"]


def test_backup_file_attributes_and_absent(pki):
    args = pki.leaf("b", mode="0640", backup=True)
    first = run_module("ca_cert", args)
    assert file_mode(args["path"]) == 0o640
    old = Path(args["path"]).read_bytes()
    second = run_module("ca_cert", {**args, "force": True})
    assert Path(second["backup_file"]).read_bytes() == old
    assert second["serial_number"] != first["serial_number"]
    mode_only = run_module("ca_cert", {**args, "mode": "0600"})
    assert mode_only["changed"] is True and mode_only["changed_reason"] is None
    assert file_mode(args["path"]) == 0o600
    gone = run_module("ca_cert", {**args, "state": "absent"})
    assert gone["changed"] is True and not Path(args["path"]).exists()
    again = run_module("ca_cert", {**args, "state": "absent"})
    assert again["changed"] is False
    assert Path(args["privatekey_path"]).exists()  # absent never deletes a key


def test_absent_only_deletes_certificates(pki, tmp_path):
    """state=absent refuses a CA's own files and anything that is not a certificate."""
    leaf = pki.leaf("gone")
    keyfile = tmp_path / "k.pem"
    keyfile.write_text((pki.inter / "private" / "ca.key.pem").read_text())
    assert not run_module("ca_cert", pki.leaf("kept"))["failed"]
    archived = next((pki.inter / "newcerts").iterdir())  # its copy in the issuer's archive
    cases = [
        ("CA cert", "ca_cert", pki.inter / "certs" / "ca.cert.pem", "is the CA certificate file of %s" % pki.inter),
        ("CA key", "ca_cert", pki.inter / "private" / "ca.key.pem", "holds a private key"),
        ("other key", "ocsp_signer", keyfile, "holds a private key"),
        ("config", "ca_cert", pki.inter / "openssl.cnf", "is not a certificate, refusing to delete it"),
        ("archived", "ca_cert", archived, "the archive of the certificates %s issued" % pki.inter),
    ]
    before = snapshot(pki.base, tmp_path)
    tasks = []
    for name, module, path, _msg in cases:
        args = leaf | {"state": "absent", "path": str(path)}
        if module == "ocsp_signer":
            args.pop("profile")
        tasks.append((name, module, args))
    for check in (True, False):
        run = play(*tasks, check=check)
        for name, _module, _path, msg in cases:
            result = task_result(run, name)
            assert result["failed"] and msg in result["msg"], (name, check, result)
    assert snapshot(pki.base, tmp_path) == before


def test_a_link_into_the_archive_is_only_a_link(pki, tmp_path):
    """A path that is a symlink to a newcerts/ copy: the link is replaced or removed, never
    followed, so it is not refused and the archive stays as it is."""
    issued = run_module("ca_cert", pki.leaf("linked"))
    archived = pki.inter / "newcerts" / f"{issued['serial_number_hex']}.pem"
    archive_copy = archived.read_bytes()
    link = tmp_path / "deployed.pem"
    link.symlink_to(archived)
    gone = run_module("ca_cert", pki.leaf("linked") | {"state": "absent", "path": str(link)})
    assert gone["changed"] and not gone.get("failed") and not link.is_symlink(), gone
    assert archived.read_bytes() == archive_copy


def test_key_revoked_for_compromise_is_never_certified_again(pki):
    """After keyCompromise/CACompromise a rerun must not put the same key back into service."""
    leaf = pki.leaf("pwned")
    moved = leaf | {"path": str(pki.base / "pwned-again.cert.pem")}  # the revoked certificate is gone
    inter = intermediate_args(pki.inter, pki.root)
    setup = play(("issue", "ca_cert", leaf),
                 ("revoke leaf", "ca_revoke", {"issuer_dir": str(pki.inter), "path": leaf["path"],
                                               "reason": "keyCompromise"}),
                 ("revoke intermediate", "ca_revoke", {"issuer_dir": str(pki.root),
                                                       "path": str(pki.inter / "certs" / "ca.cert.pem"),
                                                       "reason": "CACompromise"}))
    for name in ("issue", "revoke leaf", "revoke intermediate"):
        assert not task_result(setup, name)["failed"], (name, task_result(setup, name))
    serial = task_result(setup, "issue")["serial_number_hex"]
    before = snapshot(pki.base)
    for check in (True, False):
        run = play(("again", "ca_cert", leaf), ("moved", "ca_cert", moved), ("inter", "ca_cert", inter),
                   check=check)
        for name in ("again", "moved"):
            result = task_result(run, name)
            assert result["failed"], (name, check, result)
            assert "the key of serial %s was revoked for keyCompromise" % serial in result["msg"], result
            assert "move privatekey_path %s away to generate a new key" % leaf["privatekey_path"] in result["msg"]
        result = task_result(run, "inter")
        assert result["failed"] and "revoked for CACompromise" in result["msg"], (check, result)
        assert "create a new CA directory" in result["msg"], result
    assert snapshot(pki.base) == before


# ca_cert run as a plain process (AnsibleModule reads its arguments from the file in argv[1]),
# held between the compromised-key check that decided to issue and the locked write.
HELD_AFTER_CHECK = """
import os, time
from pathlib import Path
from ansible_collections.pkiops.ocsp.plugins.module_utils import issuance
from ansible_collections.pkiops.ocsp.plugins.modules import ca_cert
checked, go = Path(os.environ["HELD_CHECKED"]), Path(os.environ["HELD_GO"])
check = issuance.CertificateIssuance._check_key_not_compromised
def held(self, *args):
    check(self, *args)
    if not checked.exists():
        checked.touch()
        deadline = time.monotonic() + 60
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
issuance.CertificateIssuance._check_key_not_compromised = held
ca_cert.main()
"""


def test_key_revoked_while_issuing_is_not_certified(pki, tmp_path):
    """The compromised-key check runs again under the CA's lock: a keyCompromise revocation
    recorded between the decision and the write used to let the key be certified again."""
    leaf = pki.leaf("racing")
    issued = run_module("ca_cert", leaf)
    assert not issued["failed"], issued
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": leaf | {"path": str(tmp_path / "renewed.cert.pem")}}))
    checked, go = tmp_path / "checked", tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=str(ROOT / ".cache" / "collections"), HELD_CHECKED=str(checked),
               HELD_GO=str(go))
    issuing = subprocess.Popen([sys.executable, "-c", HELD_AFTER_CHECK, str(args)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while not checked.exists() and issuing.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checked.exists(), issuing.communicate()
        revoked = run_module("ca_revoke", {"issuer_dir": str(pki.inter), "path": leaf["path"],
                                           "reason": "keyCompromise"})
        assert not revoked["failed"] and revoked["changed"], revoked
    finally:
        go.touch()
        stdout, stderr = issuing.communicate(timeout=60)
    result = json.loads(stdout)
    assert result.get("failed"), result
    assert "the key of serial %s was revoked for keyCompromise" % issued["serial_number_hex"] in result["msg"], result
    assert not (tmp_path / "renewed.cert.pem").exists()
    assert [line for line in index_lines(pki.inter) if line.startswith("V") and "racing" in line] == [], stderr


def test_unwritable_path_directory_fails_before_signing(pki, tmp_path):
    """Before: signed, recorded in index.txt/newcerts, then 'cannot write' (one more per retry)."""
    target = tmp_path / "ro"
    target.mkdir()
    args = pki.leaf("ro", path=str(target / "ro.cert.pem"), serial_policy="sequential")
    before = snapshot(pki.base, tmp_path)
    with write_protected(target):
        for check in (True, False):
            result = run_module("ca_cert", args, check=check)
            assert result["failed"], (check, result)
            assert "cannot write path %s: directory %s is not writable" % (args["path"], target) in result["msg"]
    assert snapshot(pki.base, tmp_path) == before


def test_root_reissue_checks_its_own_database_first(pki):
    """A root records itself in its own index: check mode and the real run must both refuse
    what record_issued would refuse, before the serial file moves."""
    args = root_args(pki.root, force=True, serial_policy="sequential")
    (pki.root / "index.txt.attr").write_text("unique_subject = yes\n")
    before = snapshot(pki.base)
    for check in (True, False):
        result = run_module("ca_cert", args, check=check)
        assert result["failed"] and "unique_subject = yes" in result["msg"], (check, result)
    assert snapshot(pki.base) == before
    (pki.root / "index.txt.attr").write_text("unique_subject = no\n")
    index = pki.root / "index.txt"
    index.write_text(index.read_text().rstrip("\n"))  # last line without its newline
    before = snapshot(pki.base)
    for check in (True, False):
        result = run_module("ca_cert", args, check=check)
        assert result["failed"] and "incomplete last line" in result["msg"], (check, result)
    assert snapshot(pki.base) == before


def test_file_attributes_in_check_mode(pki):
    """A bad mode fails check mode too; an owner or group unknown in check mode is not an
    error (a user task earlier in the play, skipped in check mode, may create it)."""
    result = run_module("ca_cert", pki.leaf("attrs", mode="u+q"), check=True)
    assert result["failed"] and "must be in octal or symbolic form" in result["msg"], result
    result = run_module("ca_cert", pki.leaf("attrs", owner="no-such-user-pkiops", group="no-such-group-pkiops"),
                        check=True)
    assert not result["failed"] and result["changed"], result


@pytest.mark.parametrize("days_ahead", [300, 10], ids=["far", "inside-renewal-window"])
def test_not_after_absolute(pki, days_ahead):
    """Idempotent even when the date is inside the profile's 30-day renewal window: a
    reissue could only repeat the same expiry. (A fixed date here once turned into that
    case as the calendar caught up with it.)"""
    when = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days_ahead)).replace(
        hour=3, minute=4, second=5, microsecond=0)
    args = pki.leaf(f"na{days_ahead}", not_after=when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    result = run_module("ca_cert", args)
    assert result["not_after"] == when.strftime("%Y%m%d%H%M%SZ"), result
    assert run_module("ca_cert", args)["changed"] is False
    later = when + datetime.timedelta(days=30)
    renewed = run_module("ca_cert", {**args, "not_after": later.strftime("%Y-%m-%dT%H:%M:%SZ")})
    assert renewed["changed"] is True and renewed["not_after"] == later.strftime("%Y%m%d%H%M%SZ")


def test_not_after_with_a_fraction_of_a_second_is_idempotent(pki):
    when = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=100)).replace(
        hour=12, minute=0, second=0, microsecond=0)
    args = pki.leaf("fraction", not_after=when.strftime("%Y-%m-%dT%H:%M:%S.500000+00:00"))
    assert run_module("ca_cert", args)["not_after"] == when.strftime("%Y%m%d%H%M%SZ")
    again = run_module("ca_cert", args)
    assert again["changed"] is False, again["changed_reason"]


def test_sequential_serials(pki):
    (pki.inter / "serial").write_text("2000\n")
    first = run_module("ca_cert", pki.leaf("s1", serial_policy="sequential"))
    second = run_module("ca_cert", pki.leaf("s2", serial_policy="sequential"))
    assert (first["serial_number"], second["serial_number"]) == (0x2000, 0x2001)
    assert (pki.inter / "serial").read_text().strip() == "2002"


@pytest.mark.slow
def test_parallel_forks_get_distinct_serials(pki, tmp_path):
    hosts = [f"h{i}" for i in range(8)]
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[all]\n" + "\n".join(f"{h} ansible_connection=local" for h in hosts) + "\n")
    args = pki.leaf("par")
    args.update(privatekey_path=str(pki.base / "{{ inventory_hostname }}.key.pem"),
                path=str(pki.base / "{{ inventory_hostname }}.cert.pem"),
                subject={"CN": "{{ inventory_hostname }}.example.com"},
                serial_policy="sequential")
    run = run_playbook([{"hosts": "all", "gather_facts": False,
                         "tasks": [{"name": "issue", "pkiops.ocsp.ca_cert": args}]}],
                       inventory=str(inventory), args=["--forks", "8"])
    assert run.rc == 0, run.output
    serials = []
    for host in hosts:
        cert = x509.load_pem_x509_certificate((pki.base / f"{host}.cert.pem").read_bytes())
        serials.append(cert.serial_number)
    assert len(set(serials)) == len(hosts)
    index = (pki.inter / "index.txt").read_text()
    assert all(f"{s:X}" in index for s in serials)
    status = openssl("ca", "-config", pki.inter / "openssl.cnf", "-status", f"{serials[0]:X}", check=False)
    assert f"{serials[0]:X}=Valid (V)" in status.stdout + status.stderr


@pytest.mark.slow
def test_parallel_forks_create_one_root(tmp_path):
    """Every fork runs the same root_ca task: one key, one root, and all return it."""
    hosts = [f"h{i}" for i in range(6)]
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[all]\n" + "\n".join(f"{h} ansible_connection=local" for h in hosts) + "\n")
    for attempt in range(3):  # the race is timing-dependent: several fresh directories
        root = tmp_path / f"root{attempt}"
        run = run_playbook([{"hosts": "all", "gather_facts": False,
                             "tasks": [{"name": "root", "pkiops.ocsp.ca_cert": root_args(root)}]}],
                           inventory=str(inventory), args=["--forks", str(len(hosts))])
        assert run.rc == 0, run.output
        returned = {e["result"]["certificate"] for e in run.results if e["task"] == "root"}
        assert returned == {(root / "certs" / "ca.cert.pem").read_text()}
        assert len(index_lines(root)) == 1
        key = serialization.load_pem_private_key((root / "private" / "ca.key.pem").read_bytes(), ROOT_PASS.encode())
        on_disk = x509.load_pem_x509_certificate((root / "certs" / "ca.cert.pem").read_bytes())
        assert key.public_key() == on_disk.public_key()


# ---- CSR flow ----------------------------------------------------------------------------

@pytest.mark.slow
def test_csr_flow_idempotent_key_stays(pki, tmp_path):
    host = tmp_path / "host"
    host.mkdir()
    csr_args = {"privatekey_path": str(host / "web.key.pem"), "privatekey_type": "ECC",
                "subject": {"O": "Alice Ltd", "CN": "web.example.com"},
                "subject_alt_name": ["DNS:web.example.com"], "path": str(host / "web.csr.pem")}
    sign = {"profile": "server", **pki.issuer_args(), "csr_content": "{{ req.csr }}",
            "copy_from_csr": ["subject", "subject_alt_name"], "path": str(pki.base / "web.cert.pem")}
    playbook = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "csr", "pkiops.ocsp.csr": csr_args, "register": "req"},
        {"name": "sign", "pkiops.ocsp.ca_cert": sign},
        {"name": "sign from file", "pkiops.ocsp.ca_cert": {
            **{k: v for k, v in sign.items() if k != "csr_content"}, "csr_path": csr_args["path"]}},
    ]}]
    first = run_playbook(playbook)
    assert first.rc == 0, first.output
    assert first.task("sign")["changed"] is True
    assert first.task("sign from file")["changed"] is False
    second = run_playbook(playbook)
    assert second.rc == 0, second.output
    for name in ("csr", "sign", "sign from file"):
        assert second.task(name)["changed"] is False, (name, second.task(name))
    cert = x509.load_pem_x509_certificate((pki.base / "web.cert.pem").read_bytes())
    key = serialization.load_pem_private_key((host / "web.key.pem").read_bytes(), None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    assert cert.subject.rfc4514_string() == "CN=web.example.com,O=Alice Ltd"
    assert not list(pki.base.glob("**/web.key.pem"))  # the key never went to the CA side


def test_csr_cannot_smuggle_ca_or_extensions(pki, tmp_path):
    key, csr = tmp_path / "evil.key", tmp_path / "evil.csr"
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=evil.example.com",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectAltName=DNS:bank.example.com",
            "-addext", "nameConstraints=permitted;DNS:example.com")
    assert "CA:TRUE" in openssl("req", "-in", csr, "-noout", "-text").stdout
    result = run_module("ca_cert", {"profile": "server", **pki.issuer_args(), "csr_path": str(csr),
                                    "copy_from_csr": ["subject"], "path": str(tmp_path / "evil.pem")})
    assert result["changed"] is True and not result.get("failed"), result
    text = x509_text(tmp_path / "evil.pem")
    assert re.search(r"Basic Constraints: critical\s+CA:FALSE", text)
    assert "Certificate Sign" not in text and "bank.example.com" not in text
    assert "Name Constraints" not in text
    # the leaf cannot act as a CA: a certificate signed with its key does not verify
    openssl("req", "-new", "-key", key, "-subj", "/CN=child.example.com", "-out", tmp_path / "child.csr")
    openssl("x509", "-req", "-in", tmp_path / "child.csr", "-CA", tmp_path / "evil.pem", "-CAkey", key,
            "-CAcreateserial", "-days", "1", "-out", tmp_path / "child.pem")
    bundle = tmp_path / "untrusted.pem"
    bundle.write_text((pki.inter / "certs" / "ca-chain.cert.pem").read_text() + (tmp_path / "evil.pem").read_text())
    verify = openssl("verify", "-CAfile", pki.root / "certs" / "ca.cert.pem", "-untrusted", bundle,
                     tmp_path / "child.pem", check=False)
    assert verify.returncode != 0, verify.stdout


# ---- an `openssl ca` made directory ------------------------------------------------------

OPENSSL_CA_CNF = """\
[ ca ]
default_ca = CA_default
[ CA_default ]
dir = {dir}
new_certs_dir = $dir/newcerts
database = $dir/index.txt
serial = $dir/serial
private_key = $dir/private/ca.key.pem
certificate = $dir/certs/ca.cert.pem
default_md = sha256
default_days = 30
policy = policy_any
crlnumber = $dir/crlnumber
default_crl_days = 30
[ policy_any ]
commonName = supplied
[ v3_ca ]
basicConstraints = critical, CA:true
keyUsage = critical, digitalSignature, cRLSign, keyCertSign
subjectKeyIdentifier = hash
[ server_cert ]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
"""


@pytest.fixture
def openssl_made_ca(tmp_path):
    ca = tmp_path / "openssl-ca"
    for sub in ("certs", "crl", "newcerts", "private"):
        (ca / sub).mkdir(parents=True)
    (ca / "index.txt").write_text("")
    (ca / "serial").write_text("1000\n")
    (ca / "crlnumber").write_text("1000\n")
    cnf = ca / "openssl.cnf"
    cnf.write_text(OPENSSL_CA_CNF.format(dir=ca))
    openssl("req", "-config", cnf, "-new", "-x509", "-newkey", "rsa:2048", "-extensions", "v3_ca",
            "-keyout", ca / "private" / "ca.key.pem", "-passout", "pass:legacy-pass",
            "-subj", "/CN=Legacy CA", "-days", "3650", "-out", ca / "certs" / "ca.cert.pem")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "a.key",
            "-subj", "/CN=a.example.com", "-out", tmp_path / "a.csr")
    openssl("ca", "-batch", "-config", cnf, "-extensions", "server_cert", "-passin", "pass:legacy-pass",
            "-in", tmp_path / "a.csr", "-out", tmp_path / "a.pem")
    return ca


def test_issue_from_openssl_made_ca(openssl_made_ca, tmp_path):
    ca = openssl_made_ca
    cnf_before = (ca / "openssl.cnf").read_bytes()
    result = run_module("ca_cert", {
        "profile": "server", "issuer_dir": str(ca), "issuer_passphrase": "legacy-pass",
        "serial_policy": "sequential", "privatekey_path": str(tmp_path / "b.key"),
        "path": str(tmp_path / "b.pem"), "subject": {"CN": "b.example.com"}})
    assert result["changed"] is True and not result.get("failed"), result
    assert result["serial_number"] == 0x1001 and result["serial_number_hex"] == "1001"
    assert (ca / "openssl.cnf").read_bytes() == cnf_before  # never rewrites the issuer's config
    openssl("verify", "-CAfile", ca / "certs" / "ca.cert.pem", tmp_path / "b.pem")
    # openssl ca keeps working on the directory: issue, revoke ours, CRL, status
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", tmp_path / "c.key",
            "-subj", "/CN=c.example.com", "-out", tmp_path / "c.csr")
    openssl("ca", "-batch", "-config", ca / "openssl.cnf", "-extensions", "server_cert",
            "-passin", "pass:legacy-pass", "-in", tmp_path / "c.csr", "-out", tmp_path / "c.pem")
    assert x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes()).serial_number == 0x1002
    openssl("ca", "-config", ca / "openssl.cnf", "-passin", "pass:legacy-pass", "-revoke", tmp_path / "b.pem")
    openssl("ca", "-config", ca / "openssl.cnf", "-passin", "pass:legacy-pass", "-gencrl",
            "-out", tmp_path / "crl.pem")
    crl = openssl("crl", "-in", tmp_path / "crl.pem", "-noout", "-text").stdout
    assert "Serial Number: 1001" in crl
    lines = index_lines(ca)
    assert [line.split("\t")[0] for line in lines] == ["V", "R", "V"]


def test_key_revoked_by_openssl_ca_for_compromise_is_not_certified_again(openssl_made_ca, tmp_path):
    """openssl ca writes its text dump before the PEM (-out, newcerts/): the revoked
    certificate is still read, so its key is refused; and state=absent still deletes such
    a file (it is a certificate)."""
    ca = openssl_made_ca
    openssl("ca", "-config", ca / "openssl.cnf", "-passin", "pass:legacy-pass", "-revoke", tmp_path / "a.pem",
            "-crl_reason", "keyCompromise")
    assert next((ca / "newcerts").iterdir()).read_bytes().startswith(b"Certificate:")
    before = snapshot(ca)
    result = run_module("ca_cert", {
        "profile": "server", "issuer_dir": str(ca), "issuer_passphrase": "legacy-pass",
        "privatekey_path": str(tmp_path / "a.key"), "path": str(tmp_path / "a-again.pem"),
        "subject": {"CN": "a-again.example.com"}})
    assert result["failed"] and "was revoked for keyCompromise" in result["msg"], result
    assert snapshot(ca) == before and not (tmp_path / "a-again.pem").exists()
    gone = run_module("ca_cert", {"profile": "server", "issuer_dir": str(ca), "state": "absent",
                                  "path": str(tmp_path / "a.pem")})
    assert gone["changed"] and not (tmp_path / "a.pem").exists(), gone


def test_unique_subject_conflict_fails_before_writing(openssl_made_ca, tmp_path):
    """openssl ca wrote unique_subject = yes: reissuing the same subject must fail cleanly."""
    before = snapshot(openssl_made_ca, tmp_path / "dup.key")
    result = run_module("ca_cert", {
        "profile": "server", "issuer_dir": str(openssl_made_ca), "issuer_passphrase": "legacy-pass",
        "privatekey_path": str(tmp_path / "dup.key"), "path": str(tmp_path / "dup.pem"),
        "subject": {"CN": "a.example.com"}})
    assert result["failed"] and "unique_subject" in result["msg"], result
    assert snapshot(openssl_made_ca, tmp_path / "dup.key") == before
    assert not (tmp_path / "dup.pem").exists()


# ---- failures: clear message, every file as it was ----------------------------------------

def _tampered_csr(tmp_path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name.from_rfc4514_string("CN=tampered.example.com"))
           .sign(key, __import__("cryptography.hazmat.primitives.hashes", fromlist=["SHA256"]).SHA256()))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    # swap the subject's CN text: the signature no longer covers what is presented
    pos = der.find(b"tampered")
    der[pos:pos + 8] = b"TAMPERED"
    path = tmp_path / "tampered.csr"
    path.write_bytes(der)
    return path


def _failure_cases(pki: Pki, tmp_path: Path):
    leaf = pki.leaf("fail")
    return {
        "wrong issuer passphrase": (leaf | {"issuer_passphrase": "nope"}, "wrong passphrase"),
        "missing issuer passphrase": ({k: v for k, v in leaf.items() if k != "issuer_passphrase"},
                                      "no passphrase"),
        "wrong key passphrase": ("existing-key", "wrong passphrase"),
        "issuer key/cert mismatch": ("swap-issuer-key", "does not match"),
        "invalid CSR signature": ("tampered-csr", "signature"),
        "past issuer expiry": (leaf | {"valid_days": 40000}, "past the issuer's own expiry"),
        "path length exceeded": (intermediate_args(tmp_path / "sub", pki.inter) | {"issuer_passphrase": INTER_PASS},
                                 "path length exceeded"),
        "unknown profile": (leaf | {"profile": "email"}, "value of profile must be one of"),
        "unreadable CSR": ({k: v for k, v in leaf.items() if not k.startswith("privatekey")}
                           | {"csr_path": str(tmp_path)}, "cannot read CSR"),
        "missing issuer dir": (leaf | {"issuer_dir": str(tmp_path / "nowhere")}, "does not exist"),
        "not a CA issuer": ("leaf-as-issuer", "not a CA certificate"),
        "bad SAN": (leaf | {"subject_alt_name": ["bogus"]}, "TYPE:value"),
        "key type mismatch": ("existing-key-type", "is ECC, not RSA"),
        "CA option on leaf": (leaf | {"path_length": 1}, "path_length only applies"),
        "missing issuer key": ("remove-issuer-key", "cannot read issuer key"),
        "unreadable subject key": (leaf | {"privatekey_path": str(tmp_path)}, "cannot read private key"),
        "missing path directory": (leaf | {"path": str(tmp_path / "nodir" / "x.pem")}, "for path does not exist"),
        "renew window as long as validity": (leaf | {"valid_days": 20, "renew_before_days": 20},
                                             "must be shorter than valid_days"),
        "ca_dir is issuer_dir": (intermediate_args(pki.root, pki.root) | {"privatekey_passphrase": ROOT_PASS},
                                 "ca_dir and issuer_dir are the same directory"),
        "leaf over issuer certificate": (leaf | {"path": str(pki.inter / "certs" / "ca.cert.pem")},
                                         "is the CA certificate file of %s" % pki.inter),
        "leaf over another CA's chain": (leaf | {"path": str(pki.root / "certs" / "ca-chain.cert.pem")},
                                         "is the CA certificate file of %s" % pki.root),
        # openssl ca would copy it, as UTF-8, into an IA5String of every certificate it issues
        "non-ASCII openssl.cnf URL": (intermediate_args(tmp_path / "idn-ca", pki.root)
                                      | {"issuer_passphrase": ROOT_PASS,
                                         "openssl_cnf": {"crl_url": "http://bücher.example/ca.crl"}},
                                      "openssl_cnf.crl_url 'http://bücher.example/ca.crl' contains non-ASCII"
                                      " characters, which a certificate cannot carry: write the domain in its"
                                      " IDNA A-label (xn--) form, URI:http://xn--bcher-kva.example/ca.crl"),
        # a private key "is not a certificate", so a certificate used to be written over it
        "leaf over issuer key": (leaf | {"path": str(pki.inter / "private" / "ca.key.pem")},
                                 "is the private key of the CA %s" % pki.inter),
        "path is privatekey_path": (leaf | {"path": leaf["privatekey_path"]},
                                    "path and privatekey_path are the same file"),
        "path is csr_path": ({k: v for k, v in leaf.items() if not k.startswith("privatekey")}
                             | {"csr_path": str(tmp_path / "x.csr"), "path": str(tmp_path / "x.csr")},
                             "path and csr_path are the same file"),
        "path holds a private key": ("key-at-path", "holds a private key (a PEM PRIVATE KEY block)"),
        # file attributes used to be applied after the key, certificate and index entry
        "unknown owner": (leaf | {"owner": "no-such-user-pkiops"}, "owner no-such-user-pkiops: no such user"),
        "unknown group": (leaf | {"group": "no-such-group-pkiops"}, "group no-such-group-pkiops: no such group"),
        "bad mode": (leaf | {"mode": "u+q"}, "must be in octal or symbolic form"),
        # the archive openssl ca and ca_revoke read: an issued certificate's copy must stay its own
        "path in the issuer's newcerts": (leaf | {"path": str(pki.inter / "newcerts" / "fail.pem")},
                                          "the archive of the certificates %s issued" % pki.inter),
    }


FAILURES = ["wrong issuer passphrase", "missing issuer passphrase", "wrong key passphrase",
            "issuer key/cert mismatch", "invalid CSR signature", "past issuer expiry",
            "path length exceeded", "unknown profile", "unreadable CSR", "missing issuer dir",
            "not a CA issuer", "bad SAN", "key type mismatch", "CA option on leaf", "missing path directory",
            "missing issuer key", "unreadable subject key",
            "renew window as long as validity", "ca_dir is issuer_dir", "leaf over issuer certificate",
            "leaf over another CA's chain", "non-ASCII openssl.cnf URL", "leaf over issuer key",
            "path is privatekey_path", "path is csr_path", "path holds a private key", "unknown owner",
            "unknown group", "bad mode", "path in the issuer's newcerts"]


@pytest.mark.parametrize("case", FAILURES)
def test_failures_leave_files_unchanged(pki, tmp_path, case):
    args, expected = _failure_cases(pki, tmp_path)[case]
    leaf = pki.leaf("fail")
    if args in ("existing-key", "existing-key-type"):
        ok = run_module("ca_cert", leaf | {"privatekey_passphrase": "key-pass"})
        assert not ok["failed"], ok
        if args == "existing-key":
            args = leaf | {"privatekey_passphrase": "not-the-key-pass"}
        else:
            args = {k: v for k, v in leaf.items() if k != "privatekey_curve"}
            args |= {"privatekey_passphrase": "key-pass", "privatekey_type": "RSA", "force": True}
    elif args == "swap-issuer-key":
        key = ec.generate_private_key(ec.SECP384R1())
        (pki.inter / "private" / "ca.key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(INTER_PASS.encode())))
        args = leaf
    elif args == "key-at-path":
        combined = tmp_path / "combined.pem"  # certificate + key in one file, as some servers want
        ok = run_module("ca_cert", pki.leaf("combined"))
        combined.write_text(Path(ok["path"]).read_text() + Path(ok["privatekey_path"]).read_text())
        args = leaf | {"path": str(combined)}
    elif args == "remove-issuer-key":
        (pki.inter / "private" / "ca.key.pem").unlink()
        args = leaf
    elif args == "tampered-csr":
        args = {k: v for k, v in leaf.items() if not k.startswith("privatekey")}
        args |= {"csr_path": str(_tampered_csr(tmp_path))}
    elif args == "leaf-as-issuer":
        fake = tmp_path / "fake-ca"
        shutil.copytree(pki.inter, fake)
        ok = run_module("ca_cert", pki.leaf("victim"))
        shutil.copy(ok["path"], fake / "certs" / "ca.cert.pem")
        shutil.copy(pki.base / "victim.key.pem", fake / "private" / "ca.key.pem")
        args = leaf | {"issuer_dir": str(fake), "issuer_passphrase": None}
    before = snapshot(pki.base, tmp_path)
    result = run_module("ca_cert", args)
    assert result.get("failed"), result
    assert expected in result["msg"], result["msg"]
    assert snapshot(pki.base, tmp_path) == before


@pytest.mark.slow
def test_passphrases_never_in_output(tmp_path):
    secrets = {"root": "Rt-zq8-unique-pass", "inter": "In-k2w-unique-pass", "leaf": "Lf-p0v-unique-pass"}
    root = root_args(tmp_path / "r", privatekey_passphrase=secrets["root"])
    inter = intermediate_args(tmp_path / "i", tmp_path / "r", issuer_passphrase=secrets["root"],
                              privatekey_passphrase=secrets["inter"])
    leaf = {"profile": "client", "issuer_dir": str(tmp_path / "i"), "issuer_passphrase": secrets["inter"],
            "privatekey_path": str(tmp_path / "l.key"), "privatekey_type": "Ed25519",
            "privatekey_passphrase": secrets["leaf"], "path": str(tmp_path / "l.pem"),
            "subject": {"CN": "l"}}
    run = play(("root", "ca_cert", root), ("inter", "ca_cert", inter), ("leaf", "ca_cert", leaf),
               ("signer", "ocsp_signer", {k: v for k, v in leaf.items() if k != "profile"}
                | {"path": str(tmp_path / "s.pem"), "privatekey_path": str(tmp_path / "s.key")}),
               ("wrong", "ca_cert", leaf | {"issuer_passphrase": secrets["inter"] + "x"}),
               ("csr", "csr", {"privatekey_path": str(tmp_path / "c.key"), "subject": {"CN": "c"},
                               "privatekey_passphrase": secrets["leaf"]}),
               args=["-vvv"], diff=True)
    assert task_result(run, "leaf")["changed"] is True and task_result(run, "wrong")["failed"] is True
    for secret in secrets.values():
        assert secret not in run.output
        assert secret + "x" not in run.output
        assert secret not in str(run.results)
