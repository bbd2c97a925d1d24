"""site.yml and revoke.yml on this machine, for everything but the responder service.

The CA and the certificate holders are all `localhost` under several inventory names
(local connection), so their CSRs are signed on the CA at the same time by parallel
forks, as on a real fleet. The responders exist only as names in the inventory (their
URLs go into the certificates) and are left out with --limit: the responder play needs
systemd and runs in the molecule scenario."""
from __future__ import annotations

import grp
import re
import shutil
import socket
import subprocess
import sys

import pytest
import yaml

from tests.helpers.ansible_run import ROOT, run_playbook

pytestmark = pytest.mark.slow

CLIENTS = [f"client{i}" for i in range(1, 7)]
PASSPHRASES = {"pki_root_ca_passphrase": "root-Pass-7f3a", "pki_intermediate_ca_passphrase": "int-Pass-91bc"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    base = tmp_path_factory.mktemp("fleet")
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    inventory = {"all": {"children": {
        "pki_ca": {"hosts": {"ca": local}},
        "ocsp_responders": {"hosts": {"responder1": None, "responder2": None}},
        "pki_clients": {"hosts": {name: local for name in CLIENTS}},
    }}}
    inv = base / "inventory.yml"
    inv.write_text(yaml.safe_dump(inventory))
    extra = dict(PASSPHRASES, pki_base_dir=str(base / "ca"),
                 pki_client_dir=str(base / "clients") + "/{{ inventory_hostname }}",
                 pki_root_ca_key={"type": "ECC", "curve": "secp384r1"},
                 pki_intermediate_ca_key={"type": "ECC", "curve": "secp384r1"},
                 pki_client_key={"type": "ECC", "curve": "secp256r1"})
    return {"base": base, "inventory": str(inv), "extra": extra}


def play(fleet, name, extra=None, args=()):
    extra_vars = dict(fleet["extra"], **(extra or {}))
    limit = ["--limit", "ca," + ",".join(CLIENTS), "--forks", "8"]
    return run_playbook(ROOT / "playbooks" / name, inventory=fleet["inventory"],
                        extra_vars=extra_vars, args=[*limit, *args])


def index_lines(fleet) -> list[list[str]]:
    text = (fleet["base"] / "ca" / "intermediate" / "index.txt").read_text()
    return [line.split("\t") for line in text.splitlines()]


def openssl(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def site_runs(fleet):
    first = play(fleet, "site.yml", args=["-v"])
    assert first.rc == 0, first.output[-5000:]
    second = play(fleet, "site.yml")
    assert second.rc == 0, second.output[-5000:]
    return first, second


def test_site_builds_chain_and_client_certificates(fleet, site_runs):
    ca = fleet["base"] / "ca"
    root, inter = ca / "root" / "certs" / "ca.cert.pem", ca / "intermediate" / "certs" / "ca.cert.pem"
    serials = set()
    for name in CLIENTS:
        host_dir = fleet["base"] / "clients" / name
        cert = host_dir / f"{name}.cert.pem"
        verified = openssl("verify", "-CAfile", str(root), "-untrusted", str(host_dir / "ca-chain.cert.pem"),
                           "-purpose", "sslserver", str(cert))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        # The key stayed on the host: the CA host holds only the certificate.
        assert (host_dir / f"{name}.key.pem").stat().st_mode & 0o077 == 0
        assert not list((ca / "intermediate" / "private").glob(f"{name}*"))
        assert (ca / "intermediate" / "certs" / f"{name}.cert.pem").read_bytes() == cert.read_bytes()
        # fullchain: the certificate and the intermediate, not the root.
        assert (host_dir / f"{name}.fullchain.pem").read_bytes() == cert.read_bytes() + inter.read_bytes()
        assert (host_dir / "ca-chain.cert.pem").read_bytes() == inter.read_bytes() + root.read_bytes()
        text = openssl("x509", "-in", str(cert), "-noout", "-text").stdout
        assert "OCSP - URI:http://responder1:2560/" in text and "OCSP - URI:http://responder2:2560/" in text
        assert f"DNS:{name}" in text
        serials.add(openssl("x509", "-in", str(cert), "-noout", "-serial").stdout.strip())
        issuer = openssl("x509", "-in", str(cert), "-noout", "-issuer").stdout.split("=", 1)[1]
        assert issuer == openssl("x509", "-in", str(inter), "-noout", "-subject").stdout.split("=", 1)[1]
        assert "CN = Alice Ltd Intermediate CA" in issuer
    # Parallel signing lost nothing: one distinct serial per client, all in the index.
    assert len(serials) == len(CLIENTS)
    assert len([f for f in index_lines(fleet) if f[0] == "V"]) == len(CLIENTS)
    # openssl ca still reads the database.
    listed = openssl("ca", "-config", str(ca / "intermediate" / "openssl.cnf"), "-updatedb",
                     "-passin", "pass:" + PASSPHRASES["pki_intermediate_ca_passphrase"])
    assert listed.returncode == 0, listed.stderr


def test_site_second_run_changes_nothing(site_runs):
    first, second = site_runs
    assert re.search(r"changed=[1-9]", first.stdout)
    changed = [e["task"] + "@" + e["host"] for e in second.results if e["result"].get("changed")]
    assert changed == []
    assert not re.search(r"changed=[1-9]", second.stdout)


def test_check_mode_on_the_built_fleet_predicts_no_change(fleet, site_runs):
    run = play(fleet, "site.yml", args=["--check", "--diff"])
    assert run.rc == 0, run.output[-5000:]
    assert [e["task"] for e in run.results if e["result"].get("changed")] == []


def test_check_mode_on_a_fresh_fleet_writes_nothing(fleet, tmp_path):
    fresh = {"pki_base_dir": str(tmp_path / "ca"), "pki_client_dir": str(tmp_path / "clients") + "/{{ inventory_hostname }}"}
    run = play(fleet, "site.yml", fresh, args=["--check"])
    assert run.rc == 0, run.output[-5000:]
    # the root needs the base directory, which check mode does not create (ca_cert fails without it)
    assert run.task("Create the root CA")["skip_reason"] == "Conditional result was False"
    assert list(tmp_path.iterdir()) == []


def test_passphrases_stay_out_of_the_output(site_runs):
    for run in site_runs:
        for secret in PASSPHRASES.values():
            assert secret not in run.output


def test_site_refuses_to_run_without_ca_passphrases(fleet):
    extra = {k: v for k, v in fleet["extra"].items() if k not in PASSPHRASES}
    run = run_playbook(ROOT / "playbooks" / "site.yml", inventory=fleet["inventory"], extra_vars=extra,
                       args=["--limit", "ca"])
    assert run.rc != 0
    assert "pki_intermediate_ca_passphrase" in run.output


def test_revoke_by_host_then_by_serial(fleet, site_runs):
    by_host = play(fleet, "revoke.yml", {"revoke_host": "client1", "revoke_reason": "keyCompromise"})
    assert by_host.rc == 0, by_host.output[-5000:]
    result = by_host.task("Revoke the certificate")
    assert result["changed"] and result["status_before"] == "V" and result["status_after"] == "R"
    cert = fleet["base"] / "clients" / "client1" / "client1.cert.pem"
    serial = openssl("x509", "-in", str(cert), "-noout", "-serial").stdout.strip().split("=")[1]
    entry = [f for f in index_lines(fleet) if int(f[3], 16) == int(serial, 16)][0]
    assert entry[0] == "R" and entry[2].endswith(",keyCompromise")

    again = play(fleet, "revoke.yml", {"revoke_host": "client1", "revoke_reason": "keyCompromise"})
    assert again.rc == 0 and again.task("Revoke the certificate")["changed"] is False

    cert2 = fleet["base"] / "clients" / "client2" / "client2.cert.pem"
    serial2 = openssl("x509", "-in", str(cert2), "-noout", "-serial").stdout.strip().split("=")[1]
    by_serial = play(fleet, "revoke.yml", {"revoke_serial": "0x" + serial2, "revoke_reason": "superseded"})
    assert by_serial.rc == 0, by_serial.output[-5000:]
    assert by_serial.task("Revoke the certificate")["serial_hex"].lstrip("0") == serial2.lstrip("0")

    by_name = play(fleet, "revoke.yml", {"revoke_name": "client3"})
    assert by_name.rc == 0, by_name.output[-5000:]
    revoked = {int(f[3], 16) for f in index_lines(fleet) if f[0] == "R"}
    assert len(revoked) == 3 and int(serial, 16) in revoked and int(serial2, 16) in revoked


def test_revoke_key_compromise_revokes_the_older_certificate_of_the_key(fleet, site_runs, tmp_path):
    """An older certificate of client5's key (another name, its copy in newcerts/) is revoked
    with the current one, and the debug message names it."""
    older = run_playbook([{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "older", "pkiops.ocsp.ca_cert": {
            "profile": "server", "issuer_dir": str(fleet["base"] / "ca" / "intermediate"),
            "issuer_passphrase": PASSPHRASES["pki_intermediate_ca_passphrase"],
            "csr_path": str(fleet["base"] / "clients" / "client5" / "client5.csr.pem"),
            "path": str(tmp_path / "client5-old.cert.pem"), "subject": {"CN": "client5-old"},
            "subject_alt_name": ["DNS:client5-old"]}}]}])
    assert older.rc == 0, older.output
    serial = older.task("older")["serial_number"]
    run = play(fleet, "revoke.yml", {"revoke_host": "client5", "revoke_reason": "keyCompromise"})
    assert run.rc == 0, run.output[-5000:]
    result = run.task("Revoke the certificate")
    assert [o["serial_number"] for o in result["also_revoked"]] == [serial]
    assert "other certificates of the key revoked now: %s" % result["also_revoked"][0]["serial_hex"] \
        in run.task("Show the revocation")["msg"]
    entry = [f for f in index_lines(fleet) if int(f[3], 16) == serial][0]
    assert entry[0] == "R" and entry[2].endswith(",keyCompromise")
    again = play(fleet, "revoke.yml", {"revoke_host": "client5", "revoke_reason": "keyCompromise"})
    assert again.rc == 0 and again.task("Revoke the certificate")["changed"] is False
    assert "other certificates of the key revoked now: none" in again.task("Show the revocation")["msg"]


