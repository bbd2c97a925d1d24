"""The role's handling of issuer material on a real host, without systemd: its validate
and issuers task files run through ansible-playbook on localhost, with the responder's
own --check-config (the real package, through a launcher like the one the role
installs). What they must guarantee: no passphrase in -v output, refused material put
back, keys the service account cannot read refused, shared directories left alone,
settings that would blind the health wait refused.

The files live under /srv (the role refuses key paths in /tmp, which the unit's
PrivateTmp hides) and are removed afterwards."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.helpers.ansible_run import ROOT, run_playbook
from tests.responder.conftest import build_pki

PASSPHRASE = "Pq7-role-unique-passphrase"
# ansible-playbook -vv (the handlers themselves need systemd, which is not here)
RELOAD_NOTIFIED = "Notification for handler ocsp_responder reload has been saved."
RESTART_NOTIFIED = "Notification for handler ocsp_responder restart has been saved."


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    pki = build_pki(tmp_path_factory.mktemp("role-pki"))
    encrypted = tmp_path_factory.mktemp("role-key") / "signer.key.pem"
    subprocess.run(["openssl", "pkey", "-in", str(pki.signer.key), "-aes256", "-passout", f"pass:{PASSPHRASE}",
                    "-out", str(encrypted)], check=True, capture_output=True)
    return pki, encrypted


@pytest.fixture
def host(material):
    """A responder host's layout under /srv, with the live configuration the role would
    have written and a launcher running this checkout's package."""
    pki, key = material
    base = Path(tempfile.mkdtemp(prefix="pkiops-role-", dir="/srv"))
    os.chmod(base, 0o755)
    launcher = base / "opt" / "bin" / "ocsp-responder"
    launcher.parent.mkdir(parents=True)
    launcher.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT}/roles/ocsp_responder/files exec {sys.executable} "
                        "-m ocsp_responder \"$@\"\n")
    launcher.chmod(0o755)
    (base / "keys").mkdir()
    shutil.copy(key, base / "keys" / "signer.key.pem")
    issuer_dir = base / "etc" / "issuers" / "intermediate"
    config = {"listen": ["127.0.0.1:2560"], "issuers": [{
        "name": "intermediate", "ca_cert": str(issuer_dir / "ca.cert.pem"),
        "index": str(base / "var" / "issuers" / "intermediate" / "index.txt"),
        "signer_cert": str(issuer_dir / "signer.cert.pem"), "signer_key": str(base / "keys" / "signer.key.pem"),
        "signer_key_passphrase_file": str(issuer_dir / "signer.passphrase")}]}
    yield pki, base, config
    shutil.rmtree(base)


def role_play(pki, base: Path, signer_cert: Path = None, live_config: dict = None, passphrase=PASSPHRASE,
              **role_vars) -> list:
    """validate + issuers of the role, as root:root (so no account is created here)."""
    tasks = []
    if live_config is not None:
        tasks.append({"name": "Write the live configuration", "ansible.builtin.copy": {
            "content": yaml.safe_dump(live_config), "dest": str(base / "etc" / "config.yml"), "mode": "0640"}})
    tasks += [{"name": f"Role {part}", "ansible.builtin.include_role": {
        "name": "pkiops.ocsp.ocsp_responder", "tasks_from": part}} for part in ("validate", "issuers")]
    tasks.append({"name": "End before the handlers (no systemd here)", "ansible.builtin.meta": "end_play"})
    issuer = {"name": "intermediate", "ca_cert_content": pki.intermediate.cert.read_text(),
              "signer_cert_content": (signer_cert or pki.signer.cert).read_text(),
              "index_content": pki.intermediate.index.read_text(),
              "signer_key_path": str(base / "keys" / "signer.key.pem")}
    if passphrase is not None:
        issuer["signer_key_passphrase"] = passphrase
    variables = {"ocsp_responder_config_dir": str(base / "etc"), "ocsp_responder_data_dir": str(base / "var"),
                 "ocsp_responder_install_dir": str(base / "opt"), "ocsp_responder_user": "root",
                 "ocsp_responder_group": "root", "ocsp_responder_issuers": [issuer], **role_vars}
    return [{"hosts": "localhost", "gather_facts": False, "vars": variables, "tasks": tasks}]


def prepare(base: Path) -> None:
    for sub in ("etc/issuers", "var/issuers"):
        (base / sub).mkdir(parents=True, exist_ok=True)


def test_no_passphrase_in_verbose_output(host):
    pki, base, _config = host
    prepare(base)
    run = run_playbook(role_play(pki, base), args=("-vv",))
    assert run.rc == 0, run.output
    assert "intermediate" in run.output  # the loops ran and printed their items
    assert PASSPHRASE not in run.output
    assert (base / "etc" / "issuers" / "intermediate" / "signer.passphrase").read_text() == PASSPHRASE


