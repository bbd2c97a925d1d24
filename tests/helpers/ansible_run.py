"""Run the collection's real modules and playbooks through ansible-playbook.

Every test that exercises a module goes through here, so that options, check mode,
diff mode and no_log are what a user gets, not what a direct Python call would give.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CALLBACKS = Path(__file__).resolve().parent / "callback_plugins"


def ansible_env(results_file: str | None = None) -> dict:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=f"{ROOT}/.cache/collections",
        ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS),
        ANSIBLE_CALLBACKS_ENABLED="record_results",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="false",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
        ANSIBLE_PYTHON_INTERPRETER=str(Path(os.sys.executable)),
    )
    if results_file:
        env["PKIOPS_RESULTS"] = results_file
    return env


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: list = field(default_factory=list)

    def task(self, name: str) -> dict:
        """The result of the last task with this name."""
        for entry in reversed(self.results):
            if entry["task"] == name:
                return entry["result"]
        raise KeyError(f"no result for task {name!r}; have {[e['task'] for e in self.results]}")

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_playbook(playbook, *, check=False, diff=False, extra_vars=None, inventory=None,
                 cwd=None, args=(), timeout=600) -> PlaybookRun:
    """Run a playbook given as a path or as a list of plays (written to a temp file)."""
    with tempfile.TemporaryDirectory(prefix="pkiops-play-") as tmp:
        if not isinstance(playbook, (str, Path)):
            path = Path(tmp) / "play.yml"
            path.write_text(yaml.safe_dump(playbook, sort_keys=False))
            playbook = path
        results_file = str(Path(tmp) / "results.jsonl")
        cmd = ["ansible-playbook", str(playbook)]
        cmd += ["-i", "localhost,", "-c", "local"] if inventory is None else ["-i", inventory]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        cmd += list(args)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(results_file),
                              cwd=cwd or ROOT, timeout=timeout, check=False)
        results = []
        if os.path.exists(results_file):
            with open(results_file, encoding="utf-8") as handle:
                results = [json.loads(line) for line in handle]
        return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)


def run_module(module: str, args: dict, *, check=False, diff=False, name="module under test",
               **kwargs) -> dict:
    """Run one module task on localhost and return its result (failed or not)."""
    fqcn = module if "." in module else f"pkiops.ocsp.{module}"
    play = [{
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [{"name": name, fqcn: args, "ignore_errors": True}],
    }]
    run = run_playbook(play, check=check, diff=diff, **kwargs)
    try:
        return run.task(name)
    except KeyError as exc:
        raise AssertionError(f"module did not run:\n{run.output}") from exc