@pytest.mark.parametrize("extra, message", [
    ({}, "give exactly one of"),
    ({"revoke_host": "client4", "revoke_serial": "0x10"}, "give exactly one of"),
    ({"revoke_host": "no-such-host"}, "give exactly one of"),
    ({"revoke_serial": "0xDEADBEEF"}, "DEADBEEF"),
    ({"revoke_host": "client4", "revoke_reason": "bored"}, "bored"),
])
def test_revoke_refuses_bad_arguments(fleet, site_runs, extra, message):
    before = index_lines(fleet)
    run = play(fleet, "revoke.yml", extra)
    assert run.rc != 0
    assert message.lower() in run.output.lower()
    assert index_lines(fleet) == before


# --- defects found in review: the tests below run last (they add to the CA's index) ---

def play_as(fleet, name, inventory, limit, extra=None, args=()):
    return run_playbook(ROOT / "playbooks" / name, inventory=str(inventory),
                        extra_vars=dict(fleet["extra"], **(extra or {})), args=["--limit", limit, *args])


def test_site_refuses_a_new_root_under_an_existing_intermediate(fleet, site_runs, tmp_path):
    """The root directory moved away (e.g. offline) without pki_root_ca_offline: a new root
    with the same subject would re-sign the intermediate and every chain would change."""
    ca = fleet["base"] / "ca"
    inter = ca / "intermediate" / "certs"
    before = {p.name: p.read_bytes() for p in (inter / "ca.cert.pem", inter / "ca-chain.cert.pem")}
    index_before = index_lines(fleet)
    (ca / "root").rename(tmp_path / "root")
    try:
        run = play_as(fleet, "site.yml", fleet["inventory"], "ca")
        assert not (ca / "root").exists()
    finally:
        if (ca / "root").exists():
            shutil.rmtree(ca / "root")
        (tmp_path / "root").rename(ca / "root")
    assert run.rc != 0
    assert f"the intermediate CA exists but the root CA at {ca / 'root'} is missing" in run.output
    assert "pki_root_ca_offline: true" in run.output
    assert {p: (inter / p).read_bytes() for p in before} == before
    assert index_lines(fleet) == index_before


