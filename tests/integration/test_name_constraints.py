"""ca_cert / ocsp_signer: RFC 5280 name constraints of the issuer's chain are checked before
anything is issued, and `openssl verify` is the independent party.

ca_cert cannot put nameConstraints on a CA, so the constrained CAs are made by hand with
openssl, as an operator (or another tool) would.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.ansible_run import run_playbook
from tests.integration.pki_fixtures import (
    INTER_PASS, intermediate_args, openssl, run_module, snapshot, task_result)

ALICE = {"C": "GB", "O": "Alice Ltd"}

CONSTRAINTS = ", ".join([
    "critical",
    "permitted;DNS:example.com",
    "permitted;email:example.com",
    "permitted;email:.example.com",
    "permitted;IP:192.0.2.0/255.255.255.0",
    "permitted;IP:2001:db8::/ffff:ffff::",
    "permitted;URI:.example.com",
    "permitted;dirName:alice_dn",
    "excluded;DNS:secret.example.com",
    "excluded;IP:192.0.2.128/255.255.255.128",
    "excluded;email:boss@example.com",
])
ALICE_DN = "[alice_dn]\nC = GB\nO = Alice Ltd\n"


def constrained_ca(ca: Path, constraints: str, extra_sections: str = "", subject="/C=GB/O=Alice Ltd/CN=Constrained CA"):
    """A self-signed CA directory made by hand, its certificate carrying `constraints`."""
    for sub in ("certs", "newcerts", "private"):
        (ca / sub).mkdir(parents=True)
    (ca / "index.txt").write_text("")
    (ca / "index.txt.attr").write_text("unique_subject = no\n")
    ext = ca.parent / f"{ca.name}-ext.cnf"
    ext.write_text("[v3]\nsubjectKeyIdentifier = hash\nbasicConstraints = critical, CA:true\n"
                   f"keyUsage = critical, keyCertSign, cRLSign\nnameConstraints = {constraints}\n"
                   + extra_sections)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca / "private" / "ca.key.pem", "-subj", subject, "-days", "100",
            "-config", ext, "-extensions", "v3", "-out", ca / "certs" / "ca.cert.pem")
    return ca


def dn(subject: dict) -> str:
    return "".join(f"/{key}={value}" for key, value in subject.items())


def leaf(ca: Path, base: Path, name: str, subject: dict, sans: list, **extra) -> dict:
    args = {"profile": "server", "issuer_dir": str(ca), "privatekey_path": str(base / f"{name}.key"),
            "privatekey_type": "ECC", "privatekey_curve": "secp256r1", "path": str(base / f"{name}.pem"),
            "subject": subject, "valid_days": 30, **extra}
    if sans:
        args["subject_alt_name"] = sans
    return args


def play(tasks, **kwargs):
    return run_playbook([{"hosts": "localhost", "gather_facts": False,
                          "tasks": [{"name": name, f"pkiops.ocsp.{module}": args, "ignore_errors": True}
                                    for name, module, args in tasks]}], **kwargs)


def signed_by_hand(ca: Path, base: Path, name: str, subject: dict, sans: list, ca_key_pass=None) -> Path:
    """The certificate the module refused, signed with openssl instead (what it would have been)."""
    key, csr, ext, out = (base / f"twin-{name}.{suffix}" for suffix in ("key", "csr", "cnf", "pem"))
    openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
            "-subj", dn(subject), "-out", csr)
    lines = ["[e]", "basicConstraints = critical, CA:FALSE", "keyUsage = critical, digitalSignature",
             "extendedKeyUsage = serverAuth"]
    if sans:
        lines.append("subjectAltName = " + ", ".join(sans))
    ext.write_text("\n".join(lines) + "\n")
    passin = ["-passin", f"pass:{ca_key_pass}"] if ca_key_pass else []
    openssl("x509", "-req", "-in", csr, "-CA", ca / "certs" / "ca.cert.pem", "-CAkey", ca / "private" / "ca.key.pem",
            *passin, "-set_serial", "4660", "-days", "1", "-extfile", ext, "-extensions", "e", "-out", out)
    return out


def verify(root: Path, cert, *untrusted):
    args = ["verify", "-CAfile", root / "certs" / "ca.cert.pem"]
    for path in untrusted:
        args += ["-untrusted", path]
    return openssl(*args, cert, check=False)


ALLOWED_SANS = ["DNS:www.example.com", "DNS:example.com", "IP:192.0.2.5", "IP:2001:db8::5",
                "email:web@example.com", "email:ops@mail.example.com", "URI:https://www.example.com:8443/x"]

REFUSED = {
    # name: (subject, subject_alt_name, what the module says, what openssl verify says)
    "dns outside": ({**ALICE, "CN": "x"}, ["DNS:www.example.org"],
                    "DNS:www.example.org is outside the permitted subtrees", "permitted subtree violation"),
    "dns label boundary": ({**ALICE, "CN": "x"}, ["DNS:badexample.com"],
                           "DNS:badexample.com is outside the permitted subtrees", "permitted subtree violation"),
    "dns excluded": ({**ALICE, "CN": "x"}, ["DNS:a.Secret.example.com"],
                     "DNS:a.Secret.example.com is inside the excluded subtree DNS:secret.example.com",
                     "excluded subtree violation"),
    "ipv4 outside": ({**ALICE, "CN": "x"}, ["IP:198.51.100.1"],
                     "IP:198.51.100.1 is outside the permitted subtrees", "permitted subtree violation"),
    "ipv4 excluded": ({**ALICE, "CN": "x"}, ["IP:192.0.2.200"],
                      "IP:192.0.2.200 is inside the excluded subtree IP:192.0.2.128/255.255.255.128",
                      "excluded subtree violation"),
    "ipv6 outside": ({**ALICE, "CN": "x"}, ["IP:2001:db9::1"],
                     "IP:2001:db9::1 is outside the permitted subtrees", "permitted subtree violation"),
    "email outside": ({**ALICE, "CN": "x"}, ["email:x@example.org"],
                      "email:x@example.org is outside the permitted subtrees", "permitted subtree violation"),
    "email excluded": ({**ALICE, "CN": "x"}, ["email:boss@example.com"],
                       "email:boss@example.com is inside the excluded subtree email:boss@example.com",
                       "excluded subtree violation"),
    "uri outside": ({**ALICE, "CN": "x"}, ["URI:https://www.example.org/"],
                    "URI:https://www.example.org/ is outside the permitted subtrees", "permitted subtree violation"),
    "uri apex": ({**ALICE, "CN": "x"}, ["URI:https://example.com/"],
                 "URI:https://example.com/ is outside the permitted subtrees", "permitted subtree violation"),
    "subject dn": ({"C": "GB", "O": "Mallory Ltd", "CN": "x.example.com"}, ["DNS:x.example.com"],
                   "subject /C=GB/O=Mallory Ltd/CN=x.example.com is outside the permitted subtrees",
                   "permitted subtree violation"),
    "subject email": ({**ALICE, "CN": "x", "emailAddress": "x@example.org"}, [],
                      "subject emailAddress x@example.org is outside the permitted subtrees",
                      "permitted subtree violation"),
    "cn as dns": ({**ALICE, "CN": "www.example.org"}, [],
                  "subject CN=www.example.org (checked as a DNS name", "permitted subtree violation"),
}


def test_names_outside_the_issuers_constraints_are_refused_and_fail_openssl_verify(tmp_path):
    """A CA with nameConstraints: certificates outside them were issued, recorded and delivered,
    and then failed `openssl verify` ("permitted/excluded subtree violation")."""
    ca = constrained_ca(tmp_path / "ca", CONSTRAINTS, ALICE_DN)
    out = tmp_path / "out"
    out.mkdir()
    tasks = [(name, "ca_cert", leaf(ca, out, name.replace(" ", "-"), subject, sans))
             for name, (subject, sans, _message, _openssl) in REFUSED.items()]
    signer = {"issuer_dir": str(ca), "privatekey_path": str(out / "signer.key"), "privatekey_type": "ECC",
              "path": str(out / "signer.pem"), "subject": {**ALICE, "CN": "ocsp.example.net"}}
    tasks.append(("ocsp signer", "ocsp_signer", signer))
    before = snapshot(tmp_path)
    for check in (True, False):
        run = play(tasks, check=check)
        for name, (_subject, _sans, message, _openssl) in REFUSED.items():
            result = task_result(run, name)
            assert result["failed"], (name, check, result)
            assert message in result["msg"], (name, result["msg"])
            assert "/C=GB/O=Alice Ltd/CN=Constrained CA" in result["msg"] and "nothing was issued" in result["msg"]
        result = task_result(run, "ocsp signer")
        assert result["failed"] and "subject CN=ocsp.example.net (checked as a DNS name" in result["msg"], result
        assert snapshot(tmp_path) == before  # no key, certificate, serial or index line
    # what the module refused, openssl signs without a question, and openssl verify rejects
    for name, (subject, sans, _message, expected) in REFUSED.items():
        twin = signed_by_hand(ca, tmp_path, name.replace(" ", "-"), subject, sans)
        checked = verify(ca, twin)
        assert checked.returncode != 0 and expected in checked.stdout + checked.stderr, (name, checked)

    # names inside the constraints are issued, and verify
    allowed = leaf(ca, out, "allowed", {**ALICE, "CN": "www.example.com"}, ALLOWED_SANS)
    plain_cn = leaf(ca, out, "plain", {**ALICE, "CN": "Alice service"}, ["IP:192.0.2.9"])
    signer = {**signer, "subject": {**ALICE, "CN": "OCSP signer"}}
    for check in (True, False):
        run = play([("allowed", "ca_cert", allowed), ("plain cn", "ca_cert", plain_cn),
                    ("ocsp signer", "ocsp_signer", signer)], check=check)
        for name in ("allowed", "plain cn", "ocsp signer"):
            result = task_result(run, name)
            assert not result["failed"] and result["changed"], (name, check, result)
    for path in (allowed["path"], plain_cn["path"], signer["path"]):
        checked = verify(ca, path)
        assert checked.returncode == 0, checked
    again = run_module("ca_cert", allowed)
    assert again["changed"] is False, again


def test_constraints_of_a_ca_higher_up_the_chain(tmp_path):
    """The root's constraints bind certificates under an intermediate made by our module too:
    the intermediate itself (its subject) and the leaves it issues."""
    root = constrained_ca(tmp_path / "root", "critical, permitted;DNS:example.com, permitted;dirName:alice_dn",
                          "[alice_dn]\nC = GB\nST = England\nO = Alice Ltd\n",
                          subject="/C=GB/ST=England/O=Alice Ltd/CN=Constrained Root")
    inter = tmp_path / "inter"
    mallory = intermediate_args(tmp_path / "mallory", root, issuer_passphrase=None, valid_days=50,
                                subject={"C": "GB", "O": "Mallory Ltd", "CN": "Mallory CA"})
    before = snapshot(tmp_path)
    for check in (True, False):
        result = run_module("ca_cert", mallory, check=check)
        assert result["failed"], (check, result)
        assert "subject /C=GB/O=Mallory Ltd/CN=Mallory CA is outside the permitted subtrees of the issuer " \
               "/C=GB/ST=England/O=Alice Ltd/CN=Constrained Root" in result["msg"], result
    assert snapshot(tmp_path) == before
    good = intermediate_args(inter, root, issuer_passphrase=None, valid_days=50)
    assert not run_module("ca_cert", good)["failed"]

    out = tmp_path / "out"
    out.mkdir()
    subject = {"C": "GB", "ST": "England", "O": "Alice Ltd", "CN": "www.example.org"}
    bad = leaf(inter, out, "bad", subject, ["DNS:www.example.org"], issuer_passphrase=INTER_PASS)
    before = snapshot(tmp_path)
    for check in (True, False):
        result = run_module("ca_cert", bad, check=check)
        assert result["failed"], (check, result)
        assert "DNS:www.example.org is outside the permitted subtrees of /C=GB/ST=England/O=Alice Ltd/CN=Constrained " \
               "Root in the issuer's chain (permitted: DNS:example.com)" in result["msg"], result
    assert snapshot(tmp_path) == before
    twin = signed_by_hand(inter, tmp_path, "bad", subject, ["DNS:www.example.org"], ca_key_pass=INTER_PASS)
    checked = verify(root, twin, inter / "certs" / "ca.cert.pem")
    assert checked.returncode != 0 and "permitted subtree violation" in checked.stdout + checked.stderr, checked

    fine = leaf(inter, out, "fine", {**subject, "CN": "www.example.com"}, ["DNS:www.example.com"],
                issuer_passphrase=INTER_PASS)
    assert not run_module("ca_cert", fine)["failed"]
    checked = verify(root, fine["path"], inter / "certs" / "ca.cert.pem")
    assert checked.returncode == 0, checked


def test_self_issued_ca_is_exempt_as_openssl_has_it(tmp_path):
    """RFC 5280 6.1.3 (and OpenSSL): a self-issued CA certificate (a key rollover: same subject
    as its issuer) is not checked against its issuer's constraints, though its subject is
    outside them; the leaves under it are, and verify."""
    root = constrained_ca(tmp_path / "root", "critical, permitted;dirName:alice_dn", ALICE_DN,
                          subject="/O=Root/CN=Rollover Root")
    rollover = intermediate_args(tmp_path / "rollover", root, issuer_passphrase=None, valid_days=50,
                                 subject={"O": "Root", "CN": "Rollover Root"}, path_length=1)
    result = run_module("ca_cert", rollover)
    assert not result["failed"], result
    out = tmp_path / "out"
    out.mkdir()
    alice = leaf(tmp_path / "rollover", out, "alice", {**ALICE, "CN": "x"}, [], issuer_passphrase=INTER_PASS)
    assert not run_module("ca_cert", alice)["failed"]
    checked = verify(root, alice["path"], tmp_path / "rollover" / "certs" / "ca.cert.pem")
    assert checked.returncode == 0, checked


def test_constraints_cryptography_cannot_parse_fail_the_task_clearly(tmp_path):
    """An IP constraint with host bits set (which OpenSSL accepts, masking both sides) cannot be
    parsed by cryptography: the task fails naming the issuer, not with a traceback, and writes
    nothing."""
    out = tmp_path / "out"
    out.mkdir()
    odd = constrained_ca(tmp_path / "odd", "critical, permitted;IP:192.0.2.1/255.255.255.0")
    before = snapshot(tmp_path)
    result = run_module("ca_cert", leaf(odd, out, "odd", {**ALICE, "CN": "x"}, ["IP:192.0.2.7"]))
    assert result["failed"], result
    assert "cannot read the extensions of the certificate /C=GB/O=Alice Ltd/CN=Constrained CA" in result["msg"], result
    assert "Traceback" not in str(result)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("sans", [["DNS:www.example.com"], []])
def test_constraints_on_other_name_types_do_not_apply(tmp_path, sans):
    ca = constrained_ca(tmp_path / "ca", "critical, excluded;RID:1.2.3.4")  # constrains a type we never issue
    result = run_module("ca_cert", leaf(ca, tmp_path, "x", {"CN": "www.example.org"}, sans))
    assert not result["failed"] and result["changed"], result
    assert verify(ca, tmp_path / "x.pem").returncode == 0