def test_refused_signer_certificate_is_put_back(host):
    pki, base, config = host
    prepare(base)
    first = run_playbook(role_play(pki, base, live_config=config))
    assert first.rc == 0, first.output
    issuer_dir = base / "etc" / "issuers" / "intermediate"
    good = (issuer_dir / "signer.cert.pem").read_bytes()
    # The CA certificate as the signer: its key is not the signer key.
    for attempt in range(2):  # refused again on a re-run: nothing bad was left to turn it green
        run = run_playbook(role_play(pki, base, signer_cert=pki.intermediate.cert, live_config=config))
        assert run.rc != 0, (attempt, run.output)
        assert "the previous issuer files are back in place and the live configuration is unchanged" in run.output
        assert "signer.cert.pem: not issued by the CA" in run.output, run.output
        assert (issuer_dir / "signer.cert.pem").read_bytes() == good
        left = sorted(path.name for path in issuer_dir.iterdir())
        assert left == ["ca.cert.pem", "signer.cert.pem", "signer.passphrase"]  # no backup copies
    subprocess.run([str(base / "opt" / "bin" / "ocsp-responder"), "--check-config", "--config",
                    str(base / "etc" / "config.yml")], check=True, capture_output=True)


def plain_key_host(pki, base: Path, config: dict) -> dict:
    """The host with the signer key unencrypted and no passphrase in the live configuration."""
    shutil.copy(pki.signer.key, base / "keys" / "signer.key.pem")
    plain = {**config, "issuers": [dict(config["issuers"][0])]}
    del plain["issuers"][0]["signer_key_passphrase_file"]
    return plain


def test_material_and_configuration_changing_together_are_accepted(host, material):
    """The new material is checked with the configuration to come, not the live one: an
    unencrypted key replaced by the same key encrypted comes with a passphrase file that
    only the new configuration names."""
    pki, base, config = host
    prepare(base)
    plain = plain_key_host(pki, base, config)
    first = run_playbook(role_play(pki, base, live_config=plain, passphrase=None))
    assert first.rc == 0, first.output
    shutil.copy(material[1], base / "keys" / "signer.key.pem")
    run = run_playbook(role_play(pki, base, live_config=plain))
    assert run.rc == 0, run.output
    assert (base / "etc" / "issuers" / "intermediate" / "signer.passphrase").read_text() == PASSPHRASE


def test_another_ca_restarts_and_a_new_signer_reloads(host, tmp_path):
    """SIGHUP refuses a CA certificate naming another CA (subject or key), so the role
    restarts for a changed CA certificate; a new signer alone is a reload."""
    pki, base, config = host
    prepare(base)
    plain = plain_key_host(pki, base, config)
    assert run_playbook(role_play(pki, base, live_config=plain, passphrase=None)).rc == 0
    csr = tmp_path / "signer.csr.pem"  # the same signer key, certified once more
    subprocess.run(["openssl", "req", "-new", "-key", str(pki.signer.key), "-subj", "/CN=ocsp-signer-again",
                    "-out", str(csr)], check=True, capture_output=True)
    resigned = pki.intermediate.sign_csr(csr, tmp_path / "signer.cert.pem", "ocsp", 30)
    run = run_playbook(role_play(pki, base, signer_cert=resigned, live_config=plain, passphrase=None), args=("-vv",))
    assert run.rc == 0, run.output
    assert RELOAD_NOTIFIED in run.output, run.output
    assert RESTART_NOTIFIED not in run.output

    other = build_pki(tmp_path / "other")
    shutil.copy(other.signer.key, base / "keys" / "signer.key.pem")
    run = run_playbook(role_play(other, base, live_config=plain, passphrase=None), args=("-vv",))
    assert run.rc == 0, run.output
    assert RESTART_NOTIFIED in run.output, run.output


def test_refusal_keeps_files_it_only_re_moded_and_removes_new_ones(host):
    pki, base, config = host
    prepare(base)
    plain = plain_key_host(pki, base, config)
    assert run_playbook(role_play(pki, base, live_config=plain, passphrase=None)).rc == 0
    issuer_dir = base / "etc" / "issuers" / "intermediate"
    ca_before = (issuer_dir / "ca.cert.pem").read_bytes()
    (issuer_dir / "ca.cert.pem").chmod(0o600)  # same content: the role only fixes its mode
    run = run_playbook(role_play(pki, base, signer_cert=pki.intermediate.cert, live_config=plain))
    assert run.rc != 0 and "the responder refuses the configuration or issuer material" in run.output, run.output
    assert (issuer_dir / "ca.cert.pem").read_bytes() == ca_before
    assert not (issuer_dir / "signer.passphrase").exists()  # new with the refused material


