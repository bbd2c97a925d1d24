"""`ansible-doc` renders every module of plugins/modules and the role's argument spec.

ansible-doc reads the collection through ANSIBLE_COLLECTIONS_PATH (the checkout linked
as .cache/collections/ansible_collections/pkiops/ocsp), as a user's ansible would.
"""
from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers.ansible_run import ansible_env

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DOC = str(Path(sys.executable).parent / "ansible-doc")
MODULES = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*.py") if path.stem != "__init__")
ROLE_DIR = ROOT / "roles" / "ocsp_responder"


def ansible_doc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ANSIBLE_DOC, *args], capture_output=True, text=True, env=ansible_env(),
                          cwd=ROOT, timeout=120, check=False)


def assert_clean(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr
    # ansible-doc still exits 0 on some problems (e.g. a bad doc fragment option); it warns.
    assert "[WARNING]" not in proc.stderr and "[ERROR]" not in proc.stderr, proc.stderr


@functools.lru_cache(maxsize=None)
def modules_json() -> dict:
    """One `ansible-doc --json` call for all modules (each call costs a second)."""
    proc = ansible_doc("--json", *(f"pkiops.ocsp.{module}" for module in MODULES))
    return {"stderr": proc.stderr, "returncode": proc.returncode,
            "docs": json.loads(proc.stdout) if proc.returncode == 0 else {}}


@pytest.mark.parametrize("module", MODULES)
def test_module_doc_renders(module):
    name = f"pkiops.ocsp.{module}"
    text = ansible_doc(name)
    assert_clean(text)
    assert text.stdout.startswith(f"> MODULE {name} "), text.stdout[:300]
    assert "OPTIONS" in text.stdout and "EXAMPLES:" in text.stdout and "RETURN VALUES:" in text.stdout

    entry = modules_json()["docs"].get(name)
    if entry is None:  # another module broke the shared call: ask for this one alone
        alone = ansible_doc("--json", name)
        assert_clean(alone)
        entry = json.loads(alone.stdout)[name]
    doc = entry["doc"]
    assert doc["module"] == module
    assert doc["short_description"].strip()
    assert doc["options"], "a module without options?"
    for option, spec in doc["options"].items():
        assert spec.get("description"), f"option {option} has no description"
    assert (entry["examples"] or "").strip(), "EXAMPLES is empty"
    assert yaml.safe_load(entry["examples"]), "EXAMPLES is not YAML tasks"
    assert entry["return"], "RETURN is empty"


def test_role_doc_renders():
    if not (ROLE_DIR / "meta" / "argument_specs.yml").is_file():
        pytest.skip("roles/ocsp_responder/meta/argument_specs.yml does not exist yet")
    name = "pkiops.ocsp.ocsp_responder"
    text = ansible_doc("-t", "role", name)
    assert_clean(text)
    assert text.stdout.startswith(f"> ROLE: *{name}*"), text.stdout[:300]
    assert "ENTRY POINT: *main*" in text.stdout

    as_json = ansible_doc("-t", "role", "--json", name)
    assert_clean(as_json)
    main = json.loads(as_json.stdout)[name]["entry_points"]["main"]
    assert main["short_description"].strip()
    for option, spec in main["options"].items():
        assert spec.get("description"), f"role variable {option} has no description"

    # Every default the role sets is a documented variable (the layout's promise).
    defaults = ROLE_DIR / "defaults" / "main.yml"
    if defaults.is_file():
        undocumented = sorted(set(yaml.safe_load(defaults.read_text(encoding="utf-8")) or {}) - set(main["options"]))
        assert not undocumented, f"defaults/main.yml variables missing from argument_specs: {undocumented}"
