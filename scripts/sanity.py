"""Run `ansible-test sanity` on this collection without network access.

ansible-test wants three things this network does not give it:

* a checkout under `.../ansible_collections/pkiops/ocsp` (it resolves symlinks, so the
  link in .cache/collections is not enough): the tracked and untracked-not-ignored files
  are mirrored with rsync into $PKIOPS_CACHE/sanity/ansible_collections/pkiops/ocsp;
* pip inside every per-test virtualenv, which it installs by running
  ~/.ansible/test/cache/get_pip_<X_Y>.py, downloading that script from
  ci-files.testing.ansible.com when it is missing: we write our own script there, which
  installs a pip wheel from the local wheelhouse;
* the pinned requirements of each sanity test, which it installs with pip, passing pip
  no PIP_* variables: a pip.conf sends pip to the wheelhouse only (no index).

ansible-test runs with HOME set to a private directory under $PKIOPS_CACHE/sanity/home,
so the get_pip script and the pip.conf live there: nothing in the user's own home is
touched, and the user's pip configuration cannot steer these installs.

The wheelhouse ($PKIOPS_CACHE/wheels/ansible-test-<core>-py<X.Y>) is filled once with
`pip download` from whatever index pip is configured for (as scripts/bootstrap.sh does);
afterwards no network is used.

Usage: scripts/sanity.py [--prepare-only] [--results-dir DIR] [ansible-test sanity arguments...]

PKIOPS_TARGET_PYTHONS=/path/to/python3.9:... adds compile and import runs on those
interpreters (the managed hosts' Python; Debian 12 has only 3.11).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = ("pkiops", "ocsp")
# pwsh is not packaged for Debian 12; pslint cannot run without it.
DEFAULT_SKIPS = ("pslint",)
# The checks that concern the managed host's Python (see target_pythons).
TARGET_TESTS = ("compile", "import")

GET_PIP_TEMPLATE = '''\
"""Stand-in for get-pip.py, written by pkiops.ocsp scripts/sanity.py.

ansible-test runs it with a fresh virtualenv's python and the arguments
`--disable-pip-version-check pip==X --no-setuptools --no-wheel`; it installs pip from a
local wheel instead of downloading it.
"""
import sys

WHEELHOUSE = {wheelhouse!r}
sys.path.insert(0, {pip_wheel!r})

from pip._internal.cli.main import main  # noqa: E402  (the wheel is on sys.path now)

ARGS = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", WHEELHOUSE] + ARGS))
'''

PIP_CONF_TEMPLATE = """\
# Written by pkiops.ocsp scripts/sanity.py for ansible-test's virtualenvs: wheels only
# from the local wheelhouse, never an index.
[global]
no-index = true
find-links = {wheelhouse}
disable-pip-version-check = true
"""


def cache_dir() -> Path:
    return Path(os.environ.get("PKIOPS_CACHE") or Path.home() / ".cache" / "pkiops-ocsp")


def ansible_test_data() -> Path:
    import ansible_test  # pylint: disable=import-outside-toplevel

    return Path(ansible_test.__file__).resolve().parent / "_data"


def pinned_pip_version(python_version: str) -> str:
    # ansible-test's own answer, including per-Python overrides.
    from ansible_test._internal.python_requirements import (  # pylint: disable=import-outside-toplevel
        get_venv_packages,
    )

    return get_venv_packages(types.SimpleNamespace(version=python_version))["pip"]


def requirement_files() -> list[Path]:
    return sorted((ansible_test_data() / "requirements").glob("sanity.*.txt"))


def ensure_wheelhouse(wheelhouse: Path, pip_version: str) -> None:
    """Download pip and every sanity requirement once; a stamp makes reruns offline."""
    constraints = ansible_test_data() / "requirements" / "constraints.txt"
    files = requirement_files()
    digest = hashlib.sha256(f"pip=={pip_version}\n{sys.version}\n".encode())
    for path in files + [constraints]:
        digest.update(path.read_bytes())
    stamp = wheelhouse / ".complete"
    if stamp.is_file() and stamp.read_text(encoding="utf-8").strip() == digest.hexdigest():
        return
    wheelhouse.mkdir(parents=True, exist_ok=True)
    print(f"sanity: downloading ansible-test's sanity requirements into {wheelhouse}", file=sys.stderr)
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--only-binary", ":all:", "--dest", str(wheelhouse)]
    subprocess.run(download + ["--no-deps", f"pip=={pip_version}"], check=True)
    requirements: list[str] = []
    for path in files:
        requirements += ["-r", str(path)]
    subprocess.run(download + ["-c", str(constraints)] + requirements, check=True)
    stamp.write_text(digest.hexdigest() + "\n", encoding="utf-8")


def write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def prepare_home(home: Path, wheelhouse: Path, pip_version: str) -> None:
    pip_wheels = sorted(wheelhouse.glob(f"pip-{pip_version}-*.whl"))
    if not pip_wheels:
        raise SystemExit(f"sanity: no pip-{pip_version} wheel in {wheelhouse}")
    get_pip = home / ".ansible" / "test" / "cache" / f"get_pip_{pip_version.replace('.', '_')}.py"
    write_if_changed(get_pip, GET_PIP_TEMPLATE.format(wheelhouse=str(wheelhouse), pip_wheel=str(pip_wheels[-1])))
    write_if_changed(home / ".config" / "pip" / "pip.conf", PIP_CONF_TEMPLATE.format(wheelhouse=wheelhouse))


def collection_files() -> list[str] | None:
    """Tracked and untracked-not-ignored files; None outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            check=True, capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sorted({name for name in out.decode().split("\0") if name})


