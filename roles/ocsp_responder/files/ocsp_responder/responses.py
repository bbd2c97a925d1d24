"""The responder's decisions: which issuer, which status, cached or signed now.

A normal request (one certificate, no nonce or nonces ignored) is a dictionary lookup
of a pre-signed response. A nonce (policy ``echo``), several certificates in one
request, or a cache miss cost a live signature: RSA ones on a thread pool when a single
worker must use every core (cryptography releases the GIL while signing), bounded by
``limits.max_live_signings`` (beyond it the answer is ``tryLater`` rather than an
ever-growing queue); the others on the event loop, those of the requests that arrived
together back to back."""
from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from asn1crypto import core as asn1_core
from asn1crypto import x509 as asn1_x509

from . import protocol
from .cache import ResponseCache, SignedResponse
from .config import HASH_ALGORITHMS, Config, IssuerConfig
from .signer import SignerError, load_certificate, load_signer
from .status_source import IndexSource

log = logging.getLogger("ocsp_responder.responses")

UTC = datetime.timezone.utc
# Live-signing memo bound: distinct certificate sets asked about with a nonce in one second.
TBS_HEADS_PER_SECOND = 1024
# Requests remembered by their bytes (here and GET paths in http.py) are at most this
# long: a CertID with SHA-512 makes about 190 bytes; anything much bigger (a requestor
# name, a signature) is rare, and remembering it would let one client fill memory.
REMEMBERED_REQUEST_MAX_BYTES = 512
# RFC 6960 §2.2 "extended revoked" answer for a serial that was never issued.
EXTENDED_REVOKED = ("revoked", 0, 6)  # 1970-01-01T00:00:00Z, certificateHold


class StartupError(Exception):
    """The responder cannot serve with this configuration (message names the key)."""


class SignerExpired(Exception):
    """The signer certificate has ended: a response would have its nextUpdate in the past."""


@dataclass(eq=False)  # identity semantics: issuers are used as set members
class Issuer:
    index: int
    config: IssuerConfig
    signer: object            # replaced whole by a SIGHUP reload: read it once per use
    source: IndexSource
    cert_id_prefixes: Dict[str, bytes] = field(default_factory=dict)
    signer_error: Optional[str] = None   # why the files on disk are not in service (SIGHUP)
    signer_reloads_ok: int = 0
    signer_reloads_failed: int = 0
    expired_signer_logged: object = None  # the ended signer already logged, once per signer

    @property
    def name(self) -> str:
        return self.config.name


@dataclass
class Answer:
    der: bytes
    status: str                                  # cert status(es) or OCSP error status name
    issuer: Optional[str] = None
    serials: List[str] = field(default_factory=list)
    cache_hit: bool = False
    nonce: bool = False
    cacheable: Optional[SignedResponse] = None    # set when HTTP caching headers apply
    signed: Optional[Tuple[float, float]] = None  # (thisUpdate, nextUpdate) of a live answer


class KnownRequest:
    """Request bytes seen before (a nonce-free single-certificate request) and what
    they ask for: ``Responder.cached`` answers them without parsing."""
    __slots__ = ("issuer", "key", "serial", "serial_hex", "answer")

    def __init__(self, issuer: Issuer, key: Tuple[int, bytes], serial: int, serial_hex: str):
        self.issuer, self.key, self.serial, self.serial_hex = issuer, key, serial, serial_hex
        self.answer: Optional[Answer] = None  # the last cache-hit answer made for them


def _issuer_hashes(ca_der: bytes) -> Dict[str, Tuple[bytes, bytes]]:
    parsed = asn1_x509.Certificate.load(ca_der)
    name_der = parsed.subject.dump()
    key_bits = parsed.public_key["public_key"].contents[1:]
    return {alg: (hashlib.new(alg, name_der).digest(), hashlib.new(alg, key_bits).digest())
            for alg in HASH_ALGORITHMS}


