"""The role's install and health-wait tasks on a real host, without systemd or a package
index: its validate and install task files run through ansible-playbook on localhost (pip
is made to fail before it fetches anything), and its health-wait tasks, taken as they are
from service.yml and handlers/main.yml, against a local HTTP server. What they must
guarantee: a virtualenv of another Python version (after a distribution upgrade, or a new
ocsp_responder_python) is made anew, never a directory that is no virtualenv; a token in
the index URL never reaches the output; a proxy in the environment does not blind the
health wait."""
from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from tests.helpers.ansible_run import ROOT, run_playbook

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="the role's tasks chown to root")]

ROLE = ROOT / "roles" / "ocsp_responder"
INTERPRETER_VERSION = "%d.%d" % sys.version_info[:2]
TOKEN = "tok-Zq81-index-secret"
REMOVE_TASK = "pkiops.ocsp.ocsp_responder : Remove a virtualenv made from another Python version"
CREATE_TASK = "pkiops.ocsp.ocsp_responder : Create the virtualenv"
PEM = "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"


def install_play(base: Path, **role_vars) -> list:
    """validate + install of the role. pip gets no index and no find-links, so its install
    fails right after the virtualenv is in place (the package is not packed then). The
    install directory exists, as account.yml would have made it."""
    for sub in ("opt", "opt/lib", "opt/bin"):
        (base / sub).mkdir(exist_ok=True)
    variables = {
        "ocsp_responder_install_dir": str(base / "opt"),
        "ocsp_responder_python": sys.executable,
        "ocsp_responder_issuers": [{"name": "intermediate", "ca_cert_content": PEM,
                                    "signer_cert_content": PEM, "index_content": ""}],
        "ocsp_responder_pip_extra_args": ["--no-index", "--retries", "0"],
        **role_vars,
    }
    tasks = [{"name": f"Role {part}", "ansible.builtin.include_role": {
        "name": "pkiops.ocsp.ocsp_responder", "tasks_from": part}} for part in ("validate", "install")]
    tasks.append({"name": "End before the handlers (no systemd here)", "ansible.builtin.meta": "end_play"})
    return [{"hosts": "localhost", "gather_facts": False, "vars": variables,
             "environment": {"PIP_CONFIG_FILE": "/dev/null", "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": ""},
             "tasks": tasks}]


def outcome(run, name: str) -> str:
    return next(e["outcome"] for e in reversed(run.results) if e["task"] == name)


def venv_version(venv: Path) -> str:
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, _separator, value = line.partition("=")
        if key.strip() == "version":
            return ".".join(value.strip().split(".")[:2])
    raise AssertionError(f"no version in {venv / 'pyvenv.cfg'}")


def old_venv(venv: Path, version: str = "3.9") -> None:
    """What a virtualenv made by another Python looks like to the role: its pyvenv.cfg, its
    lib/pythonX.Y, and a bin/python that runs (the new interpreter behind the old path)."""
    (venv / "bin").mkdir(parents=True)
    (venv / "lib" / f"python{version}" / "site-packages").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\ninclude-system-site-packages = false\n"
                                     f"version = {version}.2\n")
    (venv / "bin" / "python").symlink_to(sys.executable)


def test_virtualenv_of_another_python_is_made_anew(tmp_path):
    venv = tmp_path / "opt" / "venv"
    old_venv(venv)
    run = run_playbook(install_play(tmp_path))
    assert run.rc != 0 and "Install the pinned requirements" in run.output, run.output  # pip: no index
    assert venv_version(venv) == INTERPRETER_VERSION
    assert not (venv / "lib" / "python3.9").exists()
    assert (venv / "bin" / "pip").exists()
    assert run.task(REMOVE_TASK)["changed"], run.output  # notifies the restart

    # Same version: kept (a second run changes nothing).
    again = run_playbook(install_play(tmp_path))
    assert outcome(again, REMOVE_TASK) == "skipped", again.output
    assert not again.task(CREATE_TASK)["changed"], again.output


def test_directory_without_pyvenv_cfg_is_never_removed(tmp_path):
    venv = tmp_path / "opt" / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "keep").write_text("not a virtualenv of the role")
    run = run_playbook(install_play(tmp_path))
    assert outcome(run, REMOVE_TASK) == "skipped", run.output
    assert (venv / "keep").exists()


def test_index_token_never_in_output(tmp_path):
    run = run_playbook(install_play(tmp_path, ocsp_responder_pip_index_url=f"https://ops:{TOKEN}@pypi.invalid/simple"),
                       args=("-vv",))
    assert run.rc != 0 and "Install the pinned requirements" in run.output, run.output  # the pip result was shown
    assert TOKEN not in run.output


class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args):
        pass


@pytest.fixture
def health_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def role_task(path: Path, name: str) -> dict:
    task = next(t for t in yaml.safe_load(path.read_text()) if t["name"] == name)
    return {key: value for key, value in task.items() if key != "listen"}


