"""``python -m ocsp_responder --config FILE [--check-config]`` or ``--reload MAINPID``

Signals: SIGHUP reloads every signer (certificate, key, CA certificate) and index now (one
that arrives while a worker starts, once it is ready); SIGTERM/SIGINT stop accepting, finish the
requests in flight (up to ``SHUTDOWN_GRACE`` seconds) and exit 0. With ``workers > 1`` a
master process checks that no one listens on its addresses, forks the workers (each binds
the listen addresses with SO_REUSEPORT so the kernel spreads connections), forwards
signals and restarts a worker that dies."""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
from typing import List, Optional

from . import __version__
from .config import Config, ConfigError, ListenAddress, load_config
from .logs import drain_logs, setup_logging, start_log_writer
from .reload_control import (RELOAD_TIMEOUT_SECONDS, ReloadRecord, records_directory, reload_and_wait,
                             remove_record)

SHUTDOWN_GRACE = 10.0
LISTEN_BACKLOG = 1024
# A worker that dies younger than this never served: its start failed.
WORKER_START_SECONDS = 5.0
# A replacement worker that cannot start is tried again after this, doubling up to the maximum.
RETRY_FIRST_SECONDS = 5.0
RETRY_MAX_SECONDS = 60.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
log = logging.getLogger("ocsp_responder")


class ListenError(Exception):
    """An address cannot be bound; the message names its configuration key."""


def bind(key: str, address: ListenAddress, reuse_port: bool, listen: bool = True,
         send_timeout: Optional[float] = None) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if send_timeout is not None and hasattr(socket, "TCP_USER_TIMEOUT"):
            # Inherited by accepted connections: the kernel drops one whose data (an
            # answer to a client that stopped reading, or one that vanished) makes no
            # progress for this long. aiohttp has no send timeout, and such a connection
            # would hold its memory and file descriptor forever.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(send_timeout * 1000))
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address.host, address.port))
        if listen:
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ListenError(f"{key} {address}: {(exc.strerror or str(exc)).lower()}") from None
    return sock


def addresses_in_use(config: Config) -> Optional[str]:
    """With SO_REUSEPORT the kernel lets a second instance of the same user bind the same
    port and splits the clients between both. A bind without it fails while any socket
    listens there, so the master tries that first (and lets go: the workers bind)."""
    for key, address in config.bind_addresses():
        try:
            bind(key, address, reuse_port=False, listen=False).close()
        except ListenError as exc:
            return str(exc)
    return None


