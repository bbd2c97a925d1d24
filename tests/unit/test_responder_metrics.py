"""Metrics (ocsp_responder.metrics): plain per-worker counts, exposed through
prometheus_client, summed over worker processes through the files they publish."""
from __future__ import annotations

import json
import multiprocessing
import os

from prometheus_client.parser import text_string_to_metric_families

from ocsp_responder.metrics import LATENCY_BUCKETS, Metrics


def samples(metrics: Metrics) -> dict:
    text = metrics.exposition()[0].decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_counters_and_cumulative_histogram_in_one_process():
    metrics = Metrics()
    metrics.observe_request("GET", "good", 0.0001)
    metrics.observe_request("GET", "good", LATENCY_BUCKETS[1])  # on a bound: counted in that bucket
    metrics.observe_request("GET", "revoked", 3.0)              # above every bound: +Inf only
    metrics.observe_request("POST", "http_415", 0.002)
    metrics.counts.cache_hits += 2
    metrics.count("ocsp_signings", "intermediate", "live")
    got = samples(metrics)
    assert got[("ocsp_requests_total", (("method", "GET"), ("status", "good")))] == 2
    assert got[("ocsp_requests_total", (("method", "GET"), ("status", "revoked")))] == 1
    assert got[("ocsp_requests_total", (("method", "POST"), ("status", "http_415")))] == 1
    assert got[("ocsp_cache_hits_total", ())] == 2
    assert got[("ocsp_cache_misses_total", ())] == 0
    assert got[("ocsp_signings_total", (("issuer", "intermediate"), ("kind", "live")))] == 1

    def bucket(method, bound):
        return got[("ocsp_request_duration_seconds_bucket", (("le", bound), ("method", method)))]

    assert bucket("GET", "0.0002") == 1
    assert bucket("GET", "0.0005") == 2
    assert bucket("GET", "2.5") == 2
    assert bucket("GET", "+Inf") == 3
    assert got[("ocsp_request_duration_seconds_count", (("method", "GET"),))] == 3
    assert abs(got[("ocsp_request_duration_seconds_sum", (("method", "GET"),))] - 3.0006) < 1e-9
    assert bucket("POST", "0.001") == 0 and bucket("POST", "0.0025") == 1


def _sibling_worker(shared_dir: str) -> None:
    metrics = Metrics(shared_dir)
    for _request in range(3):
        metrics.observe_request("POST", "good", 0.001)
    metrics.counts.cache_hits += 3
    metrics.publish()


def test_scrape_sums_the_published_counts_of_sibling_workers(tmp_path):
    context = multiprocessing.get_context("fork")
    for _sibling in range(2):  # each exits after publishing: a dead worker's counts stay counted
        process = context.Process(target=_sibling_worker, args=(str(tmp_path),))
        process.start()
        process.join(10)
        assert process.exitcode == 0
    assert len(list(tmp_path.glob("worker-*.json"))) == 2
    (tmp_path / "worker-1.json").write_text('{"counters": {"ocsp_requ')  # cut short: ignored
    metrics = Metrics(str(tmp_path))
    metrics.observe_request("POST", "good", 0.001)
    metrics.publish()  # its own file is not added a second time
    metrics.observe_request("POST", "good", 0.001)  # live, not yet published
    got = samples(metrics)
    assert got[("ocsp_requests_total", (("method", "POST"), ("status", "good")))] == 8
    assert got[("ocsp_cache_hits_total", ())] == 6
    assert got[("ocsp_request_duration_seconds_count", (("method", "POST"),))] == 8


def test_reload_counters_count_only_new_events():
    class Source:
        reloads_ok, reloads_failed = 2, 0

    class Issuer:
        name, source = "intermediate", Source()
        signer_reloads_ok, signer_reloads_failed = 0, 1

    metrics = Metrics()
    metrics.observe_reloads(Issuer)
    Source.reloads_failed = 1
    metrics.observe_reloads(Issuer)
    metrics.observe_signer_reloads(Issuer)
    metrics.observe_signer_reloads(Issuer)
    got = samples(metrics)
    assert got[("ocsp_index_reloads_total", (("issuer", "intermediate"), ("result", "ok")))] == 2
    assert got[("ocsp_index_reloads_total", (("issuer", "intermediate"), ("result", "error")))] == 1
    assert got[("ocsp_signer_reloads_total", (("issuer", "intermediate"), ("result", "error")))] == 1
    assert ("ocsp_signer_reloads_total", (("issuer", "intermediate"), ("result", "ok"))) not in got


def test_publish_writes_only_what_changed(tmp_path):
    metrics = Metrics(str(tmp_path))
    metrics.observe_request("GET", "good", 0.001)
    metrics.publish()
    published = tmp_path / f"worker-{os.getpid()}.json"
    inode = published.stat().st_ino
    metrics.publish()  # nothing counted since: the file is left alone
    assert published.stat().st_ino == inode
    metrics.observe_request("GET", "good", 0.001)
    metrics.publish()  # a new file renamed over the old one
    assert published.stat().st_ino != inode
    assert json.loads(published.read_text())["counters"]["ocsp_requests"] == [["GET", "good", 2]]
