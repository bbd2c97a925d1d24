"""Runs scripts/sanity.py (offline ansible-test sanity) and reads its reports."""
from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[2]
SANITY_SCRIPT = ROOT / "scripts" / "sanity.py"
PER_PYTHON = re.compile(r"-python-\d+\.\d+$")
FATAL = re.compile(r"^FATAL: .*?(?=^\S|\Z)", re.MULTILINE | re.DOTALL)


def cache_dir() -> Path:
    return Path(os.environ.get("PKIOPS_CACHE") or Path.home() / ".cache" / "pkiops-ocsp")


def run_sanity_script(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SANITY_SCRIPT), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )


def sanity_name(report_name: str) -> str:
    """ansible-test's report name -> sanity test name.

    Per-Python tests (compile, import, and those "not applicable") report as e.g.
    "compile-python-3.11".
    """
    return PER_PYTHON.sub("", report_name)


@dataclass
class SanityRun:
    returncode: int
    seconds: float
    outcomes: dict = field(default_factory=dict)  # test name -> "passed" | "failed" | "skipped"
    skip_reasons: dict = field(default_factory=dict)  # test name -> ansible-test's reason
    python_versions: dict = field(default_factory=dict)  # test name -> Pythons it ran on
    failures: dict = field(default_factory=dict)  # test name -> list of (message, output)
    fatal: str = ""  # ansible-test gave up: later tests did not run
    log: str = ""

    @classmethod
    def execute(cls) -> "SanityRun":
        started = time.monotonic()
        reports = cache_dir() / "sanity" / "pytest-reports"
        # --failure-ok: a failing test must not stop the others from running.
        # --junit: one report per test, passed and skipped ones too.
        proc = run_sanity_script("--results-dir", str(reports), "--failure-ok", "--junit", "--color", "no")
        output = proc.stdout + proc.stderr
        run = cls(returncode=proc.returncode, seconds=0.0, log=output[-20000:])
        for report in sorted((reports / "junit").glob("ansible-test-sanity-*.xml")):
            for case in ElementTree.parse(report).iter("testcase"):
                name = sanity_name(case.get("name", ""))
                version = PER_PYTHON.search(case.get("name", ""))
                if version and case.find("skipped") is None:
                    run.python_versions.setdefault(name, []).append(version.group(0)[len("-python-"):])
                if case.find("failure") is not None or case.find("error") is not None:
                    run.outcomes[name] = "failed"
                elif case.find("skipped") is not None:
                    run.outcomes.setdefault(name, "skipped")
                    run.skip_reasons[name] = case.find("skipped").text or ""
                else:
                    run.outcomes.setdefault(name, "passed")
                    if run.outcomes[name] == "skipped":  # skipped on one Python, ran on another
                        run.outcomes[name] = "passed"
        for report in sorted((reports / "bot").glob("ansible-test-sanity-*.json")):
            name = sanity_name(report.name[len("ansible-test-sanity-"):-len(".json")])
            data = json.loads(report.read_text(encoding="utf-8"))
            run.outcomes[name] = "failed"
            run.failures.setdefault(name, []).extend(
                (r.get("message", ""), r.get("output", "")) for r in data.get("results", []))
        run.fatal = "\n".join(m.group(0).strip() for m in FATAL.finditer(output)
                              if "sanity test(s) listed below" not in m.group(0))
        run.seconds = time.monotonic() - started
        return run


@functools.lru_cache(maxsize=None)
def sanity_test_names() -> tuple[str, ...]:
    """The sanity tests ansible-test would run here (its default set minus our skips)."""
    proc = run_sanity_script("--list-tests", timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/sanity.py --list-tests failed:\n{proc.stderr[-4000:]}")
    return tuple(line.strip() for line in proc.stdout.splitlines() if line.strip())


def group_by_file(output: str) -> str:
    """Lint lines `path:line:col: message`, regrouped so each file's owner sees theirs."""
    by_file: dict[str, list[str]] = {}
    other: list[str] = []
    for line in output.splitlines():
        match = re.match(r"^([^\s:]+\.[\w.-]+):(\d+:\d+: .*)$", line)
        if match:
            by_file.setdefault(match.group(1), []).append(match.group(2))
        elif line.strip():
            other.append(line)
    parts = [f"{path}:\n" + "\n".join(f"    {entry}" for entry in entries) for path, entries in sorted(by_file.items())]
    if other:
        parts.append("\n".join(other))
    return "\n".join(parts)