def responder_inventory(fleet, tmp_path):
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    inventory = {"all": {"children": {
        "pki_ca": {"hosts": {"ca": local}},
        "ocsp_responders": {"hosts": {"responder1": local}},
    }}}
    path = tmp_path / "inventory.yml"
    path.write_text(yaml.safe_dump(inventory))
    return path


# The responder role is stopped by its own input check before it touches this machine
# (no account, no install, no systemd): the play fails right after the signer tasks, as
# a rotation fails when the deployment breaks.
STOP_THE_ROLE = {"ocsp_responder_health_timeout": "not-a-number", "ocsp_responder_group": "daemon"}


def test_site_opens_the_missing_parents_of_a_custom_config_dir(fleet, site_runs, tmp_path):
    config_dir = tmp_path / "srv" / "pki" / "ocsp"
    run = play_as(fleet, "site.yml", responder_inventory(fleet, tmp_path), "responder1",
                  dict(STOP_THE_ROLE, ocsp_responder_config_dir=str(config_dir)))
    assert run.rc != 0 and "ocsp_responder_health_timeout" in run.output, run.output[-3000:]
    assert (config_dir / "issuers" / "intermediate" / "signer.key.pem").exists()
    # The service account must be able to walk down to its configuration directory.
    for parent in (tmp_path / "srv", tmp_path / "srv" / "pki"):
        assert oct(parent.stat().st_mode & 0o777) == "0o755", parent
    # The signer directory itself stays closed to others.
    assert oct((config_dir / "issuers" / "intermediate").stat().st_mode & 0o777) == "0o750"