def test_passphrase_removal_is_checked_and_put_back(host):
    """Dropping the passphrase of a key that is still encrypted is refused like any other
    material, and the passphrase file comes back (the live configuration names it)."""
    pki, base, config = host
    prepare(base)
    assert run_playbook(role_play(pki, base, live_config=config)).rc == 0
    run = run_playbook(role_play(pki, base, live_config=config, passphrase=None))
    assert run.rc != 0 and "Password was not given but private key is encrypted" in run.output, run.output
    issuer_dir = base / "etc" / "issuers" / "intermediate"
    assert (issuer_dir / "signer.passphrase").read_text() == PASSPHRASE
    left = sorted(path.name for path in issuer_dir.iterdir())
    assert left == ["ca.cert.pem", "signer.cert.pem", "signer.passphrase"]
    assert PASSPHRASE not in run.output


def test_material_left_by_an_interrupted_run_fails_the_next_run(host):
    """A run killed after writing a bad certificate: the re-run, to which nothing looks
    changed, still checks and fails, and it removes the copies the killed run left."""
    pki, base, config = host
    prepare(base)
    assert run_playbook(role_play(pki, base, live_config=config)).rc == 0
    issuer_dir = base / "etc" / "issuers" / "intermediate"
    shutil.copy(issuer_dir / "signer.cert.pem", issuer_dir / "signer.cert.pem.4242.2026-12-04@19:00:00~")
    shutil.copy(pki.intermediate.cert, issuer_dir / "signer.cert.pem")  # what the killed run wrote
    run = run_playbook(role_play(pki, base, signer_cert=pki.intermediate.cert, live_config=config))
    assert run.rc != 0 and "signer.cert.pem: not issued by the CA" in run.output, run.output
    assert not list(issuer_dir.glob("*~"))


def test_key_in_a_shared_directory_keeps_the_directory_and_must_be_readable(host):
    pki, base, _config = host
    prepare(base)
    shared = base / "keys"
    shared.chmod(0o710)
    run = run_playbook(role_play(pki, base, ocsp_responder_user="nobody", ocsp_responder_group="nogroup"))
    assert run.rc != 0
    assert f"the service account nobody cannot read {shared}/signer.key.pem" in run.output, run.output
    assert stat.S_IMODE(shared.stat().st_mode) == 0o710 and shared.stat().st_gid == 0
    shared.chmod(0o755)  # opened by the operator: accepted, and still not re-owned
    run = run_playbook(role_play(pki, base, ocsp_responder_user="nobody", ocsp_responder_group="nogroup"))
    assert run.rc == 0, run.output
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755 and shared.stat().st_gid == 0


@pytest.mark.parametrize("role_vars, message", [
    ({"ocsp_responder_settings": {"health_path": "/status"}}, "ocsp_responder_settings must not set health_path"),
    ({"ocsp_responder_listen": ["0.0.0.0:80"]}, "0.0.0.0:80: ports below 1024"),
    ({"ocsp_responder_listen": ["[::1]:8080", "127.0.0.1:0443"]}, "127.0.0.1:0443: ports below 1024"),
    ({"ocsp_responder_settings": {"metrics": {"listen": "127.0.0.1:99"}}}, "127.0.0.1:99: ports below 1024"),
])
def test_inputs_refused_before_anything_changes(host, role_vars, message):
    pki, base, _config = host
    run = run_playbook(role_play(pki, base, **role_vars))
    assert run.rc != 0 and message in run.output, run.output
    assert not (base / "etc").exists()


def test_interpreter_older_than_the_requirements_refused(host):
    pki, base, _config = host
    older = base / "python3.10"  # answers the version question as Python 3.10 would
    older.write_text("#!/bin/sh\necho 3.10\n")
    older.chmod(0o755)
    run = run_playbook(role_play(pki, base, ocsp_responder_python=str(older)))
    assert run.rc != 0 and f"ocsp_responder_python {older} is Python 3.10: the responder's pinned requirements " \
        "need Python 3.11 or later" in run.output, run.output
    run = run_playbook(role_play(pki, base, ocsp_responder_python=str(base / "nowhere")))
    assert run.rc != 0 and f"ocsp_responder_python {base}/nowhere does not run" in run.output, run.output
    assert not (base / "etc").exists()


@pytest.mark.parametrize("role_vars", [
    {"ocsp_responder_settings": {"metrics": {"enabled": False, "listen": "127.0.0.1:99"}}},
    {"ocsp_responder_listen": ["127.0.0.1:0", "[::1]:1024"]},
    {"ocsp_responder_settings": None},
])
def test_inputs_the_responder_takes_pass_validation(host, role_vars):
    pki, base, _config = host
    play = role_play(pki, base, **role_vars)
    play[0]["tasks"] = [task for task in play[0]["tasks"] if task["name"] != "Role issuers"]
    run = run_playbook(play)
    assert run.rc == 0, run.output


def test_key_in_a_hidden_directory_refused(host):
    pki, base, _config = host
    prepare(base)
    play = role_play(pki, base)
    play[0]["vars"]["ocsp_responder_issuers"][0]["signer_key_path"] = "/tmp/pkiops-nowhere/signer.key.pem"
    run = run_playbook(play)
    assert run.rc != 0
    assert "outside /home, /root, /run/user, /tmp and /var/tmp" in run.output, run.output
