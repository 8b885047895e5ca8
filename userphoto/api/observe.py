"""The operator's view of a serving process: one access-log line per request, and metrics.

Access log (`[server] access_log = "json" | "logfmt" | "off"`, default json; to stderr unless
`[server] access_log_file` names a file). A line holds the time, duration, request id,
client address (`api/proxies.py`), method, route template, target user id, status, bytes,
viewer kind and viewer's user id, and cache hit/miss — never a header, a token, a path with
an address in it, or a query string (so no signed URL's signature). Every request has its
line, whatever its fate (a bug's 500 included). Lines are formatted and written in batches,
at least every second (the change follower flushes them); a line's fields come in this
order: time, ms, request_id, client, then the rest.

Metrics in the Prometheus text format (`GET /metrics`, for admins or `[server] metrics_allow`
address ranges), rendered by prometheus_client: requests by route and status, latency
histograms, cache hits, misses, evictions and invalidations, cache bytes, the miss pools'
queue depths, miss build time and the store read time within it (all counted by hand on the
hot path, see `Metrics`); the image worker pool; the directory sync as recorded in the store;
the process; the version.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .. import __version__

if TYPE_CHECKING:
    from ..config import Settings
    from .server import PhotoServer

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
FLUSH_RECORDS = 256
MEMO_LIMIT = 4096  # formatted line tails remembered (they repeat: same route, user, size)

# What one request leaves behind: (monotonic end, seconds taken, what, request id, client
# address) where `what` is (method, route template, target user id, status, bytes, cache
# state, viewer kind, viewer's user id): the part that repeats, so its text is memoized.
What = tuple[str, str, str | None, int, int, str, str | None, str | None]
Record = tuple[float, float, What, str, str]


class Requests:
    """Per-request records, folded in batches into the metrics and the access log.

    Serving a request only appends one tuple (a deque append: safe from any thread without a
    lock); every `FLUSH_RECORDS` requests, at least once a second (the change follower calls
    `flush`) and before /metrics renders, the batch is counted and its log lines written.
    Formatting in batches, with the repeating part of a line memoized, keeps the access log
    to a fraction of a µs per request on the hot path.
    """

    def __init__(self, metrics: Metrics, access: AccessLog):
        self.metrics = metrics
        self.access = access
        self.pending: deque[Record] = deque()
        self.lock = threading.Lock()  # one flush at a time (the loop and the follower)

    def record(self, began: float, what: What, request_id: str, client: str) -> None:
        now = time.perf_counter()
        pending = self.pending
        pending.append((now, now - began, what, request_id, client))
        if len(pending) >= FLUSH_RECORDS:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            pending = self.pending
            batch = [pending.popleft() for _ in range(len(pending))]
            if batch:
                self.metrics.fold(batch)
                self.access.write(batch)


class AccessLog:
    def __init__(self, fmt: str, fd: int):
        if fmt not in ("json", "logfmt", "off"):
            raise ValueError(f"[server] access_log must be json, logfmt or off (got {fmt!r})")
        self.fmt = fmt
        self.fd = fd
        self._second = -1
        self._stamp = ""
        self._tails: dict[tuple, str] = {}
        # Wall-clock time of a perf_counter reading (one clock read per request, not two).
        self._offset = time.time() - time.perf_counter()

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessLog:
        fmt = str(settings.get("server", "access_log", "json"))
        target = settings.get("server", "access_log_file", "")
        fd = 2
        if target and fmt != "off":
            fd = os.open(str(target), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return cls(fmt, fd)

    def _time(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((now - second) * 1000):03d}Z"

    def _tail(self, what: What) -> str:
        """The part of a line after time, duration, request id and client (it repeats:
        memoized)."""
        method, route, target, status, size, cache, viewer, viewer_id = what
        # Method, route template and user ids are JSON-quoted.
        if self.fmt == "json":
            return (
                f'"method":{json.dumps(method)},"route":{json.dumps(route)},'
                f'"user":{json.dumps(target)},"status":{status},"bytes":{size},'
                f'"viewer":"{viewer or "-"}","viewer_id":{json.dumps(viewer_id)},'
                f'"cache":"{cache}"}}\n'
            )
        return (
            f"method={_logfmt(method)} route={_logfmt(route)} "
            f"user={_logfmt(target or '-')} status={status} bytes={size} "
            f"viewer={viewer or '-'} viewer_id={_logfmt(viewer_id or '-')} cache={cache}\n"
        )

    def write(self, batch: list[Record]) -> None:
        if self.fmt == "off":
            return
        tails = self._tails
        offset = self._offset
        lines = []
        # Request ids are cleaned (`logs.request_id`) and clients are IP addresses: no quoting.
        # %-formatting in one loop, the time's second formatted once per second (`_time`):
        # the log's share of a cached hit is this loop's.
        head = (
            '{"time":"%s.%03dZ","ms":%.3f,"request_id":"%s","client":"%s",%s'
            if self.fmt == "json"
            else "time=%s.%03dZ ms=%.3f request_id=%s client=%s %s"
        )
        second, stamp = self._second, self._stamp
        for now, seconds, what, request_id, client in batch:
            tail = tails.get(what)
            if tail is None:
                tail = self._tail(what)
                if len(tails) < MEMO_LIMIT and len(tail) <= 512:
                    tails[what] = tail
            at = now + offset
            if int(at) != second:
                self._time(at)
                second, stamp = self._second, self._stamp
            millis = int((at - second) * 1000)
            lines.append(head % (stamp, millis, seconds * 1000, request_id, client or "-", tail))
        data = "".join(lines).encode()
        try:
            while data:
                data = data[os.write(self.fd, data) :]
        except OSError:
            pass  # a closed stderr must not take requests down with it


def _logfmt(value: str) -> str:
    if value and all(c.isalnum() or c in "/._:{}~+=-@$" for c in value):
        return value
    return json.dumps(value)


class Histogram:
    """A latency histogram counted by hand (a bisect and three adds: see `Requests`)."""

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, as prometheus_client's families take them."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class Metrics:
    """/metrics, rendered by prometheus_client from this process's registry.

    The per-request counters stay hand-rolled (`Requests` folds them in batches): the
    library's own instruments cost 3-7x as much per request, a sizeable share of a cached
    answer (bench/metrics_cost.py, BENCHMARKS.md). `ServingCollector` hands them to the
    library at scrape time; process metrics are the library's own collectors.
    """

    def __init__(self, server: PhotoServer):
        self.server = server
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.builds = Histogram()
        self.store_reads = Histogram()
        allow = server.app.settings.get("server", "metrics_allow", ["127.0.0.0/8", "::1/128"])
        self.allow = [ipaddress.ip_network(str(a), strict=False) for a in allow]
        # A registry of this server's own (not the library's global one): several servers
        # may live in one process (tests), each with its own counts.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(ServingCollector(self))
        self.registry.register(WorkersCollector(server))
        self.registry.register(SyncCollector(server))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        build = Info("userphoto_build", "The running userphoto.", registry=self.registry)
        build.info({"version": __version__, "pid": str(os.getpid())})

    def fold(self, batch: list[Record]) -> None:
        """Count a batch of request records (see `Requests`)."""
        requests = self.requests
        latency = self.latency
        for _now, seconds, what, _id, _client in batch:
            route, status = what[1], what[3]
            key = (route, status)
            requests[key] = requests.get(key, 0) + 1
            histogram = latency.get(route)
            if histogram is None:
                histogram = latency[route] = Histogram()
            histogram.observe(seconds)

    def observe_build(self, seconds: float, store_seconds: float) -> None:
        self.builds.observe(seconds)
        self.store_reads.observe(store_seconds)

    def allowed(self, client: Any) -> bool:
        try:
            address = ipaddress.ip_address(client[0] if isinstance(client, tuple) else client)
        except (ValueError, TypeError, IndexError):
            return False
        return any(address in net for net in self.allow)

    def render(self) -> str:
        """The Prometheus text format (reads the store's sync status: not on the loop)."""
        self.server.requests.flush()
        return generate_latest(self.registry).decode()


def _histogram(name: str, help_text: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, help_text, labels=labels)


class ServingCollector(Collector):
    """The hot path's hand-rolled counters, and the caches' and miss pools' state."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self.metrics
        server = metrics.server
        cache = server.cache
        requests = CounterMetricFamily(
            "userphoto_requests",
            "Requests answered, by route template and status.",
            labels=["route", "status"],
        )
        for (route, status), n in sorted(dict(metrics.requests).items()):  # a copy: folds go on
            requests.add_metric([route, str(status)], n)
        yield requests
        latency = _histogram(
            "userphoto_request_seconds",
            "Time from request to answer, by route template.",
            ["route"],
        )
        for route, histogram in sorted(dict(metrics.latency).items()):
            latency.add_metric([route], histogram.buckets(), histogram.total)
        yield latency
        for name, histogram, help_text in (
            ("build", metrics.builds, "Time to build a cache miss (store reads, images)."),
            ("store_read", metrics.store_reads, "Store read time of each cache miss."),
        ):
            family = _histogram(f"userphoto_{name}_seconds", help_text, [])
            family.add_metric([], histogram.buckets(), histogram.total)
            yield family
        for name, value, help_text in (
            ("cache_hits", cache.hits, "Photo answers served from the cache."),
            ("cache_misses", cache.misses, "Photo answers built."),
            ("cache_evictions", cache.evictions, "Entries evicted (LRU)."),
            ("cache_invalidations", cache.invalidations, "Entries dropped by changes."),
        ):
            yield CounterMetricFamily(f"userphoto_{name}", help_text, value=value)
        for name, value, help_text in (
            ("cache_entries", len(cache.answers), "Cached answers."),
            ("cache_bytes", cache.bytes, "Bytes held by cached answers, keys included."),
            ("miss_queue_depth", server.pool.depth, "Member misses waiting/building."),
            (
                "outside_miss_queue_depth",
                server.outside_pool.depth,
                "Anonymous and partner misses waiting or building.",
            ),
            ("change_seq", server.follower.seq, "Last change-feed seq applied."),
        ):
            yield GaugeMetricFamily(f"userphoto_{name}", help_text, value=value)


class WorkersCollector(Collector):
    """The image worker pool (`workers.WorkerPool.stats`)."""

    def __init__(self, server: PhotoServer):
        self.server = server

    def collect(self) -> Iterator[Metric]:
        stats = getattr(self.server.app.pool, "stats", None)
        if stats is None:
            return
        now = stats()
        for name, key, help_text in (
            ("image_workers", "size", "Image worker processes configured."),
            ("image_workers_alive", "alive", "Image worker processes running now."),
            ("image_workers_busy", "busy", "Image jobs running now."),
            ("image_workers_queued", "queued", "Image jobs waiting for a free worker."),
        ):
            yield GaugeMetricFamily(f"userphoto_{name}", help_text, value=now[key])
        refused = CounterMetricFamily(
            "userphoto_image_refusals",
            "Image jobs refused by the pool, by reason (queue_full, queue_timeout, too_slow, "
            "too_big, crashed).",
            labels=["reason"],
        )
        for reason in REFUSAL_REASONS:
            refused.add_metric([reason], now["refused"].get(reason, 0))
        yield refused
        yield CounterMetricFamily(
            "userphoto_image_worker_kills", "Image workers killed mid-job.", value=now["kills"]
        )


REFUSAL_REASONS = ("queue_full", "queue_timeout", "too_slow", "too_big", "crashed")
SYNC_MODES = ("full", "delta")


class SyncCollector(Collector):
    """The directory sync, as its runs recorded it in the store (`directory.status`): whichever
    node or process ran it, every server reports the same facts."""

    def __init__(self, server: PhotoServer):
        self.server = server

    def collect(self) -> Iterator[Metric]:
        from ..directory import status as sync_status

        try:
            recorded = sync_status.load(self.server.app.store)
        except Exception:  # the store is down: the scrape still answers, without these
            return
        finished = GaugeMetricFamily(
            "userphoto_directory_sync_last_run_timestamp_seconds",
            "When the last sync run of each mode finished (Unix time).",
            labels=["mode"],
        )
        succeeded = GaugeMetricFamily(
            "userphoto_directory_sync_last_success_timestamp_seconds",
            "When the last successful sync run of each mode finished (Unix time).",
            labels=["mode"],
        )
        failed = GaugeMetricFamily(
            "userphoto_directory_sync_failed",
            "1 when the last sync run of this mode failed.",
            labels=["mode"],
        )
        changes = GaugeMetricFamily(
            "userphoto_directory_sync_changes",
            "Changes the last sync run of this mode applied (users added, updated, marked "
            "gone or back; photos new or removed).",
            labels=["mode"],
        )
        newest = 0.0
        for mode in SYNC_MODES:
            run = recorded.get(mode)
            if isinstance(run, dict):
                ended = _unix(run.get("finished"))
                if ended:
                    finished.add_metric([mode], ended)
                failed.add_metric([mode], 0 if run.get("ok") else 1)
                changes.add_metric([mode], sum(int(run.get(k) or 0) for k in _CHANGE_KEYS))
            ok = _unix(recorded.get(f"last_ok_{mode}"))
            if ok:
                succeeded.add_metric([mode], ok)
                newest = max(newest, ok)
        watch = recorded.get("watch")
        if isinstance(watch, dict) and not watch.get("error"):
            newest = max(newest, _unix(watch.get("heartbeat")))
        yield from (finished, succeeded, failed, changes)
        if newest:
            yield GaugeMetricFamily(
                "userphoto_directory_sync_lag_seconds",
                "Seconds since the directory was last read successfully (a run, or a "
                "healthy `sync --watch` heartbeat).",
                value=max(0.0, time.time() - newest),
            )


_CHANGE_KEYS = ("added", "updated", "gone", "returned", "photos_new", "photos_removed")


def _unix(stamp: Any) -> float:
    if not isinstance(stamp, str):
        return 0.0
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return 0.0
