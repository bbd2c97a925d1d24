"""Live signing and pre-signing inside one Responder (no HTTP): the bound on live
signatures, background refresh of cached answers before nextUpdate."""
from __future__ import annotations

import asyncio
import base64
import os
import threading
import time

import pytest
from asn1crypto import ocsp

from ocsp_responder.config import config_from_dict
from ocsp_responder.metrics import Metrics
from ocsp_responder.responses import Responder

try:
    from .conftest import base_config, ocsp_request_der
except ImportError:  # tests/responder is not a package: pytest put this directory on sys.path
    from conftest import base_config, ocsp_request_der


def statuses(der: bytes):
    response = ocsp.OCSPResponse.load(der)
    if response["response_status"].native != "successful":
        return response["response_status"].native
    return response["response_bytes"]["response"].parsed["tbs_response_data"]


def answers_to_burst(responder: Responder, requests: list) -> list:
    """The answers to ``requests`` arriving together, in one event loop; closes the responder."""
    async def burst():
        return await asyncio.gather(*(responder.answer(der) for der in requests))

    try:
        return asyncio.run(burst())
    finally:
        responder.close()


def test_live_signings_beyond_limit_get_try_later(pki, tmp_path):
    """max_live_signings bounds the signing threads (RSA, one worker on several cores)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs 2 usable cores: with one, RSA is signed on the event loop")
    responder = one_worker_responder(pki, 2, limits={"max_live_signings": 2})
    answers = answers_to_burst(responder, [ocsp_request_der(pki, pki.good, nonce=True, tmp=tmp_path)
                                           for _request in range(6)])
    outcomes = [answer.status for answer in answers]
    # Coroutines run in order up to their first await: two take the slots, the rest are refused.
    assert outcomes == ["good", "good", "tryLater", "tryLater", "tryLater", "tryLater"]
    assert statuses(answers[2].der) == "try_later"
    assert statuses(answers[0].der)["response_extensions"][0]["extn_id"].native == "nonce"


@pytest.mark.slow
def test_cached_answers_refreshed_before_next_update(pki, tmp_path):
    config = config_from_dict(base_config(pki, response_validity=60, refresh_margin=57, this_update_backdate=5))
    metrics = Metrics()
    responder = Responder(config, metrics)
    responder.load_indexes()
    request = ocsp_request_der(pki, pki.good, nonce=False, tmp=tmp_path)

    async def scenario():
        background = asyncio.ensure_future(responder.run_background())
        try:
            await asyncio.sleep(0.5)
            first = await responder.answer(request)
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                later = await responder.answer(request)
                if later.der != first.der:
                    return first, later
            return first, None
        finally:
            background.cancel()

    try:
        first, later = asyncio.run(scenario())
    finally:
        responder.close()
    assert first.cache_hit, "pre-signed at start"
    assert later is not None, "not re-signed within the refresh interval"
    assert later.cache_hit, "the refreshed answer comes from the cache, not a live signature"
    old, new = statuses(first.der), statuses(later.der)
    assert new["produced_at"].native > old["produced_at"].native
    assert new["responses"][0]["next_update"].native > old["responses"][0]["next_update"].native


def test_no_answer_outlives_its_signer(pki, tmp_path, monkeypatch):
    """nextUpdate stops at the signer's notAfter: near it, a cached answer is not signed
    again on every refresh tick (that would not extend it); past it, nothing is signed
    and requests get internalError instead of a response already out of date."""
    import ocsp_responder.responses as responses_module

    config = config_from_dict(base_config(pki, response_validity=3600, refresh_margin=600))
    responder = Responder(config)
    responder.load_indexes()
    issuer = responder.issuers[0]
    ends = issuer.signer.valid_until
    clock = [ends - 10 * 86400]
    monkeypatch.setattr(responses_module.time, "time", lambda: clock[0])
    plain = ocsp_request_der(pki, pki.good, nonce=False, tmp=tmp_path)
    with_nonce = ocsp_request_der(pki, pki.good, nonce=True, tmp=tmp_path)

    async def answer(der):
        return await responder.answer(der)

    try:
        assert asyncio.run(answer(plain)).status == "good"
        clock[0] += 3100  # within the margin, and a new signature would last longer
        assert [entry.serial for _issuer, _cert_id, entry in responder.due_for_refresh(clock[0])] == [
            int(pki.good.serial, 16)]

        clock[0] = ends - 100
        capped = asyncio.run(answer(plain))
        assert statuses(capped.der)["responses"][0]["next_update"].native.timestamp() == int(ends)
        assert responder.due_for_refresh(clock[0]) == [], "re-signing cannot extend it: not due"

        clock[0] = ends + 10
        for der in (plain, with_nonce):
            expired = asyncio.run(answer(der))
            assert expired.status == "internalError"
            assert statuses(expired.der) == "internal_error"
        assert responder.due_for_refresh(clock[0]) == []
    finally:
        responder.close()


def test_clock_set_back_no_answer_from_the_future(pki, tmp_path, monkeypatch):
    """Answers signed while the clock was an hour ahead (a VM booted ahead, then put
    right) have a thisUpdate clients refuse as not yet valid: not served, and due for
    re-signing at once rather than near their far nextUpdate."""
    import ocsp_responder.responses as responses_module

    responder = Responder(config_from_dict(base_config(pki, response_validity=3600, refresh_margin=600)))
    responder.load_indexes()
    right = time.time()
    clock = [right + 3600]
    monkeypatch.setattr(responses_module.time, "time", lambda: clock[0])
    plain = ocsp_request_der(pki, pki.good, nonce=False, tmp=tmp_path)

    async def answer(der):
        return await responder.answer(der)

    try:
        ahead = asyncio.run(answer(plain))
        assert ahead.status == "good" and not ahead.cache_hit
        assert asyncio.run(answer(plain)).cache_hit  # while the clock is ahead, it is served
        clock[0] = right
        assert [entry.serial for _issuer, _cert_id, entry in responder.due_for_refresh(clock[0])] == [
            int(pki.good.serial, 16)]
        again = asyncio.run(answer(plain))
        assert not again.cache_hit
        assert statuses(again.der)["responses"][0]["this_update"].native.timestamp() <= right
        assert asyncio.run(answer(plain)).cache_hit
        assert responder.due_for_refresh(clock[0]) == []
    finally:
        responder.close()


def test_late_first_index_load_fills_the_cache_as_start_up_does(pki_copy, tmp_path):
    """An index that appears (or first parses) after start-up: the pre-signing is bounded
    by cache_max_entries, newest first, as at start-up, not every serial of it."""
    index = pki_copy.intermediate.index
    content = index.read_bytes()
    index.unlink()
    config = config_from_dict(base_config(pki_copy, cache_max_entries=2, presign_hash_algorithms=["sha1"]))
    responder = Responder(config)
    responder.load_indexes()
    assert not responder.issuers[0].source.loaded
    queued = []

    async def scenario():
        responder._presign_queue = asyncio.Queue()
        index.write_bytes(content)
        await responder.reload(force=False)
        while not responder._presign_queue.empty():
            queued.append(responder._presign_queue.get_nowait()[2])

    try:
        asyncio.run(scenario())
    finally:
        responder.close()
    table = list(responder.issuers[0].source.table)
    assert len(table) > 2
    assert queued == table[::-1][:2], (queued, table)


def test_nonce_answers_within_one_second_share_only_what_may_be_shared(pki_copy, tmp_path, monkeypatch):
    """Live answers built within one second reuse the signed fields before the extensions
    (responder ID, producedAt, the single responses): each still echoes its own nonce, and
    a revocation read, or a signer installed, within that second gets a new build."""
    import ocsp_responder.responses as responses_module
    from ocsp_responder.signer import load_certificate, load_signer

    frozen = time.time()
    monkeypatch.setattr(responses_module.time, "time", lambda: frozen)
    responder = Responder(config_from_dict(base_config(pki_copy)))
    responder.load_indexes()
    builds = []
    build = responder._tbs_head
    monkeypatch.setattr(responder, "_tbs_head", lambda *args: builds.append(args[0]) or build(*args))
    leaf = pki_copy.good
    requests = [ocsp_request_der(pki_copy, leaf, nonce=True, tmp=tmp_path) for _request in range(3)]
    issuer = responder.issuers[0]

    async def scenario():
        first = [await responder.answer(der) for der in requests[:2]]
        assert len(builds) == 1, "the second answer reuses the first one's fields"
        pki_copy.intermediate.revoke(leaf, "keyCompromise")
        await responder.reload()
        revoked = await responder.answer(requests[0])
        assert len(builds) == 2, "a new status is a new build"
        issuer.signer = load_signer(issuer.config, load_certificate(issuer.config.ca_cert))
        rotated = await responder.answer(requests[2])
        assert builds[-1] is issuer.signer and len(builds) == 3, "a new signer is a new build"
        return first + [revoked, rotated]

    try:
        answers = asyncio.run(scenario())
    finally:
        responder.close()
    data = [statuses(answer.der) for answer in answers]
    sent = [ocsp.OCSPRequest.load(der)["tbs_request"]["request_extensions"][0]["extn_value"].native
            for der in requests]
    echoed = [tbs["response_extensions"][0]["extn_value"].native for tbs in data]
    assert len(set(sent)) == 3
    assert echoed == [sent[0], sent[1], sent[0], sent[2]]
    assert len({tbs["produced_at"].native for tbs in data}) == 1
    assert [tbs["responses"][0]["cert_status"].name for tbs in data] == ["good", "good", "revoked", "revoked"]


def one_worker_responder(pki, cores: int, **overrides) -> Responder:
    """A one-worker Responder made while this process may use only its first ``cores``
    cores: it counts them when it is made (systemd CPUAffinity=, taskset)."""
    allowed = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, sorted(allowed)[:cores])
        responder = Responder(config_from_dict(base_config(pki, workers=1, **overrides)))
    finally:
        os.sched_setaffinity(0, allowed)
    responder.load_indexes()
    return responder


def record_signing(responder: Responder, note) -> None:
    """Call ``note()`` whenever the responder signs a live answer, where it signs it."""
    sign = responder.sign

    def recording_sign(*args):
        note()
        return sign(*args)

    responder.sign = recording_sign


@pytest.mark.parametrize("cores", [1, 2])
def test_one_worker_signs_rsa_on_threads_only_with_several_usable_cores(pki, tmp_path, cores):
    """The cores the process may use (systemd CPUAffinity=, taskset) decide, not the machine's:
    on a single core the thread hand-off would only add cost."""
    if len(os.sched_getaffinity(0)) < cores:
        pytest.skip(f"needs {cores} usable cores")
    signed_in = []
    responder = one_worker_responder(pki, cores)
    record_signing(responder, lambda: signed_in.append(threading.current_thread().name))
    try:
        answer = asyncio.run(responder.answer(ocsp_request_der(pki, pki.good, nonce=True, tmp=tmp_path)))
    finally:
        responder.close()
    assert answer.status == "good"
    assert len(signed_in) == 1
    if cores == 1:
        assert signed_in == [threading.main_thread().name]
    else:
        assert signed_in[0].startswith("ocsp-sign")


def test_requests_arriving_together_are_all_signed_before_any_answer_leaves(pki, tmp_path):
    """Answers then go out back to back instead of one per signature (benchmarks: fewer
    wake-ups of idle clients, less kernel time per live answer)."""
    events = []
    responder = one_worker_responder(pki, 1)  # signing inline, on the event loop
    record_signing(responder, lambda: events.append("signed"))

    async def answered(der):
        answer = await responder.answer(der)
        events.append(f"answered {answer.status}")

    requests = [ocsp_request_der(pki, pki.good, nonce=True, tmp=tmp_path) for _request in range(3)]

    async def together():
        await asyncio.gather(*(answered(der) for der in requests))

    try:
        asyncio.run(together())
    finally:
        responder.close()
    assert events == ["signed"] * 3 + ["answered good"] * 3


def test_requests_arriving_together_are_parsed_before_any_is_signed(pki, tmp_path):
    """Their signatures are then made back to back (RSA signatures interleaved with the
    Python work of the next request cost more CPU, docs/benchmarks.md); a request cancelled
    before its turn (its client gone) is not signed at all."""
    events = []
    responder = one_worker_responder(pki, 1)  # signing inline, on the event loop
    record_signing(responder, lambda: events.append("signed"))
    parse = responder._request_parser.parse  # pylint: disable=protected-access

    def recording_parse(der):
        events.append("parsed")
        return parse(der)

    responder._request_parser.parse = recording_parse  # pylint: disable=protected-access
    requests = [ocsp_request_der(pki, pki.good, nonce=True, tmp=tmp_path) for _request in range(4)]

    async def together():
        answers = await asyncio.gather(*(responder.answer(der) for der in requests[:3]))
        assert [answer.status for answer in answers] == ["good"] * 3
        events.append("--")
        tasks = [asyncio.create_task(responder.answer(der)) for der in requests[2:]]
        await asyncio.sleep(0)  # both parsed and queued for signing, the signing not yet run
        tasks[0].cancel()
        done = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(done[0], asyncio.CancelledError) and done[1].status == "good", done
        assert responder._live_in_flight == 0  # pylint: disable=protected-access

    try:
        asyncio.run(together())
    finally:
        responder.close()
    assert events == ["parsed"] * 3 + ["signed"] * 3 + ["--"] + ["parsed"] * 2 + ["signed"], events


def test_live_signing_goes_on_after_a_loop_ended_with_signatures_queued(pki, tmp_path):
    """A request parsed and queued for signing in an event loop that then stopped (tests run
    several loops on one Responder) must neither leave the next loop's requests waiting for a
    signing turn never scheduled there nor be lost when its own loop runs again."""
    responder = one_worker_responder(pki, 1)
    stopped = asyncio.new_event_loop()
    try:
        task = stopped.create_task(responder.answer(ocsp_request_der(pki, pki.good, nonce=True, tmp=tmp_path)))
        stopped.call_soon(stopped.stop)  # one turn: the request is parsed and queued, not signed
        stopped.run_forever()
        assert not task.done()

        async def answered():
            return await asyncio.wait_for(
                responder.answer(ocsp_request_der(pki, pki.good, nonce=True, tmp=tmp_path)), timeout=10)

        assert asyncio.run(answered()).status == "good"
        assert stopped.run_until_complete(asyncio.wait_for(task, timeout=10)).status == "good"
    finally:
        stopped.close()
        responder.close()


def test_a_burst_signed_on_the_event_loop_is_answered_not_refused(pki, tmp_path):
    """max_live_signings bounds the signing threads; signatures made on the event loop are
    made in turn (nothing else runs meanwhile), so a burst larger than the bound arriving in
    one turn is signed, as when each request was signed as it was parsed."""
    responder = one_worker_responder(pki, 1, limits={"max_live_signings": 2})
    answers = answers_to_burst(responder, [ocsp_request_der(pki, pki.good, nonce=True, tmp=tmp_path)
                                           for _request in range(5)])
    assert [answer.status for answer in answers] == ["good"] * 5


def test_requests_remembered_by_their_bytes_are_small_and_well_formed(pki, tmp_path):
    """The memos keyed by what a client sends (GET path -> DER, request DER -> cache key)
    keep only requests of the size real clients send whose answers are kept: a client
    varying a big requestorName, sending random base64 paths or asking about other CAs
    cannot fill memory."""
    from asn1crypto import ocsp as asn1_ocsp, x509 as asn1_x509
    from ocsp_responder.http import HttpFrontend

    responder = Responder(config_from_dict(base_config(pki)))
    responder.load_indexes()
    frontend = HttpFrontend(responder.config, responder)
    small = ocsp_request_der(pki, pki.good, nonce=False, tmp=tmp_path)
    parsed = asn1_ocsp.OCSPRequest.load(small)
    big = asn1_ocsp.OCSPRequest({"tbs_request": {
        "requestor_name": asn1_x509.GeneralName(name="rfc822_name", value="x" * 2000 + "@example.com"),
        "request_list": parsed["tbs_request"]["request_list"]}}).dump()

    not_ours = ocsp_request_der(pki, pki.leaves["stranger"], nonce=False, issuer_cert=pki.other_ca.cert, tmp=tmp_path)

    def get_path(der: bytes) -> str:
        return "/" + base64.b64encode(der).decode()

    async def scenario():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(frontend.make_server(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        paths = [get_path(small), get_path(big), get_path(os.urandom(300)), "/" + "QUJD" * 100,
                 get_path(not_ours)]  # an issuer not served: nothing cached would ever answer it
        try:
            for path in paths:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(f"GET {path} HTTP/1.0\r\n\r\n".encode())
                assert (await reader.read()).startswith(b"HTTP/1.0 200")  # OCSP answers, errors included
                writer.close()
        finally:
            server.close()
            await server.wait_closed()
        return paths

    try:
        paths = asyncio.run(scenario())
    finally:
        responder.close()
    assert len(big) > 2000
    assert list(frontend._get_der) == [paths[0]]
    assert list(responder._known_requests) == [small]
