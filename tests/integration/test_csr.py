"""The csr module through ansible-playbook; CSRs checked with openssl req."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.ansible_run import run_playbook
from tests.integration.pki_fixtures import file_mode, openssl, run_module, snapshot, task_result, write_protected


def csr_args(tmp_path, **extra):
    return {"privatekey_path": str(tmp_path / "host.key.pem"), "path": str(tmp_path / "host.csr.pem"),
            "subject": {"O": "Alice Ltd", "CN": "host.example.com"},
            "subject_alt_name": ["DNS:host.example.com", "IP:2001:db8::1"], **extra}


@pytest.mark.parametrize("key_type,extra,openssl_name", [
    ("RSA", {"privatekey_size": 2048}, "Public-Key: (2048 bit)"),
    ("ECC", {"privatekey_curve": "secp256r1"}, "NIST CURVE: P-256"),
    ("Ed25519", {}, "ED25519 Public-Key"),
])
def test_key_and_csr_created_then_stable(tmp_path, key_type, extra, openssl_name):
    args = csr_args(tmp_path, privatekey_type=key_type, **extra)
    first = run_module("csr", args)
    assert first["changed"] is True and not first["failed"], first
    assert file_mode(args["privatekey_path"]) == 0o600
    assert first["csr"] == Path(args["path"]).read_text()
    text = openssl("req", "-in", args["path"], "-noout", "-text", "-verify").stdout
    assert openssl_name in text
    assert "Subject: O = Alice Ltd, CN = host.example.com" in text
    assert "DNS:host.example.com, IP Address:2001:DB8:0:0:0:0:0:1" in text
    pubkey = openssl("pkey", "-in", args["privatekey_path"], "-pubout").stdout
    assert openssl("req", "-in", args["path"], "-noout", "-pubkey").stdout == pubkey

    before = snapshot(tmp_path)
    second = run_module("csr", args)
    assert second["changed"] is False and second["csr"] == first["csr"], second
    assert second["public_key_fingerprint"] == first["public_key_fingerprint"]
    assert snapshot(tmp_path) == before


def test_csr_rewritten_only_when_subject_san_or_key_differ(tmp_path):
    args = csr_args(tmp_path, privatekey_type="ECC")
    first = run_module("csr", args)
    key = Path(args["privatekey_path"]).read_bytes()
    san = run_module("csr", args | {"subject_alt_name": ["DNS:other.example.com"]}, diff=True)
    assert san["changed"] is True and san["changed_reason"] == "subject_alt_name differs", san
    assert san["diff"]["before"]["subject_alt_name"] == ["DNS:host.example.com", "IP:2001:db8::1"]
    assert san["diff"]["after"]["subject_alt_name"] == ["DNS:other.example.com"]
    subject = run_module("csr", args | {"subject": {"CN": "renamed.example.com"}})
    assert subject["changed_reason"] == "subject differs"
    assert Path(args["privatekey_path"]).read_bytes() == key  # the key is kept
    Path(args["privatekey_path"]).unlink()
    rekey = run_module("csr", args | {"subject": {"CN": "renamed.example.com"}})
    assert "private key generated" in rekey["changed_reason"]
    assert "public key differs" in rekey["changed_reason"]
    assert rekey["public_key_fingerprint"] != first["public_key_fingerprint"]


def test_without_path_changes_only_when_key_generated(tmp_path):
    args = {k: v for k, v in csr_args(tmp_path, privatekey_type="Ed25519").items() if k != "path"}
    first = run_module("csr", args)
    assert first["changed"] is True and "BEGIN CERTIFICATE REQUEST" in first["csr"]
    second = run_module("csr", args)
    assert second["changed"] is False and second["csr"] == first["csr"]  # Ed25519 signs deterministically


def test_check_mode_writes_nothing(tmp_path):
    args = csr_args(tmp_path)
    result = run_module("csr", args, check=True, diff=True)
    assert result["changed"] is True and result["csr"] is None, result
    assert result["diff"]["after"]["subject"] == "/O=Alice Ltd/CN=host.example.com"
    assert list(tmp_path.iterdir()) == []


def test_passphrase_encrypts_and_is_required(tmp_path):
    args = csr_args(tmp_path, privatekey_type="ECC", privatekey_passphrase="csr-Secret-2b9e")
    assert run_module("csr", args)["changed"] is True
    assert "aes-256-cbc" in openssl("asn1parse", "-in", args["privatekey_path"]).stdout
    before = snapshot(tmp_path)
    for wrong, message in (({"privatekey_passphrase": "not-it-at-all"}, "wrong passphrase"),
                           ({"privatekey_passphrase": None}, "encrypted and no passphrase")):
        call = {k: v for k, v in args.items() if k != "privatekey_passphrase"}
        if wrong["privatekey_passphrase"]:
            call["privatekey_passphrase"] = wrong["privatekey_passphrase"]
        result = run_module("csr", call | {"subject": {"CN": "changed"}})
        assert result["failed"] and message in result["msg"], result
        assert "csr-Secret-2b9e" not in str(result)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("extra,message", [
    ({"privatekey_type": "RSA"}, "is ECC, not RSA"),
    ({"subject": {"nonsense": "x"}}, "unknown subject attribute"),
    ({"subject_alt_name": ["IP:not-an-ip"]}, "not an IP address"),
    ({"privatekey_type": "ECC", "privatekey_size": 4096}, "privatekey_size only applies to RSA"),
    # the CSR once replaced the key ("not a valid CSR" -> rewrite)
    ({"path": "KEY"}, "path and privatekey_path are the same file"),
    # file attributes were applied after the key and CSR were written
    ({"owner": "no-such-user-pkiops", "subject": {"CN": "changed"}}, "owner no-such-user-pkiops: no such user"),
    ({"group": "no-such-group-pkiops", "subject": {"CN": "changed"}}, "group no-such-group-pkiops: no such group"),
    ({"mode": "u+q", "subject": {"CN": "changed"}}, "must be in octal or symbolic form"),
])
def test_bad_input_fails_and_writes_nothing(tmp_path, extra, message):
    args = csr_args(tmp_path, privatekey_type="ECC")
    assert run_module("csr", args)["changed"] is True
    before = snapshot(tmp_path)
    if extra.get("path") == "KEY":
        extra = {"path": args["privatekey_path"]}
    result = run_module("csr", args | extra)
    assert result["failed"] and message in result["msg"], result
    assert snapshot(tmp_path) == before


def test_csr_path_that_cannot_be_written_leaves_no_key(tmp_path):
    """The new key was written before the CSR: a CSR directory this user cannot write into left
    a key behind (and check mode predicted success)."""
    target = tmp_path / "ro"
    target.mkdir()
    args = csr_args(tmp_path, path=str(target / "host.csr.pem"), privatekey_type="ECC")
    before = snapshot(tmp_path)
    with write_protected(target):
        for check in (True, False):
            result = run_module("csr", args, check=check)
            assert result["failed"], (check, result)
            assert "cannot write path %s: directory %s is not writable" % (args["path"], target) in result["msg"]
            assert "nothing was written" in result["msg"]
    assert snapshot(tmp_path) == before
    # a missing directory for path, or for the key, fails before the key is generated too
    for extra, message in (({"path": str(tmp_path / "missing" / "host.csr.pem")}, "directory of path"),
                           ({"privatekey_path": str(tmp_path / "missing" / "k.pem")}, "for privatekey_path does not exist")):
        for check in (True, False):
            result = run_module("csr", args | extra, check=check)
            assert result["failed"] and message in result["msg"], (extra, check, result)
    assert snapshot(tmp_path) == before
    assert run_module("csr", args)["changed"] is True  # once the directory is writable


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +i needs root")
def test_csr_write_failing_late_leaves_no_new_key(tmp_path):
    """A CSR write that fails after the checks (here: the old CSR is immutable, so the rename
    onto it fails) removes the new key this run wrote. (Its backup of the old CSR goes too,
    but a backup of an immutable file is immutable itself, so that cannot be shown here.)"""
    args = csr_args(tmp_path, privatekey_type="ECC")
    assert run_module("csr", args)["changed"] is True
    os.unlink(args["privatekey_path"])  # a new key, hence a new CSR, next run
    before = snapshot(tmp_path)
    with write_protected(Path(args["path"])):
        result = run_module("csr", args)
    assert result["failed"], result
    assert snapshot(tmp_path) == before


def test_path_of_a_key_to_generate_or_of_another_key_is_refused(tmp_path):
    """Neither a key about to be generated nor any other private key is replaced by the CSR."""
    other = tmp_path / "other.key.pem"
    openssl("genpkey", "-algorithm", "ed25519", "-out", other)
    before = snapshot(tmp_path)
    run = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "same", "pkiops.ocsp.csr": csr_args(tmp_path, path=str(tmp_path / "host.key.pem")),
         "ignore_errors": True},
        {"name": "other key", "pkiops.ocsp.csr": csr_args(tmp_path, path=str(other)), "ignore_errors": True},
    ]}])
    assert "path and privatekey_path are the same file" in task_result(run, "same")["msg"]
    assert "holds a private key" in task_result(run, "other key")["msg"]
    assert snapshot(tmp_path) == before


def test_missing_cryptography_is_a_clear_failure(tmp_path):
    """A target without the library gets missing_required_lib's message, and nothing is written."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", "import cryptography"], capture_output=True, check=False).returncode != 0
    work = tmp_path / "work"
    tasks = [
        ("ca_cert", {"profile": "root_ca", "ca_dir": str(work / "root"), "subject": {"CN": "x"}}),
        ("ocsp_signer", {"issuer_dir": str(work), "path": str(work / "s.pem"),
                         "privatekey_path": str(work / "s.key"), "subject": {"CN": "x"}}),
        ("csr", {"privatekey_path": str(work / "k.pem"), "subject": {"CN": "x"}}),
    ]
    run = run_playbook([{"hosts": "localhost", "gather_facts": False,
                         "vars": {"ansible_python_interpreter": python},
                         "tasks": [{"name": name, f"pkiops.ocsp.{name}": args, "ignore_errors": True}
                                   for name, args in tasks]}])
    for name, _args in tasks:
        result = task_result(run, name)
        assert result["failed"] and "required Python library (cryptography)" in result["msg"], result
    assert not work.exists()