def sync_copy(dest: Path) -> None:
    """Mirror exactly the git-visible files (tracked or untracked-not-ignored) into dest.

    A filter list (each file and its parent directories included, everything else
    excluded) lets rsync itself delete whatever is extraneous, tests/output included.
    Without git (an unpacked tarball), rsync applies the .gitignore files itself.
    """
    files = collection_files()
    if files is None:
        filter_text = "- /.git/\n:- .gitignore\n"
    else:
        rules: set[str] = set()
        for name in files:
            if not (ROOT / name).exists() and not (ROOT / name).is_symlink():
                continue  # deleted in the work tree, not yet in the index
            parts = name.split("/")
            for depth in range(1, len(parts)):
                rules.add("+ /" + "/".join(parts[:depth]) + "/")
            rules.add("+ /" + name)
        filter_text = "".join(rule + "\n" for rule in sorted(rules)) + "- *\n"
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["rsync", "-a", "--delete", "--delete-excluded", "--filter", "merge -", f"{ROOT}/", f"{dest}/"],
        input=filter_text.encode(), check=True,
    )


def prepare() -> tuple[Path, dict[str, str]]:
    """Make everything ansible-test needs; return the collection copy and its environment."""
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    pip_version = pinned_pip_version(python_version)
    from ansible.release import __version__ as core_version  # pylint: disable=import-outside-toplevel

    base = cache_dir()
    wheelhouse = base / "wheels" / f"ansible-test-{core_version}-py{python_version}"
    ensure_wheelhouse(wheelhouse, pip_version)
    home = base / "sanity" / "home"
    prepare_home(home, wheelhouse, pip_version)
    copy = base / "sanity" / "ansible_collections" / COLLECTION[0] / COLLECTION[1]
    sync_copy(copy)
    env = dict(os.environ, HOME=str(home))
    # ansible-test runs the sanity tests with the tools next to this python.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    return copy, env


def target_pythons(links: Path) -> list[str]:
    """Link the interpreters listed in PKIOPS_TARGET_PYTHONS into links as python<X.Y>.

    Module code runs on the managed host's Python (3.9+), which Debian 12 does not ship;
    where such interpreters exist (pyenv, deadsnakes...), compile and import also run on
    them. ansible-test finds them as python<X.Y> on PATH; links to the real executables
    keep pyenv shims out of the way.
    """
    versions = []
    for path in filter(None, os.environ.get("PKIOPS_TARGET_PYTHONS", "").split(os.pathsep)):
        probe = subprocess.run(
            [path, "-c", "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"],
            capture_output=True, text=True, check=True,
        )
        version, executable = probe.stdout.split()
        links.mkdir(parents=True, exist_ok=True)
        link = links / f"python{version}"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(executable)
        versions.append(version)
    return versions


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """One run at a time: the copy, the venvs and tests/output are shared."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0], allow_abbrev=False)
    parser.add_argument("--prepare-only", action="store_true",
                        help="set up the wheelhouse, the private HOME and the copy, print the copy's path")
    parser.add_argument("--results-dir", type=Path,
                        help="copy ansible-test's reports (tests/output/bot and junit) here after the run")
    options, rest = parser.parse_known_args(argv)
    with exclusive(cache_dir() / "sanity" / ".lock"):
        copy, env = prepare()
        if options.prepare_only:
            print(copy)
            return 0
        python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
        ansible_test = [str(Path(sys.executable).parent / "ansible-test"), "sanity", "--local"]
        command = ansible_test + ["--python", python_version]
        full_run = not any(arg == "--test" or arg.startswith("--test=") for arg in rest)
        if full_run:
            for test in DEFAULT_SKIPS:
                command += ["--skip-test", test]
        returncode = subprocess.run(command + rest, cwd=copy, env=env, check=False).returncode
        if full_run:
            links = cache_dir() / "sanity" / "pythons"
            env["PATH"] = os.pathsep.join([str(links), env["PATH"]])
            for version in target_pythons(links):
                extra = ansible_test + ["--python", version] + [arg for test in TARGET_TESTS for arg in ("--test", test)]
                returncode = max(returncode, subprocess.run(extra + rest, cwd=copy, env=env, check=False).returncode)
        if options.results_dir:
            # Copied while the lock is held: the next run's sync deletes tests/output.
            shutil.rmtree(options.results_dir, ignore_errors=True)
            options.results_dir.mkdir(parents=True)
            for kind in ("bot", "junit"):
                reports = copy / "tests" / "output" / kind
                if reports.is_dir():
                    shutil.copytree(reports, options.results_dir / kind)
        return returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
