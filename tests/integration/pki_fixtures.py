"""Shared set-up for the ca_cert / ocsp_signer / csr integration tests.

A root and an intermediate CA are built once per worker through the real modules; each
test that changes them works on its own copy.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.ansible_run import run_playbook

ROOT_PASS = "root-Secret-7f3a"
INTER_PASS = "inter-Secret-91c2"
ORG = {"C": "GB", "ST": "England", "O": "Alice Ltd", "OU": "Alice Ltd Certificate Authority"}


def openssl(*args, input=None, check=True):
    proc = subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, input=input,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def x509_text(path) -> str:
    return openssl("x509", "-in", path, "-noout", "-text").stdout


@contextmanager
def write_protected(path: Path):
    """``path`` (a file, or a directory) cannot be written or replaced inside the block. Root
    writes through permissions, so for root it is made immutable (skips without chattr)."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False).returncode:
            pytest.skip("chattr +i is not available here")
        undo = ["chattr", "-i", str(path)]
    else:
        undo = ["chmod", "%o" % (path.stat().st_mode & 0o7777), str(path)]
        path.chmod(0o555)
    try:
        yield
    finally:
        subprocess.run(undo, check=True)


def snapshot(*roots) -> dict:
    """Content, mode and mtime of every file under roots (plus which directories exist)."""
    state = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            state[str(root)] = None
            continue
        for path in sorted([root, *root.rglob("*")]):
            info = path.lstat()
            if path.is_dir():
                state[str(path)] = ("dir", info.st_mode)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[str(path)] = (digest, info.st_mode, info.st_mtime_ns)
    return state


class Pki:
    def __init__(self, base: Path):
        self.base = base
        self.root = base / "root"
        self.inter = base / "intermediate"

    def issuer_args(self, **extra):
        return {"issuer_dir": str(self.inter), "issuer_passphrase": INTER_PASS, **extra}

    def leaf(self, name, profile="server", key_type="ECC", **extra):
        args = {
            "profile": profile,
            **self.issuer_args(),
            "privatekey_path": str(self.base / f"{name}.key.pem"),
            "privatekey_type": key_type,
            "path": str(self.base / f"{name}.cert.pem"),
            "subject": {"O": "Alice Ltd", "CN": f"{name}.example.com"},
            "subject_alt_name": [f"DNS:{name}.example.com"],
        }
        if key_type == "ECC":
            args["privatekey_curve"] = "secp256r1"
        args.update(extra)
        return args


def root_args(ca_dir, **extra):
    return {
        "profile": "root_ca", "ca_dir": str(ca_dir), "privatekey_type": "ECC",
        "privatekey_curve": "secp384r1", "privatekey_passphrase": ROOT_PASS,
        "subject": {**ORG, "CN": "Alice Ltd Root CA"}, **extra,
    }


def intermediate_args(ca_dir, issuer_dir, **extra):
    return {
        "profile": "intermediate_ca", "ca_dir": str(ca_dir), "issuer_dir": str(issuer_dir),
        "issuer_passphrase": ROOT_PASS, "privatekey_type": "ECC", "privatekey_curve": "secp384r1",
        "privatekey_passphrase": INTER_PASS, "subject": {**ORG, "CN": "Alice Ltd Intermediate CA"},
        "openssl_cnf": {"ocsp_url": ["http://ocsp.example.com"]}, **extra,
    }


def build_pki(base: Path) -> Pki:
    pki = Pki(base)
    run = run_playbook([{
        "hosts": "localhost", "gather_facts": False,
        "tasks": [
            {"name": "root", "pkiops.ocsp.ca_cert": root_args(pki.root)},
            {"name": "intermediate", "pkiops.ocsp.ca_cert": intermediate_args(pki.inter, pki.root)},
        ],
    }])
    assert run.rc == 0, run.output
    return pki


def copy_pki(source: Pki, dest: Path) -> Pki:
    """Copy a PKI; openssl.cnf names its directory, so point the copies at themselves."""
    shutil.copytree(source.base, dest, symlinks=True)
    for ca in ("root", "intermediate"):
        cnf = dest / ca / "openssl.cnf"
        if cnf.exists():
            cnf.write_text(cnf.read_text().replace(str(source.base / ca), str(dest / ca)))
    return Pki(dest)


@pytest.fixture(scope="session")
def base_pki(tmp_path_factory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("base-pki"))


@pytest.fixture
def pki(base_pki, tmp_path) -> Pki:
    """A private copy of the base PKI for a test that writes into it."""
    return copy_pki(base_pki, tmp_path / "pki")


def run_module(module, args, *, check=False, diff=False, name="module under test", **kwargs) -> dict:
    """tests.helpers.ansible_run.run_module, plus `failed` taken from the task's outcome
    (ansible-core 2.19 leaves it out of the recorded result dict)."""
    fqcn = module if "." in module else f"pkiops.ocsp.{module}"
    run = run_playbook([{"hosts": "localhost", "gather_facts": False,
                         "tasks": [{"name": name, fqcn: args, "ignore_errors": True}]}],
                       check=check, diff=diff, **kwargs)
    return task_result(run, name)


def task_result(run, name) -> dict:
    for entry in reversed(run.results):
        if entry["task"] == name:
            result = dict(entry["result"])
            result["failed"] = entry["outcome"] == "failed"
            return result
    raise AssertionError(f"task {name!r} did not run:\n{run.output}")


def index_lines(ca_dir) -> list[str]:
    return [line for line in (Path(ca_dir) / "index.txt").read_text().splitlines() if line]


def file_mode(path) -> int:
    return os.stat(path).st_mode & 0o7777
