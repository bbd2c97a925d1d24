"""HTTP front end (aiohttp low-level server): GET and POST per RFC 6960 Appendix A and
RFC 9919 §5, health and metrics endpoints, limits, one log line per request.

aiohttp's low-level ``web.Server`` is used without the Application/router layer: there
are three fixed endpoints and the router would only add per-request cost."""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from email.utils import formatdate
from typing import NamedTuple, Optional
from urllib.parse import unquote

from aiohttp import web, web_protocol
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.http_exceptions import LineTooLong

from . import protocol
from .cache import SignedResponse
from .config import Config
from .logs import RequestLog
from .responses import REMEMBERED_REQUEST_MAX_BYTES, Answer, Responder


OCSP_RESPONSE = "application/ocsp-response"
OCSP_REQUEST = "application/ocsp-request"
ALLOWED = "GET, HEAD, POST"
_POST_HEADERS = {"Content-Type": OCSP_RESPONSE}
_NO_STORE_HEADERS = {"Content-Type": OCSP_RESPONSE, "Cache-Control": "no-store"}
# Decoded GET paths remembered (raw path -> DER): a client repeats its URL verbatim.
GET_PATHS_REMEMBERED = 65536
# Per request head: with up to 32 requests pipelined on a connection, 2 MB at most.
MAX_HEADER_FIELD_BYTES = 2048
MAX_HEADERS = 32
GET_PATH_REMEMBERED_MAX = 1024  # characters: base64 of REMEMBERED_REQUEST_MAX_BYTES, some percent-encoded


def _client_closed():
    """The client went away mid-request: routine on the Internet, not our failure (no
    traceback, not internalError). The reply is never delivered."""
    response = _plain(400, "connection closed by client")
    response.force_close()
    return response, "client_closed"


def origin_form(raw_path: str) -> str:
    """The path of an absolute-form request target, ``http://host:port/path``, which a
    server must accept (RFC 9112 §3.2.2; proxies send it)."""
    if raw_path.startswith("/"):
        return raw_path
    _scheme, separator, rest = raw_path.partition("://")
    if not separator:
        return raw_path
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


class BadGetPath(ValueError):
    pass


def decode_get_path(tail: str) -> bytes:
    """DER of the request in a GET path tail (after the prefix), tolerant of what clients
    and proxies do to base64 in a URL: percent-encoding of any character, ``+`` left raw
    or turned into a space, missing ``=`` padding, leading or repeated slashes, and the
    URL-safe alphabet."""
    text = tail.lstrip("/")
    if "%" in text:
        text = unquote(text, errors="strict")
    text = text.replace(" ", "+").replace("-", "+").replace("_", "/").rstrip("=")
    if not text:
        raise BadGetPath("empty request")
    if len(text) % 4 == 1:
        raise BadGetPath("truncated base64")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadGetPath("not base64") from None


class WireResponse(web.StreamResponse):
    """A 200 response serialised ahead - status line, headers and body - and written in
    one call. Most OCSP clients send HTTP/1.1 keep-alive requests without conditions;
    for them this skips aiohttp's per-request header building, which costs more than the
    rest of answering a pre-signed request. Any other request gets a web.Response."""

    def __init__(self, wire: bytes):
        super().__init__()
        self._wire = wire
        self._sent = False

    @property
    def keep_alive(self) -> bool:
        return True  # only made for keep-alive requests: see _wire_fits

    async def prepare(self, request: web.BaseRequest):
        writer = request.writer
        if not self._sent:
            self._sent = True
            await writer.write_eof(self._wire)
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        pass  # prepare wrote it all


_http_date_memo = [None, ""]


def http_date(second: int) -> str:
    if _http_date_memo[0] != second:
        _http_date_memo[:] = [second, formatdate(second, usegmt=True)]
    return _http_date_memo[1]


