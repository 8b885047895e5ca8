"""What counting one request costs: userphoto's hand-rolled counters against prometheus_client.

Per request, the hot path appends one record; a batch of records is folded into the request
counter (route, status) and the latency histogram (route). This compares, in one process and
one run, the time per request of:

  hand-rolled   `observe.Requests.record` + the batched `Metrics.fold` (the access log off)
  prometheus    prometheus_client's `Counter.labels(route, status).inc()` and
                `Histogram.labels(route).observe(seconds)`, called for each request (its
                metric objects' own locks and bucket search), label children looked up
                each time as its documentation shows
  prometheus-c  the same with the label children cached by the caller (the cheapest way
                to use the library's instruments)

plus, for the request id and client address a cached GET now carries:

  id+client     make a request id, set its context variable, cut the client's address out
                of "address:port" and copy the answer's header list with X-Request-Id

and what one cached GET costs end to end on this machine (bench.serve, BENCHMARKS.md) to
put the difference in proportion. Alternating rounds; the median of each.

    .venv/bin/python -m bench.metrics_cost [--requests 200000] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from bench.common import parse
from userphoto.api.logs import REQUEST_ID, request_id
from userphoto.api.observe import BUCKETS, AccessLog, Metrics, Requests
from userphoto.api.observe import Histogram as OurHistogram

ROUTES = ["/v1/users/{user}/photo", "/avatar/{hash}", "/v1.0/users/{user}/photo/$value"]


class _Metrics:
    """`observe.Metrics` without the server behind it: its own `fold`, on its own dicts."""

    fold = Metrics.fold

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, OurHistogram] = {}


def hand_rolled(n: int) -> float:
    requests = Requests(_Metrics(), AccessLog("off", 2))  # type: ignore[arg-type]
    whats = [(("GET", r, "u1", 200, 1234, "hit", "member", "u2")) for r in ROUTES]
    began = time.perf_counter()
    record = requests.record
    for i in range(n):
        record(began, whats[i % 3], "req-1", "127.0.0.1")
    requests.flush()
    return (time.perf_counter() - began) / n


def prometheus(n: int, *, cached: bool) -> float:
    registry = CollectorRegistry()
    counter = Counter("r", "r", ["route", "status"], registry=registry)
    histogram = Histogram("s", "s", ["route"], buckets=BUCKETS, registry=registry)
    children = [(counter.labels(r, "200"), histogram.labels(r)) for r in ROUTES]
    began = time.perf_counter()
    for i in range(n):
        seconds = time.perf_counter() - began
        if cached:
            c, h = children[i % 3]
            c.inc()
            h.observe(seconds)
        else:
            route = ROUTES[i % 3]
            counter.labels(route, "200").inc()
            histogram.labels(route).observe(seconds)
    return (time.perf_counter() - began) / n


def hot_path_additions(n: int) -> float:
    """What a cached GET does now that it did not before request ids and client addresses:
    make an id (no X-Request-Id sent), set the context variable, take the client's address
    from granian's "address:port", and copy the answer's header list with the id added."""
    headers = [("content-type", "image/jpeg"), ("etag", '"abc"'), ("cache-control", "private")]
    peer = "127.0.0.1:53412"
    began = time.perf_counter()
    for _ in range(n):
        rid = request_id(None)
        REQUEST_ID.set(rid)
        peer.rpartition(":")[0].strip("[]")
        _ = [*headers, ("x-request-id", rid)]
    return (time.perf_counter() - began) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parse(parser, {"requests": 20_000, "rounds": 1})
    runs: dict[str, list[float]] = {
        "hand-rolled": [],
        "prometheus": [],
        "prometheus-c": [],
        "id+client": [],
    }
    for _ in range(args.rounds):
        runs["hand-rolled"].append(hand_rolled(args.requests))
        runs["prometheus"].append(prometheus(args.requests, cached=False))
        runs["prometheus-c"].append(prometheus(args.requests, cached=True))
        runs["id+client"].append(hot_path_additions(args.requests))
    base = statistics.median(runs["hand-rolled"])
    for name, values in runs.items():
        median = statistics.median(values)
        print(f"{name:13s} {median * 1e9:8.0f} ns/request  {median / base:5.2f}x hand-rolled")


if __name__ == "__main__":
    main()