def test_rotation_with_a_new_key_leaves_it_readable_by_the_service_group(fleet, site_runs, tmp_path):
    config_dir = tmp_path / "etc-ocsp"
    inventory = responder_inventory(fleet, tmp_path)
    extra = dict(STOP_THE_ROLE, ocsp_responder_config_dir=str(config_dir), pki_ocsp_signer_new_key=True)
    run = play_as(fleet, "rotate_signer.yml", inventory, "ca,responder1", extra)
    assert run.rc != 0 and "ocsp_responder_health_timeout" in run.output, run.output[-3000:]
    key = config_dir / "issuers" / "intermediate" / "signer.key.pem"
    assert run.task("Put the new key in service")["changed"] is True
    assert not key.with_name("signer.key.pem.next").exists()
    stat = key.stat()
    assert (stat.st_uid, grp.getgrgid(stat.st_gid).gr_name, oct(stat.st_mode & 0o777)) == (0, "daemon", "0o640")

    # Check mode predicts the key only and leaves the one in service alone.
    before = key.read_bytes()
    check = play_as(fleet, "rotate_signer.yml", inventory, "ca,responder1", extra, args=["--check"])
    assert key.read_bytes() == before
    assert not key.with_name("signer.key.pem.next").exists()
    assert "Make the new key readable by the responder's service group" in [e["task"] for e in check.results]


def test_wait_signer_served_finds_the_venv_under_the_install_dir(fleet, site_runs, tmp_path):
    """The role puts the venv in <ocsp_responder_install_dir>/venv: the wait must use it."""
    install_dir = tmp_path / "responder"
    (install_dir / "venv" / "bin").mkdir(parents=True)
    (install_dir / "venv" / "bin" / "python").symlink_to(sys.executable)
    signer_dir = tmp_path / "issuer"
    signer_dir.mkdir()
    inter = fleet["base"] / "ca" / "intermediate" / "certs"
    shutil.copy(inter / "ca.cert.pem", signer_dir / "ca.cert.pem")
    shutil.copy(inter / "client1.cert.pem", signer_dir / "signer.cert.pem")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]

    def wait(install, retries):
        return run_playbook([{
            "hosts": "localhost", "gather_facts": False,
            "vars": {"pki_ocsp_health_address": f"127.0.0.1:{closed_port}", "pki_ocsp_signer_dir": str(signer_dir),
                     "ocsp_responder_install_dir": str(install), "pki_responder_wait_retries": retries},
            "tasks": [{"name": "wait", "ansible.builtin.import_tasks": str(ROOT / "playbooks/tasks/wait_signer_served.yml")}],
        }])

    run = wait(install_dir, 1)
    assert run.rc != 0
    result = run.task("Wait until the responder signs with the certificate on disk")
    # The script ran (with the venv's python) and found no responder.
    assert result["rc"] == 1 and "no answer" in result["stdout"], result
    assert f"the responder at 127.0.0.1:{closed_port} does not sign with" in run.output

    # No virtualenv there: not retried (waiting would not cure it), and said so.
    run = wait(tmp_path / "elsewhere", 3)
    assert run.rc != 0
    result = run.task("Wait until the responder signs with the certificate on disk")
    assert result["rc"] == 127 and result.get("attempts", 1) == 1, result
    assert f"cannot run {tmp_path / 'elsewhere'}/venv/bin/python" in run.output
    assert "set ocsp_responder_install_dir" in run.output