def wire_200(headers: dict, body: bytes, date: str) -> bytes:
    """A complete HTTP/1.1 200 keep-alive response, with the headers aiohttp would add."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (f"HTTP/1.1 200 OK\r\n{lines}Content-Length: {len(body)}\r\nDate: {date}\r\n"
            f"Server: {SERVER_SOFTWARE}\r\n\r\n").encode("latin-1") + body


class HttpForms(NamedTuple):
    """A pre-signed answer as HTTP, for one second (the Date; max-age counts down)."""
    second: int
    get_headers: dict       # RFC 9919 caching headers, for web.Response
    get_wire: bytes         # complete keep-alive responses, for WireResponse
    post_wire: bytes


def http_forms(entry: SignedResponse, now: float) -> HttpForms:
    """Made once per second per answer asked for, kept on the entry."""
    second = int(now)
    forms = entry.http_forms[0]
    if forms is None or forms.second != second:
        # Whole seconds left at the end of this second: max-age never reaches past nextUpdate.
        max_age = max(0, int(entry.next_update - second) - 1)
        headers = {"Content-Type": OCSP_RESPONSE, "Last-Modified": entry.last_modified,
                   "Expires": entry.expires, "ETag": entry.etag,
                   "Cache-Control": f"max-age={max_age}, public, no-transform, must-revalidate"}
        date = http_date(second)
        forms = entry.http_forms[0] = HttpForms(second, headers, wire_200(headers, entry.der, date),
                                                wire_200(_POST_HEADERS, entry.der, date))
    return forms


def _wire_fits(request: web.BaseRequest) -> bool:
    """A WireResponse answers it: HTTP/1.1, keep-alive, a body wanted (not HEAD)."""
    return request.version == HttpVersion11 and request.keep_alive and request.method != "HEAD"


def _plain(status: int, text: str, **headers) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers=headers)


class _RequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, with the status RFC 9112 §3 requires for a
    request-target longer than we parse: 414 (URI Too Long), where aiohttp answers every
    request its parser refuses with 400. The parser reports an over-long URL as LineTooLong
    with the request-line limit; an over-long header field carries the field limit
    (make_server keeps the two different)."""

    def handle_error(self, request, status=500, exc=None, message=None):
        if status == 400 and isinstance(exc, LineTooLong) and exc.args[1:2] == (self.max_line_size,):
            exc.code = status = 414  # also what the log line says (logs.ClientErrorFilter)
            message = "request target too long"
        return super().handle_error(request, status, exc, message)


class _Server(web.Server):
    """web.Server making _RequestHandler connections."""

    def __call__(self) -> web_protocol.RequestHandler:
        return _RequestHandler(self, loop=self._loop, **self._kwargs)


