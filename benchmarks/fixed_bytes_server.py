"""The ceiling for the responder: the same HTTP library (aiohttp's low-level server, as
ocsp_responder.http uses it) answering every request with constant bytes, in the same
number of SO_REUSEPORT worker processes, on the same event loop (uvloop by default, as
the responder's ``event_loop``). HEADERS_JSON, optional: {"GET": {...}, "POST": {...}},
the headers sent with the body (default: only Content-Type). With WIRE "wire", every
answer is written as the responder writes a pre-signed one to an HTTP/1.1 keep-alive
request (its WireResponse: bytes serialised once per second), the ceiling of that way.

    python benchmarks/fixed_bytes_server.py PORT WORKERS BODY_FILE [uvloop|asyncio [HEADERS_JSON [WIRE]]]
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

from aiohttp import web


def serve(port: int, body: bytes, event_loop: str, headers: dict, wire: bool) -> None:
    get_headers, post_headers = headers["GET"], headers["POST"]

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "POST":
            await request.read()
            return web.Response(body=body, headers=post_headers)
        return web.Response(body=body, headers=get_headers)

    if wire:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "roles" / "ocsp_responder" / "files"))
        from ocsp_responder.http import WireResponse, http_date, wire_200
        memo = {}

        async def handle(request: web.BaseRequest) -> web.StreamResponse:  # noqa: F811 (the wire form)
            if request.method == "POST":
                await request.read()
            second = int(time.time())
            key = (request.method, second)
            if key not in memo:
                memo.clear()
                memo[key] = wire_200(post_headers if request.method == "POST" else get_headers, body,
                                     http_date(second))
            return WireResponse(memo[key])

    async def main():
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(1024)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.create_server(web.Server(handle, access_log=None), sock=sock)
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()

    if event_loop == "uvloop":
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())


def run() -> None:
    port, workers, body = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], "rb").read()
    event_loop = sys.argv[4] if len(sys.argv) > 4 else "uvloop"
    plain = {"Content-Type": "application/ocsp-response"}
    headers = json.loads(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] else {"GET": plain, "POST": plain}
    wire = len(sys.argv) > 6 and sys.argv[6] == "wire"
    children = []
    for _worker in range(workers):
        pid = os.fork()
        if pid == 0:
            serve(port, body, event_loop, headers, wire)
            os._exit(0)
        children.append(pid)

    def stop(_signum, _frame):
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:  # already gone (the process group got the signal too)
                pass

    signal.signal(signal.SIGTERM, stop)
    for child in children:
        os.waitpid(child, 0)


if __name__ == "__main__":
    run()
