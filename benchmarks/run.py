"""The responder against `openssl ocsp`, in one run on one machine (issue 3, Proof).

Builds a PKI with the openssl CLI (RSA-2048 CA and delegated signer), starts
`openssl ocsp` (its best setting, calibrated) and ours on the same index and keys, and
drives both with the same wrk + Lua script (benchmarks/ocsp.lua): cached GET, cached
POST, nonce POST (live signing); with them the ceiling, aiohttp serving constant bytes in
as many processes. All of it twice: with wrk and the servers sharing every core (workers
= cores), then with wrk on a core of its own and the servers on the others (split).
`openssl speed` RSA-2048 signatures in every round, on a core the servers use. Then a
1,000,000-entry index: time until /healthz says 200, and RSS per entry.

Prints req/s, p50/p99 latency and ratios, then PASS/MISS per target of issue 3.
Exits 0 whatever the verdicts (a benchmark, not a test); non-zero only when it could
not measure. See benchmarks/README.md; results are written to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from dataclasses import dataclass
from typing import Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
PACKAGE_DIR = ROOT / "roles" / "ocsp_responder" / "files"
sys.path.insert(0, str(ROOT / "tests" / "responder"))

import interop_support as support  # noqa: E402  (the openssl-CLI PKI and `openssl ocsp` launcher)
from cryptography import x509  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402

TARGET_CACHED_VS_OPENSSL = 10.0
TARGET_CACHED_VS_FIXED = 0.85
TARGET_LIVE_VS_SPEED = 0.80
TARGET_READY_SECONDS = 60.0
TARGET_RSS_PER_ENTRY = 2048
# Idle time of the servers' cores above which a throughput is flagged as the load generator's.
IDLE_SHARE_NOTED = 0.03


# --- processes ---------------------------------------------------------------------------

@dataclass
class Arrangement:
    """Where the servers and wrk run. ``shared``: every process on every core, as on a
    busy host. ``split``: wrk on cores of its own, the servers (one worker per core)
    on the others: with shared cores the load generator's CPU comes out of the
    servers' throughput, the more so the cheaper a request is."""
    name: str
    workers: int
    server_cpus: Optional[list] = None  # None: any core
    load_cpus: Optional[list] = None

    def describe(self) -> str:
        if self.server_cpus is None:
            return f"{self.name}: wrk and the servers ({self.workers} workers) on all cores"
        return (f"{self.name}: wrk on CPU {','.join(map(str, self.load_cpus))}, the servers ({self.workers} "
                f"workers) on CPU {','.join(map(str, self.server_cpus))}")


