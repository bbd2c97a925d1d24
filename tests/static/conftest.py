"""Fixtures of the static checks: one `ansible-test sanity` run per pytest run.

The sanity run is expensive and works in a shared copy of the checkout, so it happens
once per test run, even under pytest-xdist: the first worker to need it runs it under a
lock and leaves the results in a file named after xdist's test-run id; the others read
that file.
"""
from __future__ import annotations

import fcntl
import json
from dataclasses import asdict

import pytest

from .sanity_support import SanityRun, cache_dir


@pytest.fixture(scope="session")
def sanity_run(testrun_uid) -> SanityRun:
    folder = cache_dir() / "sanity"
    folder.mkdir(parents=True, exist_ok=True)
    results = folder / f"pytest-results-{testrun_uid}.json"
    with open(folder / ".pytest.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if results.is_file():
            return SanityRun(**json.loads(results.read_text(encoding="utf-8")))
        for stale in folder.glob("pytest-results-*.json"):
            stale.unlink()
        run = SanityRun.execute()
        results.write_text(json.dumps(asdict(run)), encoding="utf-8")
        return run
