"""`ansible-test sanity` on whatever is in the tree, offline (see docs/testing.md).

One ansible-test run (scripts/sanity.py: a copy of the git-visible files under
.../ansible_collections/pkiops/ocsp, pip and the sanity requirements from a local
wheelhouse); one pytest test per sanity test, so a failure names the check and lists
the offending lines grouped by file.
"""
from __future__ import annotations

import os
import subprocess

import pytest

from .sanity_support import group_by_file, sanity_test_names

# Checks that must be part of the run: if ansible-test stopped selecting them (a changed
# default set, a stray --skip-test), the sanity tests would pass without checking modules.
REQUIRED = {"compile", "import", "pep8", "pylint", "validate-modules", "yamllint", "ansible-doc", "shellcheck"}


def pytest_generate_tests(metafunc):
    if "sanity_test" in metafunc.fixturenames:
        metafunc.parametrize("sanity_test", sanity_test_names())


@pytest.mark.slow
def test_required_checks_are_selected():
    assert REQUIRED <= set(sanity_test_names())


@pytest.mark.slow
def test_pslint_is_skipped_explicitly():
    # pslint needs pwsh, which Debian 12 does not package; scripts/sanity.py skips it
    # by name so that the skip is visible rather than an ansible-test "missing tool".
    assert "pslint" not in sanity_test_names()


@pytest.mark.slow
def test_sanity(sanity_test, sanity_run):
    outcome = sanity_run.outcomes.get(sanity_test)
    if outcome == "failed":
        report = "\n\n".join(f"{message}\n{group_by_file(output)}"
                             for message, output in sanity_run.failures.get(sanity_test, []))
        pytest.fail(f"ansible-test sanity --test {sanity_test} failed:\n{report or sanity_run.log[-6000:]}",
                    pytrace=False)
    if outcome is None:
        pytest.fail(f"ansible-test stopped before running {sanity_test}:\n"
                    f"{sanity_run.fatal or sanity_run.log[-6000:]}", pytrace=False)
    if outcome == "skipped":
        reason = sanity_run.skip_reasons.get(sanity_test) or "no reason given"
        if sanity_test in REQUIRED:
            # e.g. shellcheck not installed: ansible-test skips with a warning only.
            pytest.fail(f"ansible-test skipped {sanity_test} ({reason}), which must run here:\n"
                        f"{sanity_run.log[-3000:]}", pytrace=False)
        pytest.skip(f"ansible-test skipped {sanity_test}: {reason}")


@pytest.mark.slow
def test_sanity_run_completed(sanity_run):
    """Every test ran and ansible-test reported no error outside its tests."""
    assert not sanity_run.fatal, sanity_run.fatal
    unattributed = set(sanity_run.outcomes) - set(sanity_test_names())
    assert not unattributed, f"reports for tests this suite does not know: {unattributed}"
    assert sanity_run.returncode == 0, sanity_run.log[-6000:]


@pytest.mark.slow
def test_target_pythons_checked(sanity_run):
    """compile and import also ran on each interpreter of PKIOPS_TARGET_PYTHONS (the
    managed hosts' Pythons, 3.9+; Debian 12 itself only has 3.11)."""
    paths = [path for path in os.environ.get("PKIOPS_TARGET_PYTHONS", "").split(os.pathsep) if path]
    if not paths:
        pytest.skip("PKIOPS_TARGET_PYTHONS is not set: module code compiled and imported on Python 3.11 only")
    for path in paths:
        version = subprocess.run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        for test in ("compile", "import"):
            assert version in sanity_run.python_versions.get(test, []), (test, version, sanity_run.python_versions)
