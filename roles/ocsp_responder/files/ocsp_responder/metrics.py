"""Prometheus metrics (prometheus_client for the exposition format).

Counters and the latency histogram are plain Python numbers in each worker: a
prometheus_client value takes a lock per increment (and, in its multiprocess mode, a pid
check and an mmap write), which cost about 15 % of a cached answer. With ``workers > 1``
each worker publishes its counts to a JSON file in a directory private to the master
(``PUBLISH_INTERVAL``, and at exit); the worker answering a scrape adds its live counts
to its siblings' last published ones, so a sibling's latest second may be missing from a
scrape but no count is ever lost or double-counted. Files of dead workers stay: counters
never go down.

Index state (entries, data age, load errors) is read at scrape time from the answering
worker, which watches the same files as its siblings."""
from __future__ import annotations

import asyncio
import bisect
import json
import logging
import os
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

log = logging.getLogger("ocsp_responder.metrics")

LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
PUBLISH_INTERVAL = 1.0
_BUCKET_LABELS = [repr(bound) for bound in LATENCY_BUCKETS] + ["+Inf"]

# name (without _total): (help, label names)
COUNTERS = {
    "ocsp_requests": ("HTTP requests by method and outcome (OCSP status, or the HTTP status for requests "
                      "refused before OCSP parsing)", ("method", "status")),
    "ocsp_cache_hits": ("Requests answered from a pre-signed response", ()),
    "ocsp_cache_misses": ("Cacheable requests that needed a live signature", ()),
    "ocsp_signings": ("Responses signed, by kind (live: for a request; presign: ahead of requests or refresh)",
                      ("issuer", "kind")),
    "ocsp_index_reloads": ("Index loads by result", ("issuer", "result")),
    "ocsp_signer_reloads": ("Signer reloads (SIGHUP) by result", ("issuer", "result")),
}


class Counts:
    """One process's counters and latency histogram, as plain numbers."""

    def __init__(self):
        self.counters: Dict[str, Dict[tuple, float]] = {name: {} for name in COUNTERS}
        self.requests = self.counters["ocsp_requests"]
        # method -> [observations per bucket (not cumulative), the last one +Inf]; method -> sum
        self.latency: Dict[str, list] = {}
        self.latency_sum: Dict[str, float] = {}
        self.cache_hits = 0  # bumped in the hot path, folded into counters on read

    def add(self, name: str, labels: tuple = (), amount: float = 1) -> None:
        series = self.counters[name]
        series[labels] = series.get(labels, 0) + amount

    def snapshot(self) -> dict:
        counters = {name: [list(labels) + [value] for labels, value in series.items()]
                    for name, series in self.counters.items()}
        counters["ocsp_cache_hits"].append([self.cache_hits])
        return {"counters": counters,
                "latency": {method: [buckets, self.latency_sum[method]] for method, buckets in self.latency.items()}}

    def merge(self, snapshot: dict) -> None:
        for name, rows in snapshot.get("counters", {}).items():
            if name in self.counters:
                for row in rows:
                    self.add(name, tuple(row[:-1]), row[-1])
        for method, (buckets, total) in snapshot.get("latency", {}).items():
            mine = self.latency.setdefault(method, [0] * len(buckets))
            for position, count in enumerate(buckets):
                mine[position] += count
            self.latency_sum[method] = self.latency_sum.get(method, 0.0) + total


class _Collector:
    def __init__(self, metrics: "Metrics"):
        self.metrics = metrics

    def collect(self):
        yield from self._counters()
        yield from self._issuer_state()

    def _counters(self):
        counts = Counts()
        counts.merge(self.metrics.counts.snapshot())
        for snapshot in self.metrics.sibling_snapshots():
            counts.merge(snapshot)
        for name, (help_text, label_names) in COUNTERS.items():
            family = CounterMetricFamily(name, help_text, labels=label_names)
            for labels, value in sorted(counts.counters[name].items()):
                family.add_metric(list(labels), value)
            if not label_names and not counts.counters[name]:
                family.add_metric([], 0)
            yield family
        latency = HistogramMetricFamily("ocsp_request_duration_seconds", "Time from request to response",
                                        labels=["method"])
        for method, buckets in sorted(counts.latency.items()):
            cumulative, running = [], 0
            for label, count in zip(_BUCKET_LABELS, buckets):
                running += count
                cumulative.append((label, running))
            latency.add_metric([method], cumulative, counts.latency_sum[method])
        yield latency

    def _issuer_state(self):
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
        _ok, report = responder.health()
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
    """``shared_dir``: where the workers of one master publish their counts (None: one
    process, nothing published)."""

    def __init__(self, shared_dir: Optional[str] = None):
        self.counts = Counts()
        self.shared_dir = Path(shared_dir) if shared_dir else None
        self.responder = None
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(self))
        self._seen_reloads: Dict[str, Tuple[int, int]] = {}
        self._seen_signer_reloads: Dict[str, Tuple[int, int]] = {}
        self._published: Optional[str] = None

    # --- counting (event loop thread only) -------------------------------------------

    def observe_request(self, method: str, status: str, seconds: float) -> None:
        counts = self.counts
        requests = counts.requests
        key = (method, status)
        requests[key] = requests.get(key, 0) + 1
        buckets = counts.latency.get(method)
        if buckets is None:
            buckets = counts.latency[method] = [0] * (len(LATENCY_BUCKETS) + 1)
            counts.latency_sum[method] = 0.0
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        counts.latency_sum[method] += seconds

    def count(self, name: str, *labels: str, amount: float = 1) -> None:
        self.counts.add(name, labels, amount)

    def observe_reloads(self, issuer) -> None:
        source = issuer.source
        self._seen_reloads[issuer.name] = self._count_new(
            "ocsp_index_reloads", issuer.name, self._seen_reloads.get(issuer.name, (0, 0)),
            (source.reloads_ok, source.reloads_failed))

    def observe_signer_reloads(self, issuer) -> None:
        self._seen_signer_reloads[issuer.name] = self._count_new(
            "ocsp_signer_reloads", issuer.name, self._seen_signer_reloads.get(issuer.name, (0, 0)),
            (issuer.signer_reloads_ok, issuer.signer_reloads_failed))

    def _count_new(self, name: str, issuer_name: str, before: Tuple[int, int], now: Tuple[int, int]):
        for result, old, new in zip(("ok", "error"), before, now):
            if new > old:
                self.count(name, issuer_name, result, amount=new - old)
        return now

    # --- workers: publishing and reading -----------------------------------------------

    def _own_file(self) -> Path:
        return self.shared_dir / f"worker-{os.getpid()}.json"

    def publish(self) -> None:
        if self.shared_dir is None:
            return
        text = json.dumps(self.counts.snapshot())
        if text == self._published:
            return  # an idle worker does not rewrite its file every second
        target = self._own_file()
        temporary = target.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, target)  # a reader never sees half a file
        self._published = text

    async def run_publisher(self) -> None:
        """Runs until cancelled (workers only)."""
        if self.shared_dir is None:
            return
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL)
            try:
                self.publish()
            except OSError as exc:
                log.warning("cannot publish metrics for the other workers: %s", exc)

    def sibling_snapshots(self):
        if self.shared_dir is None:
            return
        own = self._own_file()
        for path in self.shared_dir.glob("worker-*.json"):
            if path == own:
                continue
            try:
                yield json.loads(path.read_text())
            except (OSError, ValueError):
                continue  # a worker that died mid-way through its first write

    def exposition(self) -> Tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