class HttpFrontend:
    def __init__(self, config: Config, responder: Responder, metrics=None):
        self.config = config
        self.responder = responder
        self.metrics = metrics
        prefix = config.path_prefix.rstrip("/")
        self.prefix = prefix + "/"          # GET: /prefix/<base64>
        self.post_paths = {prefix or "/", prefix + "/"}
        self.serve_metrics = metrics is not None and config.metrics.enabled and config.metrics.listen is None
        # Request lines are info-level: a level above info turns them off too.
        self.log_requests = config.log.requests and config.log.level in ("debug", "info")
        self.request_log = RequestLog(config.log.format)
        self.in_flight = 0
        self._get_der = {}                  # raw GET path -> request DER (routing done)

    async def drain(self, timeout: float) -> bool:
        """Wait until no request is being handled (graceful shutdown): aiohttp's own
        shutdown stops reading at once, which would cut a request whose body is still
        arriving. Polled: an Event set and cleared per request costs every request."""
        deadline = time.monotonic() + timeout
        while self.in_flight:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def make_server(self, handler=None, **kwargs) -> web.Server:
        """The OCSP server, or with ``handler`` another one on the same limits (metrics)."""
        limits = self.config.limits
        max_line_size = limits.max_get_path_bytes + 32
        if max_line_size == MAX_HEADER_FIELD_BYTES:
            max_line_size += 1  # _RequestHandler tells the two LineTooLong apart by their limit
        return _Server(
            handler or self.handle,
            # aiohttp closes a connection that has not delivered a complete request
            # within keepalive_timeout of opening or of the previous response, which
            # is also what cuts off clients that dribble their headers.
            keepalive_timeout=limits.header_timeout,
            max_line_size=max_line_size,
            # OCSP clients send a few short headers. aiohttp keeps up to 32 pipelined
            # requests per connection parsed in memory: with its defaults (64 x 8 KB)
            # that was 16 MB a connection could hold, never given back to the system.
            max_field_size=MAX_HEADER_FIELD_BYTES,
            max_headers=MAX_HEADERS,
            access_log=None,
            lingering_time=1.0,
            **kwargs,
        )

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        started = time.perf_counter()
        method = request.method
        fields = {}
        self.in_flight += 1
        try:
            # The common requests first, without the routing in _dispatch: a POST to the
            # OCSP path as clients send it, a GET URL decoded before.
            if method == "POST" and request.raw_path in self.post_paths:
                body = self._complete_body(request)
                answer = self.responder.cached(body) if body is not None else None
                if answer is not None:
                    response, outcome = self._ocsp(answer, request, fields, get=False), answer.status
                else:
                    response, outcome = await self._post(request, fields, body)
            else:
                der = self._get_der.get(request.raw_path) if method == "GET" or method == "HEAD" else None
                if der is not None:
                    answer = self.responder.cached(der) or await self.responder.answer(der)
                    response, outcome = self._ocsp(answer, request, fields, get=True), answer.status
                else:
                    response, outcome = await self._dispatch(request, fields)
        except Exception:  # never a traceback page
            logging.getLogger("ocsp_responder.http").exception("unexpected error")
            response = self._ocsp_bytes(protocol.error_response(protocol.INTERNAL_ERROR))
            outcome = "internalError"
        finally:
            self.in_flight -= 1
        elapsed = time.perf_counter() - started
        if outcome is not None:
            if self.metrics is not None:
                # One label value for every multi-certificate answer keeps the series bounded.
                self.metrics.observe_request(method if method in ("GET", "HEAD", "POST") else "other",
                                             "multiple" if "," in outcome else outcome, elapsed)
            if self.log_requests:
                fields.update(method=method, http_status=response.status, status=outcome,
                              latency_ms=round(elapsed * 1000, 3), remote=request.remote)
                self.request_log.write(fields, asyncio.get_running_loop())
        return response

    async def _dispatch(self, request: web.BaseRequest, fields: dict):
        method = request.method
        raw_path = origin_form(request.raw_path.split("?", 1)[0])
        path = "/" + raw_path.lstrip("/")
        if path == self.config.health_path:
            return self._health(method), None
        if self.serve_metrics and path == self.config.metrics.path:
            return self.metrics_response(method), None

        if method == "POST":
            if path not in self.post_paths:
                return _plain(404, "not found"), "http_404"
            return await self._post(request, fields)
        if method in ("GET", "HEAD"):
            if path in self.post_paths:
                return _plain(400, "send an OCSP request: POST it, or GET <prefix>/<base64 DER>"), "http_400"
            if not path.startswith(self.prefix):
                return _plain(404, "not found"), "http_404"
            try:
                der = decode_get_path(path[len(self.prefix):])
            except (BadGetPath, UnicodeDecodeError) as exc:
                fields["error"] = str(exc)
                return self._ocsp_bytes(protocol.error_response(protocol.MALFORMED_REQUEST)), "malformedRequest"
            answer = self.responder.cached(der) or await self.responder.answer(der)
            # Only paths whose answer is kept: the memo exists to reach the cache without decoding.
            if len(der) <= REMEMBERED_REQUEST_MAX_BYTES and len(request.raw_path) <= GET_PATH_REMEMBERED_MAX \
                    and answer.cacheable is not None:
                if len(self._get_der) >= GET_PATHS_REMEMBERED:
                    self._get_der.clear()
                self._get_der[request.raw_path] = der
            return self._ocsp(answer, request, fields, get=True), answer.status
        return _plain(405, "method not allowed", Allow=ALLOWED), "http_405"

    @staticmethod
    def _arrived_body(request: web.BaseRequest) -> Optional[bytes]:
        """The whole body if it came with the headers (any small request), taken without
        a read task or timer; None if it is still arriving."""
        content = request.content
        if content.is_eof() and content.exception() is None:
            return content.read_nowait(-1)
        return None

    def _complete_body(self, request: web.BaseRequest) -> Optional[bytes]:
        """The body of a POST as clients send it (this exact Content-Type, the whole body
        arrived with the headers); None for any other POST, which _post checks and reads."""
        if request.headers.get("Content-Type") == OCSP_REQUEST:
            return self._arrived_body(request)
        return None

    async def _post(self, request: web.BaseRequest, fields: dict, body: Optional[bytes] = None):
        """``body``: already taken by _complete_body."""
        limits = self.config.limits
        if body is None:
            content_type = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
            if content_type != OCSP_REQUEST:
                return _plain(415, f"Content-Type must be {OCSP_REQUEST}"), "http_415"
            if request.content_length is not None and request.content_length > limits.max_body_bytes:
                response = _plain(413, "request too large")
                response.force_close()
                return response, "http_413"
            body = self._arrived_body(request)
            if body is None:
                refused = await self._continue(request)
                if refused is None:
                    body, refused = await self._read_body_in_time(request, limits)
                if refused is not None:
                    return refused
        if body is not None and len(body) > limits.max_body_bytes:
            body = None
        if body is None:
            response = _plain(413, "request too large")
            response.force_close()
            return response, "http_413"
        answer = self.responder.cached(body) or await self.responder.answer(body)
        return self._ocsp(answer, request, fields, get=False), answer.status

    @staticmethod
    async def _continue(request: web.BaseRequest):
        """RFC 9110 §10.1.1: a client that sent ``Expect: 100-continue`` holds its body
        back until told to send it (aiohttp's low-level server does not). None, or the
        refusal of an expectation we cannot meet."""
        expect = request.headers.get("Expect")
        if expect is None or request.version != HttpVersion11:
            return None  # HTTP/1.0 clients do not wait for it (§10.1.1)
        if expect.strip().lower() != "100-continue":
            response = _plain(417, "the only expectation supported is 100-continue")
            response.force_close()
            return response, "http_417"
        try:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        except ConnectionError:
            return _client_closed()
        request.writer.output_size = 0  # the final response has not started
        return None

    async def _read_body_in_time(self, request: web.BaseRequest, limits):
        """(body or None if over the limit, None) or (None, (response, outcome)) for a
        body too slow or cut off."""
        try:
            return await asyncio.wait_for(self._read_body(request, limits.max_body_bytes), limits.body_timeout), None
        except asyncio.TimeoutError:
            response = _plain(408, "request body timeout")
            response.force_close()
            return None, (response, "http_408")
        except ConnectionError:
            return None, _client_closed()

    @staticmethod
    async def _read_body(request: web.BaseRequest, limit: int) -> Optional[bytes]:
        chunks, size = [], 0
        while True:
            chunk = await request.content.read(limit + 1 - size)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return None

    @staticmethod
    def _ocsp_bytes(der: bytes, **headers) -> web.Response:
        headers["Content-Type"] = OCSP_RESPONSE
        return web.Response(body=der, headers=headers)

    def _ocsp(self, answer: Answer, request: web.BaseRequest, fields: dict, get: bool) -> web.Response:
        if self.log_requests:
            fields.update(issuer=answer.issuer, serial=",".join(answer.serials) or None,
                          cache_hit=answer.cache_hit, nonce=answer.nonce)
        entry = answer.cacheable
        if entry is None and get and answer.signed is not None:
            # Signed but not kept (an unknown serial, several certificates, a nonce): still an
            # authoritative answer, which RFC 9919 §7.2 forbids marking no-store; it gets the
            # caching headers of its own thisUpdate and nextUpdate.
            entry = SignedResponse.create(answer.der, 0, None, *answer.signed)
        if entry is None:
            # Error answers (unsigned): GET ones must not be stored by shared caches.
            headers = _NO_STORE_HEADERS if get else _POST_HEADERS
            if _wire_fits(request):
                return WireResponse(wire_200(headers, answer.der, http_date(int(time.time()))))
            return web.Response(body=answer.der, headers=headers)
        forms = http_forms(entry, time.time())
        if_none_match = request.headers.get("If-None-Match") if get else None
        if if_none_match:
            # One list, however many field lines it came in (RFC 9110 §5.3).
            if_none_match = ",".join(request.headers.getall("If-None-Match"))
        if if_none_match and (if_none_match.strip() == "*" or entry.etag in
                              [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]):
            fields["not_modified"] = True
            response = web.Response(status=304, headers=forms.get_headers)
            del response.headers["Content-Type"]  # a 304 has no body to describe
            return response
        if _wire_fits(request):
            return WireResponse(forms.get_wire if get else forms.post_wire)
        return web.Response(body=answer.der, headers=forms.get_headers if get else _POST_HEADERS)

    def _health(self, method: str) -> web.Response:
        if method not in ("GET", "HEAD"):
            return _plain(405, "method not allowed", Allow="GET, HEAD")
        healthy, report = self.responder.health()
        body = json.dumps({"status": "ok" if healthy else "unhealthy", "issuers": report}, sort_keys=True)
        return web.Response(status=200 if healthy else 503, text=body, content_type="application/json",
                            headers={"Cache-Control": "no-store"})

    def metrics_response(self, method: str) -> web.Response:
        if method not in ("GET", "HEAD"):
            return _plain(405, "method not allowed", Allow="GET, HEAD")
        body, content_type = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


class MetricsOnlyFrontend:
    """The metrics endpoint on its own listener (``metrics.listen``)."""

    def __init__(self, frontend: HttpFrontend):
        self.frontend = frontend

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = "/" + request.raw_path.split("?", 1)[0].lstrip("/")
        if path == self.frontend.config.metrics.path:
            return self.frontend.metrics_response(request.method)
        if path == self.frontend.config.health_path:
            return self.frontend._health(request.method)
        return _plain(404, "not found")
