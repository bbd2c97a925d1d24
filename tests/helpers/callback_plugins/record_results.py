# Test-only callback: appends every task result (with diff) as one JSON line to the file
# named by PKIOPS_RESULTS, so tests read what modules really returned.
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: record_results
type: aggregate
short_description: write task results as JSON lines (tests only)
description: Writes each task result to the file named by PKIOPS_RESULTS.
requirements: [PKIOPS_RESULTS in the environment]
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, outcome):
        path = os.environ.get("PKIOPS_RESULTS")
        if not path:
            return
        entry = {
            "host": result._host.get_name(),
            "task": result._task.get_name(),
            "outcome": outcome,
            "result": result._result,
        }
        # ansible-core 2.19 keeps `failed` out of the stored result; tests rely on it.
        if outcome == "failed":
            entry["result"] = dict(result._result, failed=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")