def pinned_to(cpus):
    """A preexec_fn confining the child (and what it forks) to ``cpus``; None: no confinement."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def http(url: str, body: bytes = None, timeout: float = 10.0):
    headers = {"Content-Type": "application/ocsp-request"} if body is not None else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return None, b""


def served_headers(url: str, body: bytes = None) -> dict:
    """The headers a server sends with its answer, but those aiohttp adds to any response."""
    headers = {"Content-Type": "application/ocsp-request"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=10) as reply:
        return {name: value for name, value in reply.headers.items()
                if name.lower() not in ("date", "content-length", "server", "connection", "keep-alive")}


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def rss_bytes(pid: int) -> int:
    """RSS of a process and its children (the workers), from /proc."""
    total = 0
    pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for each in pids:
        match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{each}/status").read_text(), re.M)
        total += int(match.group(1)) * 1024
    return total


class Ours:
    """Our responder as its docs say to run it: python -m ocsp_responder --config FILE."""

    def __init__(self, workdir: Path, pki, port: int, *, workers: int, event_loop: str, index: Path = None,
                 request_log: bool = False, ready_timeout: float = 300.0, cpus: list = None):
        """``cpus``: the cores it may run on, its workers too (default: any)."""
        self.port = port
        config = {
            "listen": [f"127.0.0.1:{port}"],
            "workers": workers,
            "event_loop": event_loop,
            "issuers": [{"name": "bench", "ca_cert": str(pki.ca_cert), "index": str(index or pki.index),
                         "signer_cert": str(pki.signer_cert), "signer_key": str(pki.signer_key)}],
            "log": {"level": "info", "format": "json", "requests": request_log},
        }
        config_file = workdir / f"ours-{port}.yml"
        config_file.write_text(json.dumps(config))  # JSON is YAML
        env = dict(os.environ, PYTHONPATH=str(PACKAGE_DIR))
        self.log = workdir / f"ours-{port}.log"
        started = time.monotonic()
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "ocsp_responder", "--config", str(config_file)],
                                         stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                         preexec_fn=pinned_to(cpus))
        while http(self.url("healthz"), timeout=2)[0] != 200:
            if self.proc.poll() is not None or time.monotonic() - started > ready_timeout:
                self.stop()
                raise RuntimeError(f"our responder did not become ready:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)
        self.ready_seconds = time.monotonic() - started

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def stop(self):
        stop(self.proc)


class FixedBytes:
    def __init__(self, workdir: Path, port: int, workers: int, body: bytes, event_loop: str,
                 headers: dict = None, cpus: list = None, wire: bool = False):
        body_file = workdir / "fixed-body.der"
        body_file.write_bytes(body)
        self.port = port
        extra = [json.dumps(headers) if headers else ""] + (["wire"] if wire else [])
        self.proc = subprocess.Popen([sys.executable, str(HERE / "fixed_bytes_server.py"), str(port), str(workers),
                                      str(body_file), event_loop, *extra], start_new_session=True,
                                     preexec_fn=pinned_to(cpus))
        deadline = time.monotonic() + 20
        while http(self.url(), timeout=1)[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the fixed-bytes server did not start")
            time.sleep(0.05)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def stop(self):
        stop(self.proc)


# --- load ---------------------------------------------------------------------------------

class Load:
    """The request material, identical for every target."""

    def __init__(self, pki, workdir: Path):
        self.pki = pki
        plain, with_nonce = workdir / "req.der", workdir / "req-nonce.der"
        support.openssl("ocsp", "-issuer", pki.ca_cert, "-cert", pki.leaves["good"], "-no_nonce", "-reqout", plain)
        support.openssl("ocsp", "-issuer", pki.ca_cert, "-cert", pki.leaves["good"], "-nonce", "-reqout", with_nonce)
        self.body = plain.read_bytes()
        self.get_path = "/" + urllib.parse.quote(base64.b64encode(self.body).decode(), safe="")
        nonce_der = with_nonce.read_bytes()
        nonce = ocsp.load_der_ocsp_request(nonce_der).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        at = nonce_der.index(nonce)
        self.nonce_prefix, self.nonce_suffix = nonce_der[:at], nonce_der[at + len(nonce):]

    def env(self, mode: str) -> dict:
        if mode == "get":
            return {"OCSP_MODE": "get", "OCSP_PATH": self.get_path}
        if mode == "post":
            return {"OCSP_MODE": "post", "OCSP_PATH": "/", "OCSP_BODY_HEX": self.body.hex()}
        return {"OCSP_MODE": "nonce", "OCSP_PATH": "/", "OCSP_PREFIX_HEX": self.nonce_prefix.hex(),
                "OCSP_SUFFIX_HEX": self.nonce_suffix.hex()}

    def check(self, base_url: str, mode: str, fixed: bool = False) -> None:
        """One request by Python first: a target answering garbage fast would win otherwise."""
        if mode == "get":
            status, body = http(base_url.rstrip("/") + self.get_path)
        elif mode == "post":
            status, body = http(base_url, self.body)
        else:
            body_sent = self.nonce_prefix + os.urandom(16) + self.nonce_suffix
            status, body = http(base_url, body_sent)
        assert status == 200, (base_url, mode, status, body[:200])
        response = ocsp.load_der_ocsp_response(body)
        assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL, (base_url, mode)
        assert response.certificate_status == ocsp.OCSPCertStatus.GOOD, (base_url, mode)
        if mode == "nonce" and not fixed:
            sent = ocsp.load_der_ocsp_request(body_sent).extensions.get_extension_for_class(x509.OCSPNonce)
            got = response.extensions.get_extension_for_class(x509.OCSPNonce)
            assert got.value.nonce == sent.value.nonce, "nonce not echoed"


def wrk_threads(args, cpus: list = None) -> int:
    """``--threads``, or one per core wrk may run on: one thread drives one core at most, and
    while it waits for a core of its own every server process it feeds waits too."""
    return args.threads or len(cpus or os.sched_getaffinity(0))


def wrk(base_url: str, env: dict, args, duration: float = None, cpus: list = None) -> dict:
    cmd = ["wrk", "-t", str(wrk_threads(args, cpus)), "-c", str(args.connections),
           "-d", f"{int(duration or args.duration)}s",
           "--timeout", "10s", "-s", str(HERE / "ocsp.lua"), base_url]
    if args.load_policy == "batch":
        # SCHED_BATCH: wrk keeps its fair share of CPU but a wake-up of wrk no longer
        # preempts a server process mid-request. On cores shared with the server this is
        # the nearest to a load generator on other machines, which is where the load of
        # a real responder comes from (and what `openssl speed` is measured without).
        cmd = ["chrt", "--batch", "0"] + cmd
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, **env),
                          timeout=(duration or args.duration) + 60, check=False, preexec_fn=pinned_to(cpus))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("WRKJSON ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed:\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(lines[0][len("WRKJSON "):])
    data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
    data["errors"] = sum(data[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors",
                                           "timeouts"))
    return data


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def idle_ticks(cpus: list = None) -> Tuple[int, int]:
    """(idle, all) ticks of ``cpus`` (None: every core) since boot, from /proc/stat."""
    wanted = {f"cpu{cpu}" for cpu in cpus} if cpus else {"cpu"}
    idle = total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name in wanted:
            ticks = [int(value) for value in values[:8]]  # user nice system idle iowait irq softirq steal
            idle += ticks[3] + ticks[4]
            total += sum(ticks)
    return idle, total


def group_cpu_seconds(pgid: int) -> Tuple[float, float]:
    """(user, system) CPU seconds of every live process in a process group (a server and
    its workers), from /proc/<pid>/stat."""
    user = system = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ...
            user += int(fields[11])
            system += int(fields[12])
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def measured(proc, base_url: str, mode: str, args, load, load_cpus: list = None, server_cpus: list = None) -> dict:
    """wrk against one server, plus the CPU the server spent: on a shared machine the
    CPU per request is steadier than the throughput. ``idle_share``: how much of the
    server's cores went unused; above a few per cent the load generator, not the server,
    set the throughput."""
    user_before, system_before = group_cpu_seconds(proc.pid)
    idle_before, all_before = idle_ticks(server_cpus)
    run = wrk(base_url, load.env(mode), args, cpus=load_cpus)
    idle_after, all_after = idle_ticks(server_cpus)
    user_after, system_after = group_cpu_seconds(proc.pid)
    run["idle_share"] = (idle_after - idle_before) / max(1, all_after - all_before)
    user, system = user_after - user_before, system_after - system_before
    cpu = user + system
    run["server_cpu_seconds"] = cpu
    run["server_user_seconds"] = user
    for key, seconds in (("cpu", cpu), ("user", user), ("system", system)):
        run[f"{key}_us_per_request"] = seconds / run["requests"] * 1e6 if run["requests"] else float("inf")
    run["per_cpu_second"] = run["requests"] / cpu if cpu else 0.0
    return run


def run_one(server, mode: str, args, load, pki, workdir: Path, name: str, where: Arrangement) -> dict:
    """One wrk run; server None means a fresh `openssl ocsp` for just this run: OpenSSL
    3.0's responder spins forever on a connection closed before it sent a request (as
    wrk leaves them when a run ends), which would poison the next run."""
    if server is not None:
        return measured(server.proc, server.url(), mode, args, load, where.load_cpus, where.server_cpus)
    theirs = support.OpensslResponder(pki, support.free_port(), workdir / f"openssl-{name.replace(' ', '_')}.log",
                                      multi=args.openssl_multi, preexec_fn=pinned_to(where.server_cpus))
    try:
        base = f"http://127.0.0.1:{theirs.port}/"
        load.check(base, mode)
        return measured(theirs.proc, base, mode, args, load, where.load_cpus, where.server_cpus)
    finally:
        theirs.stop()


def middle(values: list):
    """The median sample (the upper one of an even count): a value that was measured."""
    return sorted(values)[len(values) // 2]


def median_run(samples: list) -> dict:
    """The median-throughput run; the CPU per request (user, system and both) is the median over all runs."""
    ordered = sorted(samples, key=lambda run: run["rps"])
    median = dict(ordered[len(ordered) // 2])
    median["all_rps"] = [run["rps"] for run in samples]
    for key in ("cpu_us_per_request", "user_us_per_request", "system_us_per_request", "idle_share"):
        median[key] = middle([run[key] for run in samples])
    median["per_cpu_second"] = 1e6 / median["cpu_us_per_request"]
    return median


# Per signer key type: `openssl speed`'s algorithm and the start of the line it prints.
SPEED_ALGORITHMS = {
    "rsa2048": ("rsa2048", r"rsa\s+2048 bits"),
    "rsa3072": ("rsa3072", r"rsa\s+3072 bits"),
    "ec": ("ecdsap256", r"256 bits ecdsa \(nistp256\)"),
    "ed25519": ("ed25519", r"253 bits EdDSA \(Ed25519\)"),
}


def openssl_speed(key_type: str = "rsa2048", seconds: int = 3, cpus: list = None) -> float:
    """Signatures per second on one core, as the `openssl` CLI (the system's OpenSSL) makes them."""
    algorithm, row = SPEED_ALGORITHMS[key_type]
    proc = subprocess.run(["openssl", "speed", "-seconds", str(seconds), algorithm], capture_output=True,
                          text=True, timeout=120, check=False, preexec_fn=pinned_to(cpus))
    match = re.search(rf"^\s*{row}\s+\S+s\s+\S+s\s+([\d.]+)\s+([\d.]+)", proc.stdout, re.M)
    if not match:
        raise RuntimeError(f"cannot read openssl speed output:\n{proc.stdout}\n{proc.stderr}")
    return float(match.group(1))


# The same signatures through the library ours signs with (cryptography, which bundles an
# OpenSSL of its own), in a tight loop: sign/s per CPU-second. Separates the library's speed
# from the responder's own cost per answer.
LIBRARY_SPEED = """
import sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
with open(sys.argv[1], "rb") as handle:
    key = serialization.load_pem_private_key(handle.read(), None)
data, seconds = bytes(300), float(sys.argv[2])
if isinstance(key, rsa.RSAPrivateKey):
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
    sign = lambda: key.sign(data, pkcs1, sha256)
elif isinstance(key, ec.EllipticCurvePrivateKey):
    ecdsa = ec.ECDSA(hashes.SHA256())
    sign = lambda: key.sign(data, ecdsa)
else:
    sign = lambda: key.sign(data)
count, started = 0, time.process_time()
while time.process_time() - started < seconds:
    for _ in range(50):
        sign()
    count += 50
print(count / (time.process_time() - started))
"""


def library_speed(key_path: Path, seconds: int = 2, cpus: list = None) -> float:
    proc = subprocess.run([sys.executable, "-c", LIBRARY_SPEED, str(key_path), str(seconds)], capture_output=True,
                          text=True, timeout=120, check=True, preexec_fn=pinned_to(cpus))
    return float(proc.stdout)


def calibrate_openssl(args, pki, load, workdir: Path, results: dict) -> None:
    """`openssl ocsp` gets its best setting: it forks -multi processes that each serve one
    connection at a time (and wait on I/O), so more processes than cores and fewer
    concurrent connections help it. A short cached-POST run per candidate; the fastest
    pair is used for every target (ours too)."""
    cores = os.cpu_count()
    multis = [args.openssl_multi] if args.openssl_multi else sorted({cores, 4 * cores, 8 * cores, 16})
    connections = [args.connections] if args.connections else [8, 32]
    grid = [(multi, conns) for multi in multis for conns in connections]
    rates = {pair: [] for pair in grid}
    print("\ncalibrating openssl ocsp (cached POST, 2 s per run, 2 interleaved rounds):")
    for round_number in range(2):
        for multi, conns in grid:
            trial = argparse.Namespace(threads=args.threads, connections=conns, openssl_multi=multi, duration=2,
                                       load_policy=args.load_policy)
            run = run_one(None, "post", trial, load, pki, workdir, f"cal-{multi}-{conns}-{round_number}",
                          Arrangement("calibration", cores))
            rates[(multi, conns)].append(run["rps"])
    trials = []
    for (multi, conns), values in rates.items():
        trials.append({"multi": multi, "connections": conns, "rps": middle(values),
                       "all_rps": values})
        print(f"  -multi {multi:<3} -c{conns:<3} " + " ".join(f"{value:>7.0f}" for value in values) + " req/s")
    best = max(trials, key=lambda trial: min(trial["all_rps"]))
    args.openssl_multi, args.connections = best["multi"], best["connections"]
    results["openssl_calibration"] = trials


# --- the 1,000,000-entry index ----------------------------------------------------------

def write_big_index(path: Path, entries: int) -> dict:
    """An index.txt as `openssl ca` writes it; 1 % revoked. Returns sample serials."""
    path.parent.mkdir(parents=True, exist_ok=True)
    first = 0x10000000
    with open(path, "w") as out:
        for n in range(entries):
            serial = f"{first + n:X}"
            if n % 100 == 7:
                out.write(f"R\t301231235959Z\t260101000000Z,keyCompromise\t{serial}\tunknown\t/CN=host{n}.bench.test\n")
            else:
                out.write(f"V\t301231235959Z\t\t{serial}\tunknown\t/CN=host{n}.bench.test\n")
    return {"good": first + entries - 2, "revoked": first + (entries // 100 - 1) * 100 + 7}


def request_for_serial(pki, serial: int, workdir: Path) -> bytes:
    out = workdir / f"req-{serial:X}.der"
    support.openssl("ocsp", "-issuer", pki.ca_cert, "-serial", f"0x{serial:X}", "-no_nonce", "-reqout", out)
    return out.read_bytes()


def status_of(body: bytes):
    response = ocsp.load_der_ocsp_response(body)
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return response.response_status.name
    return response.certificate_status.name


def big_index(args, pki, workdir: Path, results: dict) -> None:
    entries = args.entries
    index = workdir / "big" / "index.txt"
    started = time.monotonic()
    samples = write_big_index(index, entries)
    print(f"\n{entries:,}-entry index written in {time.monotonic() - started:.1f} s "
          f"({index.stat().st_size / 1e6:.0f} MB)")
    probes = {name: request_for_serial(pki, serial, workdir) for name, serial in samples.items()}
    expected = {"good": "GOOD", "revoked": "REVOKED"}

    small = Ours(workdir, pki, support.free_port(), workers=1, event_loop=args.event_loop)
    rss_small = rss_bytes(small.proc.pid)
    small.stop()

    ours = Ours(workdir, pki, support.free_port(), workers=1, event_loop=args.event_loop, index=index,
                ready_timeout=args.ready_timeout)
    try:
        rss_ready = rss_bytes(ours.proc.pid)
        got = {name: status_of(http(ours.url(), der)[1]) for name, der in probes.items()}
        time.sleep(args.settle)
        rss_later = rss_bytes(ours.proc.pid)
    finally:
        ours.stop()

    port = support.free_port()
    started = time.monotonic()
    theirs = support.OpensslResponder(pki, port, workdir / "openssl-big.log", index=index)
    try:
        first = None
        while time.monotonic() - started < args.ready_timeout:
            status, body = http(f"http://127.0.0.1:{port}/", probes["revoked"], timeout=args.ready_timeout)
            if status == 200:
                first = time.monotonic() - started
                break
            time.sleep(0.1)
        openssl_rss = rss_bytes(theirs.proc.pid)
    finally:
        theirs.stop()

    per_entry = (rss_ready - rss_small) / entries
    per_entry_later = (rss_later - rss_small) / entries
    results["big_index"] = {
        "entries": entries, "ours_ready_seconds": ours.ready_seconds, "ours_rss_small": rss_small,
        "ours_rss_ready": rss_ready, "ours_rss_after_settle": rss_later, "settle_seconds": args.settle,
        "rss_per_entry": per_entry, "rss_per_entry_after_settle": per_entry_later, "answers": got,
        "openssl_first_answer_seconds": first, "openssl_rss": openssl_rss,
    }
    print(f"ours:    /healthz 200 after {ours.ready_seconds:.1f} s; RSS {rss_ready / 2**20:.0f} MiB at ready "
          f"({per_entry:.0f} B/entry over the {rss_small / 2**20:.0f} MiB of a 3-entry index), "
          f"{rss_later / 2**20:.0f} MiB {args.settle:.0f} s later ({per_entry_later:.0f} B/entry, pre-signing); "
          f"answers {got}")
    print(f"openssl: first answer after {first if first is None else round(first, 1)} s; RSS {openssl_rss / 2**20:.0f} MiB")
    if got != expected:
        print(f"WARNING: with the big index ours answered {got}, expected {expected}")


# --- main ---------------------------------------------------------------------------------

def fmt_row(name, run):
    return (f"{name:<34}{run['rps']:>10.0f}{run['p50_us'] / 1000:>9.2f}/{run['p99_us'] / 1000:<8.2f}"
            f"{run['cpu_us_per_request']:>12.0f}{run['idle_share']:>7.0%}"
            + (f" errors={run['errors']}" if run["errors"] else ""))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def machine() -> dict:
    cpu = re.search(r"^model name\s*:\s*(.*)$", Path("/proc/cpuinfo").read_text(), re.M)
    import aiohttp
    import cryptography
    return {
        "cpu": cpu.group(1) if cpu else platform.processor(), "cores": os.cpu_count(),
        "kernel": platform.release(), "python": platform.python_version(), "aiohttp": aiohttp.__version__,
        "cryptography": cryptography.__version__,
        "openssl": subprocess.run(["openssl", "version"], capture_output=True, text=True, check=False).stdout.strip(),
        "wrk": subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout.splitlines()[0],
    }


def measure(where: Arrangement, args, pki, load, workdir: Path) -> Tuple[dict, float, list]:
    """Every scenario in one arrangement: interleaved rounds, median per scenario; with
    the `openssl speed` median and samples of the same rounds."""
    modes = [("cached GET", "get"), ("cached POST", "post"), ("nonce POST", "nonce")]
    shared = where.server_cpus is None  # the request-log scenario once
    servers = []

    def started(server):
        servers.append(server)
        return server

    try:
        ours = started(Ours(workdir, pki, support.free_port(), workers=where.workers, event_loop=args.event_loop,
                            cpus=where.server_cpus))
        # The ceiling serves exactly the body ours returns for the cached GET: with only a
        # Content-Type ("fixed"), and with the very headers ours sends ("same bytes": RFC
        # 9919's Last-Modified, Expires, ETag, Cache-Control on GET).
        body = http(ours.url().rstrip("/") + load.get_path)[1]
        fixed = started(FixedBytes(workdir, support.free_port(), where.workers, body, args.event_loop,
                                   cpus=where.server_cpus))
        targets = []  # (key, server or None for openssl, mode)
        for label, mode in modes:
            targets.append((f"openssl {label}", None, mode))
            targets.append((f"ours {label}", ours, mode))
            if mode != "nonce":
                targets.append((f"fixed {label}", fixed, mode))
        ours_headers = {"GET": served_headers(ours.url().rstrip("/") + load.get_path),
                        "POST": served_headers(ours.url(), load.body)}
        same = started(FixedBytes(workdir, support.free_port(), where.workers, body, args.event_loop,
                                  ours_headers, cpus=where.server_cpus))
        targets.append(("same bytes cached GET", same, "get"))
        # The same bytes written as ours writes a pre-signed answer (WireResponse): the
        # ceiling of that way of answering, for information.
        wired = started(FixedBytes(workdir, support.free_port(), where.workers, body, args.event_loop,
                                   ours_headers, cpus=where.server_cpus, wire=True))
        targets.append(("same bytes pre-serialised GET", wired, "get"))
        if shared:
            logged = started(Ours(workdir, pki, support.free_port(), workers=where.workers,
                                  event_loop=args.event_loop, request_log=True))
            targets.append(("ours cached GET, request log on", logged, "get"))
        for _key, server, mode in targets:
            if server is not None:
                load.check(server.url(), mode, fixed=isinstance(server, FixedBytes))
                # warm-up: pre-signed, caches hot
                wrk(server.url(), load.env(mode), args, duration=1, cpus=where.load_cpus)
        samples = {target[0]: [] for target in targets}
        speed_samples = []
        # Interleaved rounds: load from other work on the machine drifts; every target
        # sees the same drift, and the median drops the outliers.
        for round_number in range(args.rounds):
            for key, server, mode in targets:
                samples[key].append(run_one(server, mode, args, load, pki, workdir,
                                            f"{where.name}-{key}-{round_number}", where))
            # The live-signing baseline in every round too, on a core the servers run on:
            # the machine's speed drifts by several per cent between minutes.
            speed_samples.append(openssl_speed("rsa2048", 2, where.server_cpus and where.server_cpus[:1]))
    finally:
        for server in servers:
            server.stop()

    print(f"{'target / scenario':<34}{'req/s':>10}{'p50/p99 ms':>18}{'CPU us/req':>12}{'idle':>7}   rounds req/s")
    runs = {}
    for key in samples:
        runs[key] = median_run(samples[key])
        print(fmt_row(key, runs[key]) + "   " + " ".join(f"{run['rps']:.0f}" for run in samples[key]))
    speed = middle(speed_samples)
    print(f"openssl speed rsa2048 (median of the rounds, one core{' the servers run on' if where.server_cpus else ''}):"
          f" {speed:.0f} sign/s   rounds " + " ".join(f"{sample:.0f}" for sample in speed_samples))
    return runs, speed, speed_samples


def target_checks(where: Arrangement, runs: dict, sign_per_second: float, judge_throughput: bool = True) -> list:
    """(text, target, pass or None for information) per target of issue 3, in one arrangement.
    ``judge_throughput`` False: the throughputs are printed for information only (the shared
    arrangement when a split one is measured: wrk's CPU on the servers' cores is counted
    against the servers, and `openssl speed` pays none; docs/benchmarks.md)."""
    checks = []

    def compare(text, ours_run, other_rps, other_per_cpu, target, unit="x"):
        throughput = ours_run["rps"] / other_rps
        per_cpu = ours_run["per_cpu_second"] / other_per_cpu
        shown = (lambda r: f"{r:.1f}x") if unit == "x" else (lambda r: f"{r:.1%}")
        goal = f">= {target:.0f}x" if unit == "x" else f">= {target:.0%}"
        short = (f" (the servers' cores were {ours_run['idle_share']:.0%} idle: the load generator, not the "
                 "server, set this throughput)") if ours_run["idle_share"] > IDLE_SHARE_NOTED else ""
        if judge_throughput:
            checks.append((f"[{where.name}] {text}: throughput {shown(throughput)}{short}", goal,
                           throughput >= target))
        else:
            checks.append((f"[{where.name}] {text}: throughput {shown(throughput)} (wrk shares the servers' "
                           "cores: judged in the split arrangement)", f"{goal}, for information", None))
        checks.append((f"[{where.name}] {text}: per CPU-second {shown(per_cpu)}", goal, per_cpu >= target))

    for label in ("cached GET", "cached POST"):
        theirs, fixed_run = runs[f"openssl {label}"], runs[f"fixed {label}"]
        compare(f"{label}, ours / openssl ocsp", runs[f"ours {label}"], theirs["rps"], theirs["per_cpu_second"],
                TARGET_CACHED_VS_OPENSSL)
        compare(f"{label}, ours / aiohttp fixed bytes", runs[f"ours {label}"], fixed_run["rps"],
                fixed_run["per_cpu_second"], TARGET_CACHED_VS_FIXED, unit="%")
        if label == "cached GET":
            same_run = runs["same bytes cached GET"]
            compare(f"{label}, ours / aiohttp fixed bytes with our headers", runs[f"ours {label}"], same_run["rps"],
                    same_run["per_cpu_second"], TARGET_CACHED_VS_FIXED, unit="%")
            wired_run, ours_run = runs["same bytes pre-serialised GET"], runs[f"ours {label}"]
            checks.append((f"[{where.name}] {label}, ours / the same bytes pre-serialised as ours writes them: "
                           f"throughput {ours_run['rps'] / wired_run['rps']:.0%}, per CPU-second "
                           f"{ours_run['per_cpu_second'] / wired_run['per_cpu_second']:.0%}",
                           "none, for information", None))
    live = runs["ours nonce POST"]
    compare(f"nonce POST, ours / (openssl speed {sign_per_second:.0f} sign/s x {where.workers} workers)",
            live, sign_per_second * where.workers, sign_per_second, TARGET_LIVE_VS_SPEED, unit="%")
    checks.append((f"[{where.name}] nonce POST, ours per user-CPU-second / openssl speed: "
                   f"{1e6 / live['user_us_per_request'] / sign_per_second:.0%} (openssl speed divides by user CPU "
                   f"time; ours also spent {live['system_us_per_request']:.0f} us of system time per request)",
                   "none, for information", None))
    theirs = runs["openssl nonce POST"]
    checks.append((f"[{where.name}] nonce POST, ours / openssl ocsp: throughput {live['rps'] / theirs['rps']:.1f}x, "
                   f"per CPU-second {live['per_cpu_second'] / theirs['per_cpu_second']:.1f}x",
                   "none, for information", None))
    return checks


def live_by_key_type(args, workdir: Path, where: Arrangement) -> Tuple[dict, list]:
    """Live signing (nonce POST) with a delegated signer of each of ``args.live_key_types``,
    for information: the cost of an answer beyond its signature is nearly the same for every
    key type, so the ratio to `openssl speed` falls with the signature's cost. Two baselines
    per key type: `openssl speed` (the system's OpenSSL, as the target is written) and the
    same signature through cryptography (whose bundled OpenSSL ours signs with) in a loop."""
    results, checks = {}, []
    speed_cpus = where.server_cpus and where.server_cpus[:1]
    for key_type in args.live_key_types:
        base = workdir / f"live-{key_type}"
        base.mkdir()
        pki = support.build_openssl_pki(base / "pki", "http://127.0.0.1/", ca_key_type="rsa2048",
                                        signer_key_type=key_type)
        load = Load(pki, base)
        ours = Ours(base, pki, support.free_port(), workers=where.workers, event_loop=args.event_loop,
                    cpus=where.server_cpus)
        samples, speeds, library = [], [], []
        try:
            load.check(ours.url(), "nonce")
            wrk(ours.url(), load.env("nonce"), args, duration=1, cpus=where.load_cpus)
            for _round in range(args.rounds):
                samples.append(measured(ours.proc, ours.url(), "nonce", args, load, where.load_cpus,
                                        where.server_cpus))
                speeds.append(openssl_speed(key_type, 2, speed_cpus))
                library.append(library_speed(pki.signer_key, 2, speed_cpus))
        finally:
            ours.stop()
        run = median_run(samples)
        speed, in_library = middle(speeds), middle(library)
        run.update(openssl_speed_sign_per_s=speed, library_sign_per_s=in_library)
        results[key_type] = run
        print(fmt_row(f"ours nonce POST, {key_type} signer", run) + f"   openssl speed {speed:.0f}/s, "
              f"cryptography {in_library:.0f}/s per CPU-second")
        checks.append((f"[{where.name}] live signing, {key_type} signer: ours / (openssl speed x {where.workers} "
                       f"workers) throughput {run['rps'] / (speed * where.workers):.0%}, per CPU-second "
                       f"{run['per_cpu_second'] / speed:.0%}, per user-CPU-second "
                       f"{1e6 / run['user_us_per_request'] / speed:.0%}; ours / cryptography signing in a loop, "
                       f"per CPU-second {run['per_cpu_second'] / in_library:.0%}", "none, for information", None))
    return results, checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds, median reported (default 3)")
    parser.add_argument("--threads", type=int, help="wrk threads (default: one per core wrk runs on)")
    parser.add_argument("--connections", type=int, help="wrk connections (default: openssl's best, calibrated)")
    parser.add_argument("--openssl-multi", type=int, help="openssl ocsp -multi (default: its best, calibrated)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(),
                        help="processes of every server on shared cores (default: cores)")
    parser.add_argument("--entries", type=int, default=1_000_000, help="size of the big index (default 1,000,000)")
    parser.add_argument("--ready-timeout", type=float, default=180, help="give up on readiness after (s)")
    parser.add_argument("--settle", type=float, default=10, help="seconds after ready to read RSS again")
    parser.add_argument("--skip-big", action="store_true", help="skip the big-index measurement")
    parser.add_argument("--event-loop", choices=("uvloop", "asyncio"), default="uvloop",
                        help="event loop of ours and of the fixed-bytes server (default uvloop, the responder's "
                             "default)")
    parser.add_argument("--load-policy", choices=("batch", "normal"), default="batch",
                        help="scheduling policy of wrk: batch (default) does not preempt the servers on wake-up")
    parser.add_argument("--split-load-cores", type=int, default=1,
                        help="every scenario is measured again with wrk on this many cores of its own and the "
                             "servers, one worker per core, on the others (default 1; 0: not measured)")
    parser.add_argument("--live-key-types", default="rsa2048,rsa3072,ec,ed25519",
                        type=lambda text: [item for item in text.split(",") if item],
                        help="live signing once more with a signer of each of these key types, for information "
                             f"({', '.join(SPEED_ALGORITHMS)}; default all; empty: skipped)")
    args = parser.parse_args()
    unknown = set(args.live_key_types) - set(SPEED_ALGORITHMS)
    if unknown:
        parser.error(f"--live-key-types: unknown {', '.join(sorted(unknown))}")

    results = {"machine": machine(), "args": vars(args), "runs": {}, "loadavg_before": os.getloadavg()}
    print("machine:", json.dumps(results["machine"]))
    if results["loadavg_before"][0] > 0.5 * os.cpu_count():
        print(f"WARNING: load average {results['loadavg_before'][0]:.1f} on {os.cpu_count()} cores before the run: "
              "other work competes for the CPU; absolute numbers will be low and noisy, ratios less so")
    workdir = Path(tempfile.mkdtemp(prefix="pkiops-bench-"))
    pki = support.build_openssl_pki(workdir / "pki", "http://127.0.0.1/", ca_key_type="rsa2048",
                                    signer_key_type="rsa2048")
    load = Load(pki, workdir)
    if args.openssl_multi is None or args.connections is None:
        calibrate_openssl(args, pki, load, workdir, results)
    arrangements = [Arrangement("shared", args.workers)]
    cores = sorted(os.sched_getaffinity(0))
    if 0 < args.split_load_cores < len(cores):
        load_cpus, server_cpus = cores[:args.split_load_cores], cores[args.split_load_cores:]
        arrangements.append(Arrangement("split", len(server_cpus), server_cpus, load_cpus))
    print(f"\nwrk -t{args.threads or 'cores'} -c{args.connections} -d{args.duration}s x {args.rounds} interleaved rounds "
          f"(median); openssl ocsp -multi {args.openssl_multi}; ours and the fixed-bytes server on {args.event_loop}; "
          f"RSA-2048 signer; wrk scheduled as {args.load_policy.upper()}")
    speeds = {}
    for where in arrangements:
        print(where.describe())
        results["runs"][where.name], speeds[where.name], samples = measure(where, args, pki, load, workdir)
        speed_record = {"median": speeds[where.name], "rounds": samples}
        results.setdefault("openssl_speed_rsa2048_sign_per_s", {})[where.name] = speed_record

    key_type_checks = []
    if args.live_key_types:
        where = arrangements[-1]  # split if measured: the worker's core is then its own
        print(f"\nlive signing by signer key type, {where.describe()}")
        results["live_by_key_type"], key_type_checks = live_by_key_type(args, workdir, where)

    if not args.skip_big:
        big_index(args, pki, workdir, results)

    print("\ntargets (issue 3):")
    print("  (throughput: req/s measured; CPU: requests per CPU-second of the server processes,")
    print("   user + system, steadier when other work shares the machine; openssl speed divides by user CPU time)")
    checks = []
    for where in arrangements:
        # Throughput is judged where the load generator has cores of its own, if it has any.
        judge_throughput = where.server_cpus is not None or len(arrangements) == 1
        checks += target_checks(where, results["runs"][where.name], speeds[where.name], judge_throughput)
    checks += key_type_checks
    big = results.get("big_index")
    if big:
        checks.append((f"{big['entries']:,} entries: ready in {big['ours_ready_seconds']:.1f} s",
                       f"<= {TARGET_READY_SECONDS:.0f} s", big["ours_ready_seconds"] <= TARGET_READY_SECONDS))
        checks.append((f"{big['entries']:,} entries: {big['rss_per_entry']:.0f} B RSS per entry at ready",
                       f"<= {TARGET_RSS_PER_ENTRY} B", big["rss_per_entry"] <= TARGET_RSS_PER_ENTRY))
        checks.append((f"{big['entries']:,} entries: {big['rss_per_entry_after_settle']:.0f} B per entry "
                       f"{big['settle_seconds']:.0f} s later", f"<= {TARGET_RSS_PER_ENTRY} B",
                       big["rss_per_entry_after_settle"] <= TARGET_RSS_PER_ENTRY))
    results["targets"] = []
    for text, target, ok in checks:
        print(f"  {'INFO' if ok is None else verdict(ok)}  {text}  (target {target})")
        results["targets"].append({"what": text, "target": target, "pass": ok})

    results["loadavg_after"] = os.getloadavg()
    print(f"load average before/after: {results['loadavg_before'][0]:.1f} / {results['loadavg_after'][0]:.1f}")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / time.strftime("bench-%Y%m%dT%H%M%SZ.json", time.gmtime())
    out.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
