"""The molecule scenarios (extensions/molecule/) through `molecule test`: real systemd
containers on rootful podman, converged with the user's playbooks.

Skipped, with the reason, only where podman cannot run containers here (not root, no
podman, `podman info` failing). Anything after that (image build, molecule itself)
failing is a test failure. Besides molecule's own result, every test passphrase of the
scenario is looked for in molecule's whole output: a secret must never be printed."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "extensions" / "molecule"
MOLECULE_TIMEOUT = 20 * 60

pytestmark = [pytest.mark.slow, pytest.mark.podman]


def _project_env() -> dict:
    """The environment of scripts/env.sh + scripts/podman-setup.sh (podman configuration,
    containers.podman collection on ANSIBLE_COLLECTIONS_PATH)."""
    script = 'source scripts/env.sh && source scripts/podman-setup.sh && env -0'
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"podman-setup failed: {proc.stderr.decode(errors='replace')}")
    env = {}
    for entry in proc.stdout.split(b"\0"):
        if b"=" in entry:
            key, _sep, value = entry.partition(b"=")
            env[key.decode()] = value.decode(errors="replace")
    return env


def _podman_unusable_reason(env: dict) -> str | None:
    if os.geteuid() != 0:
        return "rootful podman needed (systemd containers with SYS_ADMIN); not running as root"
    if shutil.which("podman") is None:
        return "podman is not installed (scripts/system-deps.sh podman)"
    proc = subprocess.run(["podman", "info"], env=env, capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        return f"podman cannot run here: `podman info` failed: {proc.stderr.strip()[-400:]}"
    return None


@pytest.fixture(scope="session")
def molecule_env() -> dict:
    if shutil.which("podman") is None or os.geteuid() != 0:
        pytest.skip(_podman_unusable_reason(dict(os.environ)))
    env = _project_env()
    reason = _podman_unusable_reason(env)
    if reason:
        pytest.skip(reason)
    build = subprocess.run([str(ROOT / "scripts" / "build-image.sh")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=900, check=False)
    assert build.returncode == 0, f"image build failed:\n{build.stderr[-3000:]}"
    env["PKIOPS_IMAGE"] = build.stdout.strip().splitlines()[-1]
    env["NO_COLOR"] = "1"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    return env


def _secrets(scenario: str) -> list:
    """Every *_passphrase value in the scenario's inventory."""
    config = yaml.safe_load((SCENARIOS / scenario / "molecule.yml").read_text())
    found = []
    for group_vars in config["provisioner"]["inventory"]["group_vars"].values():
        found += [str(value) for key, value in group_vars.items() if key.endswith("_passphrase")]
    return found


def _run_molecule(scenario: str, env: dict) -> str:
    proc = subprocess.run(["molecule", "test", "--scenario-name", scenario], cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=MOLECULE_TIMEOUT, check=False)
    output = proc.stdout
    if proc.returncode != 0:
        # molecule destroys the containers on failure; leave a trace for the reader.
        pytest.fail(f"molecule test -s {scenario} failed (rc {proc.returncode}):\n{output[-12000:]}")
    return output


def _assert_no_secret(output: str, scenario: str) -> None:
    secrets = _secrets(scenario)
    leaked = [index for index, secret in enumerate(secrets) if secret in output]
    # Report which one by position only: the message itself must not carry the secret.
    assert not leaked, f"{len(leaked)} test passphrase(s) of {scenario} (#{leaked}) in Ansible output"
    assert "PRIVATE KEY-----" not in output, "a PEM private key in Ansible output"


@pytest.mark.parametrize("scenario", ["default", "airgapped"])
def test_scenario(scenario, molecule_env):
    """default: four hosts, site.yml, idempotence, good -> revoke.yml -> revoked within
    2 s on both responders, restart, hardening, journal. airgapped: install from the
    controller's wheels on a host without network."""
    output = _run_molecule(scenario, molecule_env)
    assert "idempotence" in output or scenario != "default"
    _assert_no_secret(output, scenario)


def test_scenarios_keep_their_secrets_listed():
    """The leak check above is only as good as its list: each scenario must define the
    passphrases it checks for."""
    assert len(_secrets("default")) == 3
    assert len(_secrets("airgapped")) == 2
