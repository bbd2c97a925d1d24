"""ansible-lint with the production profile, offline, over the whole repository
(roles, playbooks, molecule scenarios, galaxy.yml, meta/runtime.yml).

Configuration in .ansible-lint (profile, offline, excluded paths). --offline is passed
again on the command line so that no Galaxy install or version check is ever attempted.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.helpers.ansible_run import ansible_env

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_LINT = str(Path(sys.executable).parent / "ansible-lint")


def ansible_lint(project: Path) -> tuple[list, subprocess.CompletedProcess]:
    proc = subprocess.run(
        [ANSIBLE_LINT, "--offline", "--profile", "production", "--nocolor", "-f", "codeclimate",
         "--project-dir", str(project)],
        capture_output=True, text=True, env=ansible_env(), cwd=project, timeout=600, check=False,
    )
    issues = json.loads(proc.stdout) if proc.stdout.strip() else []
    return issues, proc


def by_file(issues: list) -> str:
    grouped: dict[str, list[str]] = {}
    for issue in issues:
        location = issue["location"]
        line = location.get("lines", {}).get("begin", location.get("positions", {}).get("begin", {}).get("line", 0))
        level = " (warning)" if issue.get("severity") == "minor" else ""
        grouped.setdefault(location["path"], []).append(
            f"    {line}: {issue['check_name']}{level}: {issue['description']}")
    return "\n".join(f"{path}:\n" + "\n".join(entries) for path, entries in sorted(grouped.items()))


@pytest.mark.slow
def test_ansible_lint_production_profile():
    issues, proc = ansible_lint(ROOT)
    # codeclimate severity: "major" for errors, "minor" for warnings (warn_list rules,
    # which ansible-lint itself lets pass); the exit code decides, like ansible-lint's.
    if proc.returncode != 0 or any(issue.get("severity") != "minor" for issue in issues):
        pytest.fail(f"ansible-lint --profile production:\n{by_file(issues) or proc.stderr[-4000:]}", pytrace=False)
    if issues:
        warnings.warn(f"ansible-lint warnings:\n{by_file(issues)}", stacklevel=1)
    processed = re.search(r"in (\d+) files processed", proc.stderr)
    # The role's tasks, defaults, meta, the playbooks, galaxy.yml: an empty run is a bug.
    assert processed and int(processed.group(1)) >= 10, proc.stderr[-2000:]


@pytest.mark.slow
def test_ansible_lint_catches_a_bad_playbook(tmp_path):
    """The same configuration and invocation report a real problem: guards against a
    configuration that silently lints nothing (over-broad exclude_paths, wrong cwd)."""
    shutil.copy(ROOT / ".ansible-lint", tmp_path / ".ansible-lint")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "bad.yml").write_text(
        "- hosts: all\n"
        "  tasks:\n"
        "    - shell: echo hello\n",
        encoding="utf-8",
    )
    issues, proc = ansible_lint(tmp_path)
    found = {issue["check_name"].split("[")[0] for issue in issues}
    assert {"name", "no-changed-when", "fqcn"} <= found, (found, proc.stderr[-2000:])
    assert proc.returncode != 0