def usable_cores() -> int:
    """The cores this process may run on (CPUAffinity=, taskset, a cpuset), not the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class Responder:
    def __init__(self, config: Config, metrics=None):
        self.config = config
        self.metrics = metrics
        if metrics is not None:
            metrics.responder = self  # the scrape reads index state from here
        self.issuers: List[Issuer] = []
        self._by_cert_id: Dict[Tuple[str, bytes, bytes], Issuer] = {}
        self.cache = ResponseCache(config.cache_max_entries)
        self._live_in_flight = 0
        self._to_sign: list = []  # (future, sign()'s arguments): live signatures of this turn
        self._to_sign_loop = None
        cores = usable_cores()
        # One process on several cores: RSA signatures go to threads to use them all.
        self._live_pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
        if config.workers == 1 and cores > 1:
            self._live_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(config.limits.max_live_signings, cores), thread_name_prefix="ocsp-sign")
        # Background work (index parsing, pre-signing) gets its own thread so it never
        # queues in front of a client's live signature.
        self._background_pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ocsp-bg")
        self._presign_queue: "Optional[asyncio.Queue]" = None  # (issuer, CertID DER, serial)
        self._queued: set = set()
        self._known_requests: Dict[bytes, KnownRequest] = {}
        self._known_requests_max = max(1024, config.cache_max_entries)
        self._request_parser = protocol.RequestParser(config.limits.max_request_certs)
        # Live signing: the response up to its extensions, per (second, certificates,
        # statuses); one dict per second, replaced whole when the second changes.
        self._tbs_heads: Dict[tuple, tuple] = {}
        self._tbs_heads_second = None
        # The hot path bumps this directly (plain int, see metrics.Counts).
        self._counts = metrics.counts if metrics is not None else None
        for index, issuer_config in enumerate(config.issuers):
            self._add_issuer(index, issuer_config)

    # --- start-up ------------------------------------------------------------------

    def _add_issuer(self, index: int, issuer_config: IssuerConfig) -> None:
        try:
            ca_cert = load_certificate(issuer_config.ca_cert)
            signer = load_signer(issuer_config, ca_cert)
        except SignerError as exc:
            raise StartupError(str(exc)) from None
        except OSError as exc:
            raise StartupError(f"issuers[{issuer_config.name}]: {exc.filename}: {exc.strerror}") from None
        issuer = Issuer(index, issuer_config, signer, IndexSource(issuer_config.index, issuer_config.name))
        issuer_hashes = _issuer_hashes(signer.ca_cert_der)
        same_ca = self._by_cert_id.get(("sha1", *issuer_hashes["sha1"]))
        if same_ca is not None:
            # A CertID names a CA by subject and key only: one entry would hide the other.
            raise StartupError(f"issuers[{issuer_config.name}].ca_cert {issuer_config.ca_cert}: the same CA (subject "
                               f"and key) as issuers[{same_ca.name}]; give each CA one entry with its whole index")
        for algorithm, (name_hash, key_hash) in issuer_hashes.items():
            self._by_cert_id[(algorithm, name_hash, key_hash)] = issuer
            issuer.cert_id_prefixes[algorithm] = cert_id_prefix(algorithm, (name_hash, key_hash))
        self.issuers.append(issuer)

    def load_indexes(self) -> None:
        """Synchronous first load, before the server accepts connections."""
        for issuer in self.issuers:
            issuer.source.check(force=True)
            self._count_reload(issuer)

    def close(self) -> None:
        if self._live_pool is not None:
            self._live_pool.shutdown(wait=False, cancel_futures=True)
        self._background_pool.shutdown(wait=False, cancel_futures=True)

    # --- answering -------------------------------------------------------------------

    async def answer(self, der: bytes) -> Answer:
        try:
            return await self._answer(der)
        except Exception:  # our failure, never the client's: internalError, logged with a trace
            log.exception("internal error while answering")
            return Answer(protocol.error_response(protocol.INTERNAL_ERROR), "internalError")

    def cached(self, der: bytes) -> Optional[Answer]:
        """Fast path, synchronous: the exact bytes of a nonce-free single-certificate
        request seen before whose pre-signed answer is servable. Clients repeat them
        verbatim (and GET URLs are these bytes), so the common case skips ASN.1 parsing
        and the coroutine machinery. None: take ``answer``."""
        known = self._known_requests.get(der)
        if known is None:
            return None
        issuer = known.issuer
        hit = self.cache.get(known.key, issuer.source.lookup(known.serial), time.time())
        if hit is None or hit.signer is not issuer.signer:  # signer rotated: see _answer
            return None
        if self._counts is not None:
            self._counts.cache_hits += 1
        answer = known.answer
        if answer is None or answer.cacheable is not hit:
            # Answers are not modified once made: one per pre-signed entry is reused.
            answer = known.answer = Answer(hit.der, hit.status[0], issuer.name, [known.serial_hex],
                                           cache_hit=True, cacheable=hit)
        return answer

    async def _answer(self, der: bytes) -> Answer:
        fast = self.cached(der)
        if fast is not None:
            return fast
        config = self.config
        try:
            request = self._request_parser.parse(der)
        except protocol.MalformedRequest as exc:
            log.debug("malformed request: %s", exc)
            return Answer(protocol.error_response(protocol.MALFORMED_REQUEST), "malformedRequest")

        issuers = {self._by_cert_id.get((c.hash_algorithm, c.issuer_name_hash, c.issuer_key_hash)) for c in request.certs}
        serials = [format(c.serial, "X") for c in request.certs]
        if None in issuers or len(issuers) != 1:
            # Not ours (or a mix of issuers, which no single signer may answer for).
            return Answer(protocol.error_response(protocol.UNAUTHORIZED), "unauthorized", serials=serials)
        issuer = issuers.pop()
        if not issuer.source.loaded:
            return Answer(protocol.error_response(protocol.TRY_LATER), "tryLater", issuer.name, serials)

        nonce_extension = None
        if request.nonce_extension is not None:
            # RFC 9654 §2.1: a nonce of 0 or more than 128 octets MUST be rejected.
            if not 1 <= request.nonce_length <= protocol.NONCE_MAX_OCTETS:
                return Answer(protocol.error_response(protocol.MALFORMED_REQUEST), "malformedRequest",
                              issuer.name, serials, nonce=True)
            if config.nonce_policy == "echo":
                nonce_extension = request.nonce_extension

        statuses = [issuer.source.lookup(cert.serial) for cert in request.certs]
        not_issued = "revoked" if config.unknown_serial_policy == "revoked" else "unknown"
        status_text = ",".join(status[0] if status else not_issued for status in statuses)
        cacheable = nonce_extension is None and len(request.certs) == 1
        now = time.time()
        if cacheable:
            cert = request.certs[0]
            key = (issuer.index, cert.cert_id_der)
            if request.nonce_extension is None and len(der) <= REMEMBERED_REQUEST_MAX_BYTES:
                if len(self._known_requests) >= self._known_requests_max:
                    self._known_requests.clear()
                self._known_requests[der] = KnownRequest(issuer, key, cert.serial, serials[0])
            hit = self.cache.get(key, statuses[0], now)
            # After a signer rotation an entry signed by the previous signer is replaced by
            # a live signature; it is still a valid answer, so it is served when live
            # signing is at its bound rather than failing the request with tryLater.
            if hit is not None and (hit.signer is issuer.signer
                                    or self._live_in_flight >= config.limits.max_live_signings):
                if self._counts is not None:
                    self._counts.cache_hits += 1
                return Answer(hit.der, status_text, issuer.name, serials, cache_hit=True, cacheable=hit)
            if self.metrics is not None:
                self.metrics.count("ocsp_cache_misses")

        if self._live_in_flight >= config.limits.max_live_signings:
            return Answer(protocol.error_response(protocol.TRY_LATER), "tryLater", issuer.name, serials,
                          nonce=nonce_extension is not None)
        cert_ids = [c.cert_id_der for c in request.certs]
        try:
            if issuer.signer.slow and self._live_pool is not None:
                self._live_in_flight += 1
                try:
                    der_out, this_update, next_update, signer = await asyncio.get_running_loop().run_in_executor(
                        self._live_pool, self.sign, issuer, cert_ids, statuses, nonce_extension)
                finally:
                    self._live_in_flight -= 1
                # Yield once: the answers signed meanwhile on the other threads leave with this one.
                await asyncio.sleep(0)
            else:
                # Fast keys, one process per core already, or a single core: the thread
                # hand-off would cost more than it saves. Not counted in _live_in_flight:
                # the loop signs them in turn and does nothing else meanwhile, as when each
                # was signed as it was parsed (a burst is answered, not told tryLater).
                der_out, this_update, next_update, signer = await self._signed_in_turn(
                    issuer, cert_ids, statuses, nonce_extension)
        except SignerExpired as exc:
            self._report_expired_signer(issuer, exc)
            return Answer(protocol.error_response(protocol.INTERNAL_ERROR), "internalError", issuer.name, serials,
                          nonce=nonce_extension is not None)
        self._count_signing(issuer, "live")
        answer = Answer(der_out, status_text, issuer.name, serials, nonce=nonce_extension is not None,
                        signed=(this_update, next_update))
        if cacheable and statuses[0] is not None:
            entry = SignedResponse.create(der_out, request.certs[0].serial, statuses[0], this_update, next_update,
                                          signer)
            self.cache.put(key, entry)
            answer.cacheable = entry
        return answer

    def _signed_in_turn(self, issuer: Issuer, cert_ids: List[bytes], statuses,
                        nonce_extension: Optional[bytes]) -> asyncio.Future:
        """sign(), made with those of every request that reaches this point in the same turn of
        the event loop: all of them are parsed first, then signed back to back, and their
        answers leave together. Interleaved with the Python work of the next request, an RSA
        signature cost more CPU (docs/benchmarks.md, run Y); answered one per signature, every
        answer woke an idle client afresh, and that wake-up is kernel time of the writer."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self._to_sign or self._to_sign_loop is not loop:
            # The first of this turn. A list another loop left (tests run several loops on
            # one Responder) stays with that loop's callback, which signs it if it runs again.
            self._to_sign, self._to_sign_loop = [], loop
            loop.call_soon(self._sign_queued, self._to_sign)
        self._to_sign.append((future, issuer, cert_ids, statuses, nonce_extension))
        return future

    def _sign_queued(self, queued: list) -> None:
        if self._to_sign is queued:
            self._to_sign = []
        for future, issuer, cert_ids, statuses, nonce_extension in queued:
            if future.done():  # cancelled: the request is gone, nobody to sign for
                continue
            try:
                future.set_result(self.sign(issuer, cert_ids, statuses, nonce_extension))
            except Exception as exc:  # pylint: disable=broad-except
                future.set_exception(exc)  # raised in the request that asked (SignerExpired...)

    def _single_answer(self, cert_id_der: bytes, status) -> protocol.SingleAnswer:
        if status is None:
            if self.config.unknown_serial_policy == "revoked":
                status = EXTENDED_REVOKED
            else:
                return protocol.SingleAnswer(cert_id_der, "unknown")
        if status[0] == "revoked":
            return protocol.SingleAnswer(cert_id_der, "revoked",
                                         datetime.datetime.fromtimestamp(status[1], UTC), status[2])
        return protocol.SingleAnswer(cert_id_der, "good")

    def sign(self, issuer: Issuer, cert_ids: List[bytes], statuses, nonce_extension: Optional[bytes]):
        """Build and sign one response (thread-safe: no shared state but a memo). Returns
        (DER, thisUpdate, nextUpdate as POSIX seconds, the Signer used)."""
        config = self.config
        signer = issuer.signer  # once: a SIGHUP may swap it meanwhile
        now = int(time.time())
        build = self._tbs_head if nonce_extension is None else self._memo_tbs_head
        _signer, head, this_update, next_update = build(signer, now, cert_ids, statuses)
        # The extended-revoke extension only where an answer needs it (RFC 6960 §4.4.8):
        # RFC 9919 §3.2.1 asks for no responseExtensions otherwise.
        der = protocol.build_response(signer, head, nonce_extension=nonce_extension,
                                      extended_revoke=config.unknown_serial_policy == "revoked" and None in statuses)
        return der, this_update, next_update, signer

    def _memo_tbs_head(self, signer, now: int, cert_ids: List[bytes], statuses) -> tuple:
        """_tbs_head, built once per second for requests that differ only by their nonce
        (every request of a client that sends nonces)."""
        key = (now, tuple(cert_ids), tuple(statuses))
        if self._tbs_heads_second != now:
            self._tbs_heads, self._tbs_heads_second = {}, now  # a racing thread loses only memo entries
        heads = self._tbs_heads
        head = heads.get(key)
        if head is None or head[0] is not signer:
            head = self._tbs_head(signer, now, cert_ids, statuses)
            if len(heads) < TBS_HEADS_PER_SECOND:
                heads[key] = head
        return head

    def _tbs_head(self, signer, now: int, cert_ids: List[bytes], statuses) -> tuple:
        """(signer, tbsResponseData up to its extensions, thisUpdate, nextUpdate)."""
        config = self.config
        this_update = self._this_update(signer, now)
        next_update = self._next_update(signer, now)
        if next_update <= now:
            raise SignerExpired(f"signer certificate {signer.cert.serial_number:X} ended at "
                                f"{signer.cert.not_valid_after_utc.isoformat()}")
        this_dt = datetime.datetime.fromtimestamp(this_update, UTC)
        next_dt = datetime.datetime.fromtimestamp(next_update, UTC)
        singles = [protocol.single_response(self._single_answer(cert_id, status), this_dt, next_dt)
                   for cert_id, status in zip(cert_ids, statuses)]
        return (signer, protocol.tbs_head(signer, config.responder_id, singles, datetime.datetime.fromtimestamp(now, UTC)),
                float(this_update), float(next_update))

    def _this_update(self, signer, now: int) -> int:
        # Backdated for clients whose clock is behind, but never before the signer
        # certificate's notBefore (clients check the signer's validity too).
        return max(now - int(self.config.this_update_backdate), int(signer.valid_from))

    def _next_update(self, signer, now: int) -> int:
        # Never beyond the signer certificate: clients check its validity too.
        return min(now + int(self.config.response_validity), int(signer.valid_until))

    def _report_expired_signer(self, issuer: Issuer, exc: SignerExpired) -> None:
        signer = issuer.signer
        if issuer.expired_signer_logged is not signer:  # once, not on every request
            issuer.expired_signer_logged = signer
            log.error("cannot sign: %s; answering internalError until a valid signer is loaded (SIGHUP)", exc,
                      extra={"fields": {"issuer": issuer.name}})

    # --- background: index watching, pre-signing, refreshing ------------------------

    async def run_background(self) -> None:
        """Runs until cancelled: watches indexes, pre-signs, refreshes."""
        self._presign_queue = asyncio.Queue()
        for issuer in self.issuers:
            if issuer.source.loaded:
                # Newest certificates first: they are the ones clients ask about.
                self._queue_presign(issuer, reversed(list(issuer.source.table)), limit=self.config.cache_max_entries)
        tasks = [asyncio.ensure_future(self._watch()), asyncio.ensure_future(self._presign_worker()),
                 asyncio.ensure_future(self._refresh())]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()

    async def reload(self, force: bool = True, signers: bool = False) -> None:
        """Re-read changed indexes (all of them with ``force``); with ``signers`` (SIGHUP)
        first re-read every signer certificate, key and CA certificate."""
        loop = asyncio.get_running_loop()
        if signers:
            swapped = await loop.run_in_executor(self._background_pool, self.reload_signers)
            if self.metrics is not None:
                for issuer in self.issuers:
                    self.metrics.observe_signer_reloads(issuer)
            for issuer in swapped:
                # Re-sign what the cache holds; until then a request costs a live signature.
                for (_index, cert_id), entry in self.cache.entries_of(issuer.index):
                    self._enqueue(issuer, cert_id, entry.serial)
        for issuer in self.issuers:
            loaded_before = issuer.source.loaded
            changed = await loop.run_in_executor(self._background_pool, issuer.source.check, force)
            self._count_reload(issuer)
            if changed:
                # Entries of changed serials stop being served at once (cache.get compares
                # the status); re-signing them now keeps the next request a hit. A first
                # load after start-up (every serial "changed") fills the cache as start-up
                # does: newest first, no more than it holds.
                serials = changed if loaded_before else reversed(list(issuer.source.table))
                self._queue_presign(issuer, serials, limit=self.config.cache_max_entries)

    def reload_signers(self) -> List[Issuer]:
        """Load each issuer's signer files again with the start-up checks. A signer that
        passes replaces the one in service in one assignment; one that fails leaves the
        one in service untouched and sets ``signer_error``. Returns the issuers whose
        signer changed."""
        changed = []
        for issuer in self.issuers:
            current = issuer.signer
            try:
                ca_cert = load_certificate(issuer.config.ca_cert)
                signer = load_signer(issuer.config, ca_cert)
                if _issuer_hashes(signer.ca_cert_der) != _issuer_hashes(current.ca_cert_der):
                    raise SignerError(f"issuers[{issuer.name}].ca_cert {issuer.config.ca_cert}: another CA "
                                      "(subject or key differs) than the one in service; restart to serve it")
            except SignerError as exc:
                self._signer_reload_failed(issuer, str(exc))
                continue
            except OSError as exc:
                self._signer_reload_failed(issuer, f"issuers[{issuer.name}]: {exc.filename}: {exc.strerror}")
                continue
            except Exception as exc:  # e.g. UnsupportedAlgorithm: a bad file must not end the reload
                self._signer_reload_failed(issuer, f"issuers[{issuer.name}]: cannot load the signer: "
                                                   f"{type(exc).__name__}: {exc}")
                continue
            issuer.signer_error = None
            issuer.signer_reloads_ok += 1
            if signer.cert_der == current.cert_der and signer.ca_cert_der == current.ca_cert_der:
                continue  # unchanged: keep the pre-signed responses
            issuer.signer = signer
            changed.append(issuer)
            log.info("signer replaced", extra={"fields": {
                "issuer": issuer.name, "old_serial": format(current.cert.serial_number, "X"),
                "new_serial": format(signer.cert.serial_number, "X"),
                "not_after": signer.cert.not_valid_after_utc.isoformat()}})
        return changed

    def _signer_reload_failed(self, issuer: Issuer, reason: str) -> None:
        issuer.signer_error = reason
        issuer.signer_reloads_failed += 1
        log.error("signer not reloaded, the previous one stays in service: %s", reason,
                  extra={"fields": {"issuer": issuer.name}})

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.reload_interval)
            try:
                await self.reload(force=False)
            except Exception:
                log.exception("index watcher error")

    def _queue_presign(self, issuer: Issuer, serials, limit: Optional[int] = None) -> None:
        """Queue signing of each serial for every ``presign_hash_algorithms`` entry;
        ``limit`` caps how many new entries are queued (initial fill of the cache)."""
        if self._presign_queue is None or self.config.cache_max_entries <= 0:
            return
        for serial in serials:
            for algorithm in self.config.presign_hash_algorithms:
                if limit is not None:
                    if limit <= 0:
                        return
                    limit -= 1
                self._enqueue(issuer, cert_id_der(issuer.cert_id_prefixes[algorithm], serial), serial)

    def _enqueue(self, issuer: Issuer, cert_id: bytes, serial: int) -> None:
        key = (issuer.index, cert_id)
        if key not in self._queued:
            self._queued.add(key)
            self._presign_queue.put_nowait((issuer, cert_id, serial))

    async def _presign_worker(self, batch_size: int = 64) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._presign_queue.get()]
            while len(batch) < batch_size and not self._presign_queue.empty():
                batch.append(self._presign_queue.get_nowait())
            try:
                results = await loop.run_in_executor(self._background_pool, self._sign_batch, batch)
            except Exception:
                log.exception("pre-signing failed")
                await asyncio.sleep(1)
                continue
            for issuer, cert_id, _serial in batch:
                self._queued.discard((issuer.index, cert_id))
            for issuer, cert_id, entry in results:
                self.cache.put((issuer.index, cert_id), entry)
                if entry.signer is not issuer.signer:  # signed while a SIGHUP swapped the signer
                    self._enqueue(issuer, cert_id, entry.serial)
            for issuer in {item[0] for item in batch}:
                self._count_signing(issuer, "presign", sum(1 for item in batch if item[0] is issuer))

    def _sign_batch(self, batch) -> list:
        results = []
        for issuer, cert_id, serial in batch:
            status = issuer.source.lookup(serial)
            if status is None:
                continue  # removed from the index meanwhile; unknown serials are not cached
            try:
                der, this_update, next_update, signer = self.sign(issuer, [cert_id], [status], None)
            except SignerExpired as exc:
                self._report_expired_signer(issuer, exc)
                continue
            results.append((issuer, cert_id, SignedResponse.create(der, serial, status, this_update, next_update,
                                                                   signer)))
        return results

    async def _refresh(self) -> None:
        interval = max(1.0, min(60.0, self.config.refresh_margin / 10))
        while True:
            await asyncio.sleep(interval)
            for issuer, cert_id, entry in self.due_for_refresh(time.time()):
                self._enqueue(issuer, cert_id, entry.serial)

    def due_for_refresh(self, now: float) -> List[Tuple[Issuer, bytes, SignedResponse]]:
        """Cached answers within refresh_margin of their nextUpdate that a new signature
        would extend."""
        by_index = {issuer.index: issuer for issuer in self.issuers}
        due = []
        for (issuer_index, cert_id), entry in self.cache.due_for_refresh(now, self.config.refresh_margin):
            issuer = by_index[issuer_index]
            signer = issuer.signer
            if entry.signer is signer:
                if entry.this_update > now:  # signed before the clock was set back
                    if self._this_update(signer, int(now)) >= entry.this_update:
                        continue  # held up by the signer's notBefore: nothing earlier to sign
                elif self._next_update(signer, int(now)) <= entry.next_update:
                    continue  # capped by the signer's notAfter: signing again would change nothing
            due.append((issuer, cert_id, entry))
        return due

    # --- health and metrics helpers -------------------------------------------------

    def health(self) -> Tuple[bool, dict]:
        report = {}
        healthy = True
        now = time.time()
        for issuer in self.issuers:
            ok, reason = issuer.source.healthy(self.config.index_max_age, self.config.reload_interval)
            signer = issuer.signer
            if signer.valid_until - now < 0:
                ok, reason = False, "signer certificate expired"
            elif issuer.signer_error and ok:
                ok, reason = False, "signer files on disk not loaded (previous signer in service): " + issuer.signer_error
            healthy = healthy and ok
            source = issuer.source
            report[issuer.name] = {
                "ok": ok, "reason": reason, "entries": len(source.table),
                "loaded_at": source.loaded_at, "index_mtime": source.index_mtime, "error": source.error,
                "signer_serial": format(signer.cert.serial_number, "X"),
                "signer_not_after": signer.cert.not_valid_after_utc.isoformat(),
                "signer_error": issuer.signer_error,
            }
        return healthy, report

    def reload_problems(self) -> List[str]:
        """What the files on disk could not put in service (``--reload`` reports it)."""
        problems = []
        for issuer in self.issuers:
            if issuer.signer_error:
                problems.append(issuer.signer_error)
            if issuer.source.error:
                problems.append(f"issuers[{issuer.name}].index: {issuer.source.error}")
        return problems

    def _count_signing(self, issuer: Issuer, kind: str, amount: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.count("ocsp_signings", issuer.name, kind, amount=amount)

    def _count_reload(self, issuer: Issuer) -> None:
        if self.metrics is not None:
            self.metrics.observe_reloads(issuer)


def integer_der(value: int) -> bytes:
    """Minimal two's complement, as clients encode the serial (-128 is 80, not ff80)."""
    magnitude = value if value >= 0 else ~value
    return protocol.tlv(0x02, value.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True))


def cert_id_prefix(algorithm: str, hashes: Tuple[bytes, bytes]) -> bytes:
    """CertID content up to the serial, as clients build it: the AlgorithmIdentifier
    with NULL parameters (openssl, NSS, Java and GnuTLS all send it that way)."""
    oid = asn1_core.ObjectIdentifier(protocol.HASH_OIDS[algorithm]).dump()
    return protocol.sequence(oid, b"\x05\x00") + protocol.tlv(0x04, hashes[0]) + protocol.tlv(0x04, hashes[1])


def cert_id_der(prefix: bytes, serial: int) -> bytes:
    return protocol.tlv(0x30, prefix + integer_der(serial))
