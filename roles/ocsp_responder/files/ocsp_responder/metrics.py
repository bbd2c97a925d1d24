"""Prometheus metrics (prometheus_client).

Counters and the latency histogram are process-wide; with ``workers > 1`` they live in
prometheus_client's multiprocess files (PROMETHEUS_MULTIPROC_DIR, set by __main__ before
this module is imported) and the scrape sums every worker. Index state (entries, data
age, load errors) is read at scrape time from the answering worker, which watches the
same files as its siblings."""
from __future__ import annotations

import os
import time
from typing import Dict, Tuple

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram,
                               disable_created_metrics, generate_latest)
from prometheus_client.core import GaugeMetricFamily

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _IssuerStateCollector:
    def __init__(self, metrics: "Metrics"):
        self.metrics = metrics

    def collect(self):
        responder = self.metrics.responder
        if responder is None:
            return
        now = time.time()
        entries = GaugeMetricFamily("ocsp_index_entries", "Certificates in the index table in service", labels=["issuer"])
        age = GaugeMetricFamily("ocsp_index_data_age_seconds",
                                "Seconds since the index file in service was last modified", labels=["issuer"])
        loaded = GaugeMetricFamily("ocsp_index_last_load_timestamp_seconds",
                                   "When the index in service was loaded (POSIX time)", labels=["issuer"])
        error = GaugeMetricFamily("ocsp_index_load_error",
                                  "1 while the current index file cannot be loaded (last good data in service)",
                                  labels=["issuer"])
        signer_error = GaugeMetricFamily("ocsp_signer_load_error",
                                         "1 while the signer files on disk failed the checks at the last SIGHUP "
                                         "(previous signer in service)", labels=["issuer"])
        signer_expiry = GaugeMetricFamily("ocsp_signer_not_after_timestamp_seconds",
                                          "notAfter of the signer certificate in service (POSIX time)",
                                          labels=["issuer"])
        healthy = GaugeMetricFamily("ocsp_issuer_healthy", "1 when the issuer is loaded and fresh", labels=["issuer"])
        ok, report = responder.health()
        for issuer in responder.issuers:
            source = issuer.source
            entries.add_metric([issuer.name], len(source.table))
            if source.index_mtime is not None:
                age.add_metric([issuer.name], max(0.0, now - source.index_mtime))
            if source.loaded_at is not None:
                loaded.add_metric([issuer.name], source.loaded_at)
            error.add_metric([issuer.name], 1 if source.error else 0)
            signer_error.add_metric([issuer.name], 1 if issuer.signer_error else 0)
            signer_expiry.add_metric([issuer.name], issuer.signer.valid_until)
            healthy.add_metric([issuer.name], 1 if report[issuer.name]["ok"] else 0)
        cache = GaugeMetricFamily("ocsp_cache_entries", "Pre-signed responses held by this worker")
        cache.add_metric([], len(responder.cache))
        yield from (entries, age, loaded, error, signer_error, signer_expiry, healthy, cache)


class Metrics:
    def __init__(self):
        disable_created_metrics()  # *_created series only double the scrape size here
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        # Our own registry: no default process/platform collectors mixed with worker sums.
        self.registry = CollectorRegistry(auto_describe=True)
        register = None if self.multiprocess else self.registry
        self.requests = Counter("ocsp_requests_total", "HTTP requests by method and outcome (OCSP status, or "
                                "the HTTP status for requests refused before OCSP parsing)",
                                ["method", "status"], registry=register)
        self.latency = Histogram("ocsp_request_duration_seconds", "Time from request to response",
                                 ["method"], buckets=LATENCY_BUCKETS, registry=register)
        self.cache_hits = Counter("ocsp_cache_hits_total", "Requests answered from a pre-signed response",
                                  registry=register)
        self.cache_misses = Counter("ocsp_cache_misses_total", "Cacheable requests that needed a live signature",
                                    registry=register)
        self.signings = Counter("ocsp_signings_total", "Responses signed, by kind (live: for a request; "
                                "presign: ahead of requests or refresh)", ["issuer", "kind"], registry=register)
        self.reloads = Counter("ocsp_index_reloads_total", "Index loads by result", ["issuer", "result"],
                               registry=register)
        self.signer_reloads = Counter("ocsp_signer_reloads_total", "Signer reloads (SIGHUP) by result",
                                      ["issuer", "result"], registry=register)
        self.responder = None
        self._request_children: Dict[Tuple[str, str], tuple] = {}
        self._seen_reloads: Dict[str, Tuple[int, int]] = {}
        self._seen_signer_reloads: Dict[str, Tuple[int, int]] = {}
        if self.multiprocess:
            from prometheus_client import multiprocess
            multiprocess.MultiProcessCollector(self.registry)
        self.registry.register(_IssuerStateCollector(self))

    def observe_reloads(self, issuer) -> None:
        source = issuer.source
        ok_before, failed_before = self._seen_reloads.get(issuer.name, (0, 0))
        if source.reloads_ok > ok_before:
            self.reloads.labels(issuer=issuer.name, result="ok").inc(source.reloads_ok - ok_before)
        if source.reloads_failed > failed_before:
            self.reloads.labels(issuer=issuer.name, result="error").inc(source.reloads_failed - failed_before)
        self._seen_reloads[issuer.name] = (source.reloads_ok, source.reloads_failed)

    def observe_signer_reloads(self, issuer) -> None:
        ok_before, failed_before = self._seen_signer_reloads.get(issuer.name, (0, 0))
        if issuer.signer_reloads_ok > ok_before:
            self.signer_reloads.labels(issuer=issuer.name, result="ok").inc(issuer.signer_reloads_ok - ok_before)
        if issuer.signer_reloads_failed > failed_before:
            self.signer_reloads.labels(issuer=issuer.name, result="error").inc(
                issuer.signer_reloads_failed - failed_before)
        self._seen_signer_reloads[issuer.name] = (issuer.signer_reloads_ok, issuer.signer_reloads_failed)

    def observe_request(self, method: str, status: str, seconds: float) -> None:
        children = self._request_children.get((method, status))
        if children is None:  # label lookups cost more than the increments: keep the children
            children = self._request_children[(method, status)] = (
                self.requests.labels(method=method, status=status), self.latency.labels(method=method))
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> Tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
