"""The role's pieces that need no container: its variables and their documentation agree,
the package archive it ships is reproducible, and the configuration it templates is one
the responder accepts (rendered by ansible, parsed by the responder's own loader)."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

from ocsp_responder.config import ConfigError, config_from_dict
from tests.helpers.ansible_run import run_playbook

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "ocsp_responder"
PACKAGE = ROLE / "files" / "ocsp_responder"
PACK = ROLE / "files" / "pack_package.py"


def _argument_specs() -> dict:
    return yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]


def test_every_default_is_documented_and_prefixed():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    options = _argument_specs()["main"]["options"]
    assert all(name.startswith("ocsp_responder_") for name in defaults)
    required = {name for name, spec in options.items() if spec.get("required")}
    assert required == {"ocsp_responder_issuers"}
    assert set(defaults) == set(options) - required, (set(defaults) ^ (set(options) - required))
    for name, value in defaults.items():
        assert options[name].get("description"), name
        # The documented default is the real one (templated defaults are documented as written).
        assert options[name].get("default") == value, name


def test_entry_points_document_the_interface_playbooks_use():
    specs = _argument_specs()
    issuer = specs["main"]["options"]["ocsp_responder_issuers"]["options"]
    assert set(issuer) == {"name", "ca_cert_content", "index_content", "index_src",
                           "signer_cert_content", "signer_key_path", "signer_key_passphrase"}
    assert set(specs) == {"main", "push_index"}
    for option in specs["push_index"]["options"]:
        assert option in specs["main"]["options"], option


def _pack(source: Path, out: Path) -> bytes:
    subprocess.run([sys.executable, str(PACK), str(source), str(out)], check=True)
    return out.read_bytes()


def test_package_archive_is_reproducible_and_clean(tmp_path):
    # A copy with bytecode and a different mtime must give the same bytes.
    copy = tmp_path / "ocsp_responder"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (copy / "__pycache__").mkdir()
    (copy / "__pycache__" / "config.cpython-311.pyc").write_bytes(b"bytecode")
    (copy / "stray.pyc").write_bytes(b"bytecode")
    for path in copy.rglob("*"):
        path.touch()
    first = _pack(PACKAGE, tmp_path / "a.tar")
    second = _pack(copy, tmp_path / "b.tar")
    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()

    with tarfile.open(tmp_path / "b.tar") as archive:
        members = archive.getmembers()
    names = [member.name for member in members]
    expected = sorted(str(Path("ocsp_responder") / p.relative_to(PACKAGE))
                      for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
    assert sorted(n for n in names if n.endswith(".py")) == expected
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    for member in members:
        assert (member.uid, member.gid, member.mtime) == (0, 0, 0), member.name
        assert member.mode == (0o755 if member.isdir() else 0o644), member.name


def test_archive_changes_with_the_code(tmp_path):
    copy = tmp_path / "ocsp_responder"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = _pack(copy, tmp_path / "a.tar")
    with open(copy / "__init__.py", "a", encoding="utf-8") as handle:
        handle.write("\n# changed\n")
    assert _pack(copy, tmp_path / "b.tar") != before


def _render_config(tmp_path: Path, extra: dict) -> dict:
    """config.yml.j2 rendered by ansible-playbook with the role's defaults and vars."""
    out = tmp_path / "config.yml"
    role_vars = {}
    for path in (ROLE / "defaults" / "main.yml", ROLE / "vars" / "main.yml"):
        role_vars.update(yaml.safe_load(path.read_text()))
    role_vars.update(extra)
    play = [{
        "hosts": "localhost",
        "gather_facts": False,
        "vars": role_vars,
        "tasks": [{"name": "render", "ansible.builtin.template": {
            "src": str(ROLE / "templates" / "config.yml.j2"), "dest": str(out), "mode": "0600"}}],
    }]
    run = run_playbook(play)
    assert run.rc == 0, run.output
    return yaml.safe_load(out.read_text())


def test_templated_config_is_accepted_by_the_responder(tmp_path):
    config_dir, data_dir = tmp_path / "etc", tmp_path / "var"
    for name in ("root-ca", "intermediate"):
        (config_dir / "issuers" / name).mkdir(parents=True)
        (data_dir / "issuers" / name).mkdir(parents=True)
        for file in ("ca.cert.pem", "signer.cert.pem", "signer.key.pem", "signer.passphrase"):
            (config_dir / "issuers" / name / file).write_text("x")
    issuers = [
        {"name": "intermediate", "ca_cert_content": "x", "index_content": "", "signer_cert_content": "x",
         "signer_key_passphrase": "not-in-the-config"},
        {"name": "root-ca", "ca_cert_content": "x", "index_content": "", "signer_cert_content": "x",
         "signer_key_path": str(config_dir / "issuers" / "root-ca" / "signer.key.pem")},
    ]
    data = _render_config(tmp_path, {
        "ocsp_responder_config_dir": str(config_dir), "ocsp_responder_data_dir": str(data_dir),
        "ocsp_responder_issuers": issuers, "ocsp_responder_listen": ["0.0.0.0:2560", "[::]:2560"],
        "ocsp_responder_settings": {"workers": 2, "nonce_policy": "ignore", "response_validity": "4h"},
    })
    config = config_from_dict(data)
    assert [str(a) for a in config.listen] == ["0.0.0.0:2560", "[::]:2560"]
    assert (config.workers, config.nonce_policy, config.response_validity) == (2, "ignore", 4 * 3600)
    first, second = config.issuers
    base = config_dir / "issuers" / "intermediate"
    assert (first.name, first.ca_cert, first.signer_cert, first.signer_key, first.signer_key_passphrase_file) == (
        "intermediate", str(base / "ca.cert.pem"), str(base / "signer.cert.pem"),
        str(base / "signer.key.pem"), str(base / "signer.passphrase"))
    assert first.index == str(data_dir / "issuers" / "intermediate" / "index.txt")
    assert second.signer_key_passphrase_file is None
    assert "not-in-the-config" not in (tmp_path / "config.yml").read_text()


def test_a_typo_in_settings_is_refused(tmp_path):
    """ocsp_responder_settings is passed through; the responder's check rejects unknown keys,
    which is what makes the role's validate step catch the typo."""
    (tmp_path / "etc" / "issuers" / "i").mkdir(parents=True)
    (tmp_path / "var" / "issuers" / "i").mkdir(parents=True)
    for file in ("ca.cert.pem", "signer.cert.pem", "signer.key.pem"):
        (tmp_path / "etc" / "issuers" / "i" / file).write_text("x")
    data = _render_config(tmp_path, {
        "ocsp_responder_config_dir": str(tmp_path / "etc"), "ocsp_responder_data_dir": str(tmp_path / "var"),
        "ocsp_responder_issuers": [{"name": "i", "ca_cert_content": "x", "index_content": "",
                                    "signer_cert_content": "x"}],
        "ocsp_responder_settings": {"wrokers": 2},
    })
    try:
        config_from_dict(data)
    except ConfigError as exc:
        assert "wrokers" in str(exc)
    else:
        raise AssertionError("unknown key accepted")
