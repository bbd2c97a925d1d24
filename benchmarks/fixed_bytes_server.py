"""The ceiling for the responder: the same HTTP library (aiohttp's low-level server, as
ocsp_responder.http uses it) answering every request with constant bytes, in the same
number of SO_REUSEPORT worker processes, on the same event loop (uvloop by default, as
the responder's ``event_loop``). HEADERS_JSON, optional: {"GET": {...}, "POST": {...}},
the headers sent with the body (default: only Content-Type).

    python benchmarks/fixed_bytes_server.py PORT WORKERS BODY_FILE [uvloop|asyncio [HEADERS_JSON]]
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys

from aiohttp import web


def serve(port: int, body: bytes, event_loop: str, headers: dict) -> None:
    get_headers, post_headers = headers["GET"], headers["POST"]

    async def handle(request: web.BaseRequest) -> web.Response:
        if request.method == "POST":
            await request.read()
            return web.Response(body=body, headers=post_headers)
        return web.Response(body=body, headers=get_headers)

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
    headers = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {"GET": plain, "POST": plain}
    children = []
    for _worker in range(workers):
        pid = os.fork()
        if pid == 0:
            serve(port, body, event_loop, headers)
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