def notify_systemd(state: str) -> None:
    """sd_notify(3) for ``Type=notify``: one datagram to $NOTIFY_SOCKET, so that
    ``systemctl start`` returns once the indexes are loaded and the addresses listen, and
    a reload asked meanwhile waits for that. Nothing when not started by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode(), address)
    except OSError as exc:
        log.warning("cannot notify systemd (%s): %s", state, exc)


class DeferredHup:
    """SIGHUP must never be fatal (its default action): systemd's ExecReload sends it
    whenever asked, also while the service starts. Until a worker's event loop handles it,
    a SIGHUP is remembered here and acted on as a reload once the worker is ready."""
    pending = False

    @classmethod
    def remember(cls, _signum, _frame) -> None:
        cls.pending = True

    @classmethod
    def install(cls) -> None:
        cls.pending = False
        signal.signal(signal.SIGHUP, cls.remember)


def bound_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return str(ListenAddress(host, port))


async def serve(config: Config, responder, reuse_port: bool) -> None:
    from .http import HttpFrontend, MetricsOnlyFrontend

    loop = asyncio.get_running_loop()
    frontend = HttpFrontend(config, responder, responder.metrics)
    server = frontend.make_server()
    listeners = []
    metrics_server = None
    for key, address in config.bind_addresses():
        sock = bind(key, address, reuse_port, send_timeout=config.limits.send_timeout)
        if key == "metrics.listen":
            metrics_server = frontend.make_server(MetricsOnlyFrontend(frontend).handle)
            listeners.append(await loop.create_server(metrics_server, sock=sock, backlog=LISTEN_BACKLOG))
            log.info("metrics listening", extra={"fields": {"address": bound_address(sock)}})
        else:
            # create_server listens again, with a backlog of 100 unless told.
            listeners.append(await loop.create_server(server, sock=sock, backlog=LISTEN_BACKLOG))
            log.info("listening", extra={"fields": {"address": bound_address(sock)}})

    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    record = ReloadRecord.for_this_process()
    reload_lock = asyncio.Lock()

    async def reload_after_hup():
        async with reload_lock:  # one reload at a time; SIGHUPs that came meanwhile share the next
            covered = record.hups
            if record.reloaded >= covered:
                return
            try:
                await responder.reload(force=True, signers=True)
                problems = responder.reload_problems()
            except Exception as exc:  # pylint: disable=broad-except  # the worker must go on serving
                log.exception("reload failed")
                problems = [f"reload failed: {type(exc).__name__}: {exc}"]
            record.reloaded, record.problems = covered, problems
            record.save()

    def on_hup():
        log.info("SIGHUP: reloading signers and indexes")
        record.hups += 1
        record.save()
        asyncio.ensure_future(reload_after_hup())

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    background = asyncio.ensure_future(responder.run_background())
    publisher = asyncio.ensure_future(responder.metrics.run_publisher()) if responder.metrics is not None else None
    log.info("ready", extra={"fields": {"version": __version__, "issuers": [i.name for i in responder.issuers],
                                        "event_loop": type(loop).__module__.split(".")[0]}})
    notify_systemd("READY=1")  # with workers, the first one ready (NotifyAccess=all)
    if DeferredHup.pending:  # no longer set once on_hup is the handler
        DeferredHup.pending = False
        on_hup()
    await stop.wait()

    if not reuse_port:  # with workers the master says it: one worker stopping is not the service
        notify_systemd("STOPPING=1")
    log.info("shutting down: no new connections, finishing requests in flight")
    for listener in listeners:
        listener.close()
    if not await frontend.drain(SHUTDOWN_GRACE):
        log.warning("shutdown grace period over, closing requests still in flight")
    await server.shutdown(1.0)
    if metrics_server is not None:
        await metrics_server.shutdown(1.0)
    for task in (background, publisher):
        if task is None:
            continue
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
    if responder.metrics is not None:
        try:
            responder.metrics.publish()  # the counts of the last second stay in the sums
        except OSError:
            pass
    responder.close()
    record.remove()
    frontend.request_log.flush()
    log.info("stopped")


def run_event_loop(config: Config, main_coroutine) -> None:
    if config.event_loop == "uvloop":
        # libuv's loop and transports in C: about a quarter less CPU per request than
        # asyncio's pure-Python selector loop (docs/benchmarks.md).
        import uvloop
        uvloop.run(main_coroutine)
    else:
        asyncio.run(main_coroutine)


def run_worker(config: Config, reuse_port: bool, metrics_dir: Optional[str] = None) -> int:
    from .metrics import Metrics
    from .responses import Responder, StartupError

    start_log_writer()
    try:
        responder = Responder(config, Metrics(metrics_dir))
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    started = time.monotonic()
    responder.load_indexes()
    log.info("indexes loaded", extra={"fields": {
        "seconds": round(time.monotonic() - started, 3),
        "entries": {i.name: len(i.source.table) for i in responder.issuers}}})
    try:
        run_event_loop(config, serve(config, responder, reuse_port))
    except ListenError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot serve: %s", exc)
        return 1
    finally:
        DeferredHup.install()  # closing the event loop set SIGHUP back to its fatal default
    return 0


def end_with_master(master_pid: int) -> None:
    """In a worker: SIGTERM (the graceful stop) when the master dies, SIGKILL included.
    Under the role's unit systemd stops the whole cgroup anyway; started any other way, a
    worker left behind would go on serving old files on the port, beside a new instance."""
    try:
        refused = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        return
    if refused:
        log.warning("this worker will not stop with the master (prctl: %s)", os.strerror(ctypes.get_errno()))
    if os.getppid() != master_pid:  # the master died before prctl took effect
        os._exit(0)


def run_master(config: Config) -> int:
    """Fork ``workers`` processes and supervise them."""
    # Where the workers publish their counters for each other (metrics.py).
    metrics_dir = tempfile.mkdtemp(prefix="ocsp-responder-metrics-")
    master_pid = os.getpid()
    children = {}  # pid -> (start time, None or, for a replacement, the wait before trying it again)
    stopping = False
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def spawn(retry_delay: Optional[float] = None) -> None:
        # Signals wait until the new worker is in `children` (so `forward` reaches it) and
        # has its own handlers instead of the master's `forward`.
        signal.pthread_sigmask(signal.SIG_BLOCK, forwarded)  # returns after the handlers of earlier ones ran
        try:
            if stopping:  # SIGTERM came during the pause before a restart, or while starting
                return
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    end_with_master(master_pid)
                    DeferredHup.install()
                    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                        signal.signal(sig, signal.SIG_DFL)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)
                    code = run_worker(config, reuse_port=True, metrics_dir=metrics_dir)
                finally:
                    drain_logs()
                    os._exit(code)
            children[pid] = (time.monotonic(), retry_delay)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, forwarded)

    def forward(signum, _frame):
        nonlocal stopping
        if signum in (signal.SIGTERM, signal.SIGINT):
            if not stopping:
                notify_systemd("STOPPING=1")
            stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def reap(deadline: Optional[float]):
        """(pid, status) of the next worker to end, or (None, None) at ``deadline`` or on SIGTERM."""
        if deadline is None:
            return os.wait()
        while True:
            pid, status = os.waitpid(-1, os.WNOHANG) if children else (0, 0)
            if pid:
                return pid, status
            left = deadline - time.monotonic()
            if left <= 0 or stopping:
                return None, None
            time.sleep(min(left, 0.2))

    for sig in forwarded:
        signal.signal(sig, forward)
    for _worker in range(config.workers):
        spawn()
    log.info("master started", extra={"fields": {"workers": list(children)}})
    exit_code = 0
    retries = []  # (when, the wait after that) to try again to start a replacement that could not start
    try:
        while children or (retries and not stopping):
            try:
                pid, status = reap(min(retries)[0] if retries else None)
            except ChildProcessError:
                break
            if pid is None:
                due = min(retries)
                retries.remove(due)
                spawn(due[1])
                continue
            started, retry_delay = children.pop(pid, (None, None))
            if started is None:
                continue
            remove_record(records_directory(), pid)  # a worker killed did not remove its own
            code = os.waitstatus_to_exitcode(status)
            if stopping:
                continue
            log.error("worker exited", extra={"fields": {"pid": pid, "code": code}})
            now = time.monotonic()
            serving = sum(1 for begun, _delay in children.values() if now - begun >= WORKER_START_SECONDS)
            if now - started >= WORKER_START_SECONDS:  # it had started: a crash, not a failed start
                time.sleep(1)
                spawn(RETRY_FIRST_SECONDS)
            elif retry_delay is not None and serving:
                # The files a worker loads at start may have changed since the service
                # started (signer files a SIGHUP refused): the other workers still serve
                # with what they loaded, so the service goes on and tries again later.
                log.error("a replacement worker could not start; the other workers go on serving; trying "
                          "again later", extra={"fields": {"serving": serving, "workers": config.workers,
                                                           "retry_seconds": retry_delay}})
                retries.append((now + retry_delay, min(RETRY_MAX_SECONDS, retry_delay * 2)))
            else:
                # Dying right after start is a configuration problem, not a crash to retry;
                # with no worker serving there is nothing to keep up.
                exit_code = 1
                forward(signal.SIGTERM, None)
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return exit_code


def raise_open_files_limit() -> None:
    """Every client connection is a file descriptor. The usual soft limit of 1024 would
    refuse clients beyond it (a few hundred idle connections locked every client out in a
    review); the hard limit is what the service manager allows (the role's unit: 65536)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass  # above the kernel's nr_open: keep what we have
    log.debug("open files limit", extra={"fields": {"limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}})


def event_loop_problem(config: Config) -> Optional[str]:
    if config.event_loop == "uvloop":
        try:
            import uvloop  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
        except ImportError:
            return ("event_loop: uvloop is not installed in this Python environment "
                    "(install it, see requirements.txt, or set event_loop: asyncio)")
    return None


def check_config(config: Config) -> List[str]:
    """Beyond the schema: the event loop is there; load certificates and keys, check the signers."""
    from .responses import Responder, StartupError

    problem = event_loop_problem(config)
    if problem:
        return [problem]
    try:
        responder = Responder(config)
    except StartupError as exc:
        return [str(exc)]
    responder.close()
    return []


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="ocsp_responder", description="OCSP responder for OpenSSL CA indexes")
    parser.add_argument("--config", help="YAML configuration file (required unless --reload)")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the configuration (keys, certificates, signers) and exit")
    parser.add_argument("--reload", type=int, metavar="MAINPID",
                        help="send SIGHUP to the responder MAINPID and wait until every worker has "
                             "reloaded; exit 1 naming what was not put in service (systemd ExecReload=)")
    parser.add_argument("--reload-timeout", type=float, default=RELOAD_TIMEOUT_SECONDS, metavar="SECONDS",
                        help="how long --reload waits (default %(default)s)")
    parser.add_argument("--version", action="version", version=__version__)
    args = parser.parse_args(argv)
    if args.reload is not None:
        return reload_and_wait(args.reload, args.reload_timeout)
    if args.config is None:
        parser.error("the following arguments are required: --config")
    if not args.check_config:
        DeferredHup.install()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"ocsp_responder: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.check_config:
        problems = check_config(config)
        for problem in problems:
            print(f"ocsp_responder: configuration error: {problem}", file=sys.stderr)
        if not problems:
            print(f"ocsp_responder: configuration OK ({len(config.issuers)} issuer(s))")
        return 2 if problems else 0
    setup_logging(config.log.level, config.log.format)
    raise_open_files_limit()
    # Checked before forking or binding: one clear message, not a worker dying at start.
    # A single worker checks its signers itself (run_worker).
    if config.workers > 1:
        problems = check_config(config) or list(filter(None, [addresses_in_use(config)]))
    else:
        problems = list(filter(None, [event_loop_problem(config)]))
    if problems:
        log.error("cannot start: %s", problems[0])
        drain_logs()
        return 1
    try:
        return run_master(config) if config.workers > 1 else run_worker(config, reuse_port=False)
    finally:
        drain_logs()


if __name__ == "__main__":
    sys.exit(main())
