"""The operator's view of a serving process: one access-log line per request, and metrics.

Access log (`[server] access_log = "json" | "logfmt" | "off"`, default json; to stderr unless
`[server] access_log_file` names a file). A line holds the time, method, route template,
target user id, status, bytes, duration, viewer kind and cache hit/miss — never a header, a
token, a path with an address in it, or a query string (so no signed URL's signature).
Lines are formatted and written in batches, at least every second (the change follower
flushes them); a line's fields come in this order: time, ms, then the rest.

Metrics in the Prometheus text format (`GET /metrics`, for admins or `[server] metrics_allow`
address ranges): requests by route and status, latency histograms, cache hits, misses,
evictions and invalidations, cache bytes, the miss pools' queue depths, miss build time and
the store read time within it.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading
import time
from bisect import bisect_left
from collections import deque
from typing import TYPE_CHECKING, Any

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
        head = (
            '{{"time":"{}","ms":{:.3f},"request_id":"{}","client":"{}",'
            if self.fmt == "json"
            else "time={} ms={:.3f} request_id={} client={} "
        )
        for now, seconds, what, request_id, client in batch:
            tail = tails.get(what)
            if tail is None:
                tail = self._tail(what)
                if len(tails) < MEMO_LIMIT and len(tail) <= 512:
                    tails[what] = tail
            stamp = self._time(now + offset)
            lines.append(head.format(stamp, seconds * 1000, request_id, client or "-") + tail)
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
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1

    def render(self, name: str, labels: str) -> list[str]:
        out = []
        running = 0
        sep = "," if labels else ""
        for bound, count in zip((*BUCKETS, float("inf")), self.counts, strict=True):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f'{name}_bucket{{{labels}{sep}le="{le}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.total:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.n}")
        return out


class Metrics:
    def __init__(self, server: PhotoServer):
        self.server = server
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, Histogram] = {}
        self.builds = Histogram()
        self.store_reads = Histogram()
        allow = server.app.settings.get("server", "metrics_allow", ["127.0.0.0/8", "::1/128"])
        self.allow = [ipaddress.ip_network(str(a), strict=False) for a in allow]

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
        server = self.server
        server.requests.flush()
        cache = server.cache
        lines = [
            "# HELP userphoto_requests_total Requests answered, by route template and status.",
            "# TYPE userphoto_requests_total counter",
        ]
        for (route, status), n in sorted(self.requests.items()):
            lines.append(f'userphoto_requests_total{{route="{route}",status="{status}"}} {n}')
        lines += [
            "# HELP userphoto_request_seconds Time from request to answer, by route template.",
            "# TYPE userphoto_request_seconds histogram",
        ]
        for route, histogram in sorted(self.latency.items()):
            lines += histogram.render("userphoto_request_seconds", f'route="{route}"')
        lines += [
            "# HELP userphoto_build_seconds Time to build a cache miss (store reads, images).",
            "# TYPE userphoto_build_seconds histogram",
            *self.builds.render("userphoto_build_seconds", ""),
            "# HELP userphoto_store_read_seconds Store read time of each cache miss.",
            "# TYPE userphoto_store_read_seconds histogram",
            *self.store_reads.render("userphoto_store_read_seconds", ""),
        ]
        for name, kind, value, help_text in (
            ("cache_hits_total", "counter", cache.hits, "Photo answers served from the cache."),
            ("cache_misses_total", "counter", cache.misses, "Photo answers built."),
            ("cache_evictions_total", "counter", cache.evictions, "Entries evicted (LRU)."),
            (
                "cache_invalidations_total",
                "counter",
                cache.invalidations,
                "Entries dropped by changes.",
            ),
            ("cache_entries", "gauge", len(cache.answers), "Cached answers."),
            ("cache_bytes", "gauge", cache.bytes, "Bytes held by cached answers, keys included."),
            ("miss_queue_depth", "gauge", server.pool.depth, "Member misses waiting/building."),
            (
                "outside_miss_queue_depth",
                "gauge",
                server.outside_pool.depth,
                "Anonymous and partner misses waiting or building.",
            ),
            ("change_seq", "gauge", server.follower.seq, "Last change-feed seq applied."),
        ):
            lines += [
                f"# HELP userphoto_{name} {help_text}",
                f"# TYPE userphoto_{name} {kind}",
                f"userphoto_{name} {value}",
            ]
        return "\n".join(lines) + "\n"