@pytest.mark.parametrize("path, name", [
    (ROLE / "tasks" / "service.yml", "Wait until the responder is healthy"),
    (ROLE / "handlers" / "main.yml", "Wait until the OCSP responder is healthy again"),
])
def test_health_wait_ignores_a_proxy_in_the_environment(health_server, path, name):
    """A responder host whose environment has http_proxy (for pip or apt) must still pass
    the wait: the endpoint is on the host itself, where no proxy can reach."""
    variables = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    variables.update(yaml.safe_load((ROLE / "vars" / "main.yml").read_text()))
    variables.update(ocsp_responder_listen=[health_server], ocsp_responder_health_timeout=2,
                     __ocsp_responder_check_mode=False)
    dead_proxy = "http://127.0.0.1:9"  # discard port: nothing listens
    play = [{"hosts": "localhost", "gather_facts": False, "vars": variables,
             "environment": {"http_proxy": dead_proxy, "HTTP_PROXY": dead_proxy},
             "tasks": [role_task(path, name)]}]
    run = run_playbook(play)
    assert run.rc == 0, run.output
    assert run.task(name)["status"] == 200


def installed_venv(venv: Path) -> None:
    """A virtualenv of this interpreter's version whose pip has nothing left to install
    (a stand-in: these tests have no package index)."""
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {'.'.join(map(str, sys.version_info[:3]))}\n")
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "pip").write_text("#!/bin/sh\necho 'Requirement already satisfied: everything'\n")
    (venv / "bin" / "pip").chmod(0o755)


def test_package_is_unpacked_after_a_run_stopped_between_copy_and_unpacking(tmp_path):
    """A run that copied a new package archive and stopped before unpacking it (killed,
    connection lost) leaves the new archive beside the old package: the next run must
    still unpack it (and so restart), not find the copy unchanged and keep the old code."""
    installed_venv(tmp_path / "opt" / "venv")
    first = run_playbook(install_play(tmp_path, ocsp_responder_pip_extra_args=[]))
    assert first.rc == 0, first.output
    package = tmp_path / "opt" / "lib" / "ocsp_responder"
    shipped = (ROLE / "files" / "ocsp_responder" / "__init__.py").read_text()
    assert (package / "__init__.py").read_text() == shipped

    # The state such a run leaves: the previous version unpacked (with a module since
    # removed) as the previous run recorded it, the new archive in place.
    (package / "__init__.py").write_text("__version__ = 'previous'\n")
    (package / "removed_since.py").write_text("")
    marker = tmp_path / "opt" / "lib" / "ocsp_responder.tar.sha1"
    if marker.exists():  # recorded by the role
        marker.write_text(hashlib.sha1(b"the previous archive").hexdigest() + "\n")

    second = run_playbook(install_play(tmp_path, ocsp_responder_pip_extra_args=[]))
    assert second.rc == 0, second.output
    assert (package / "__init__.py").read_text() == shipped
    assert not (package / "removed_since.py").exists()
    assert second.task("pkiops.ocsp.ocsp_responder : Unpack the package")["changed"]  # notifies the restart

    for check in (False, True):  # converged: nothing changes, nor is predicted to
        again = run_playbook(install_play(tmp_path, ocsp_responder_pip_extra_args=[]), check=check)
        assert again.rc == 0, again.output
        assert not [e["task"] for e in again.results if e["outcome"] != "skipped" and e["result"].get("changed")]


def test_install_in_check_mode_on_a_fresh_host(tmp_path):
    run = run_playbook(install_play(tmp_path, ocsp_responder_pip_extra_args=[]), check=True)
    assert run.rc == 0, run.output
    assert not (tmp_path / "opt" / "lib" / "ocsp_responder").exists() and not (tmp_path / "opt" / "venv").exists()


def test_launcher_never_imports_from_its_working_directory(tmp_path):
    """`python -m` puts the working directory first on sys.path: the launcher, run as root by
    the role's --check-config or by hand, must not import a package planted there."""
    venv = tmp_path / "opt" / "venv"
    installed_venv(venv)
    run = run_playbook(install_play(tmp_path, ocsp_responder_pip_extra_args=[]))
    assert run.rc == 0, run.output
    # The stand-in becomes this test run's own virtualenv, so the responder's imports resolve.
    (venv / "pyvenv.cfg").write_text((Path(sys.prefix) / "pyvenv.cfg").read_text())
    (venv / "lib").symlink_to(Path(sys.prefix) / "lib")
    planted = tmp_path / "planted"
    (planted / "ocsp_responder").mkdir(parents=True)
    (planted / "ocsp_responder" / "__init__.py").write_text("")
    (planted / "ocsp_responder" / "__main__.py").write_text("print('planted code ran')\n")
    (planted / "yaml.py").write_text("print('planted yaml ran')\n")
    launched = subprocess.run([str(tmp_path / "opt" / "bin" / "ocsp-responder"), "--version"], cwd=planted,
                              capture_output=True, text=True, timeout=60, check=False)
    assert launched.returncode == 0, launched.stderr
    shipped = (ROLE / "files" / "ocsp_responder" / "__init__.py").read_text()
    assert f'"{launched.stdout.strip()}"' in shipped or f"'{launched.stdout.strip()}'" in shipped, launched.stdout
    assert "planted" not in launched.stdout + launched.stderr
