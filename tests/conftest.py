"""Suite-wide fixtures. Tests run from the checkout through scripts/test.sh, which
bootstraps the venv and links the checkout in as the pkiops.ocsp collection."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The responder package ships inside the role; tests import it the way the docs say.
sys.path.insert(0, str(ROOT / "roles" / "ocsp_responder" / "files"))


def pytest_configure(config):
    link = ROOT / ".cache" / "collections" / "ansible_collections" / "pkiops" / "ocsp"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(ROOT, link)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
