"""The operator's view: the access log, /metrics, /healthz and /readyz of a real server."""

from __future__ import annotations

import json
import time

from starlette.testclient import TestClient

from tests.support.server import Served, addr
from userphoto.api.server import PhotoServer


def log_size(served: Served) -> int:
    return (served.home / "serve.log").stat().st_size


def log_lines(served: Served, wanted: int, route: str, since: int) -> list[dict]:
    """Access-log lines (JSON) for `route` written after byte `since`, waiting for the
    once-a-second flush."""
    deadline = time.monotonic() + 5
    while True:
        with (served.home / "serve.log").open("rb") as f:
            f.seek(since)
            text = f.read().decode()
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        mine = [line for line in lines if line.get("route") == route]  # access-log lines
        if len(mine) >= wanted or time.monotonic() > deadline:
            return mine
        time.sleep(0.2)


def test_one_access_log_line_per_request_without_tokens_or_queries(served: Served) -> None:
    since = log_size(served)
    url = f"/v1/users/{addr('eve')}/photo?size=64&client=hd&sig=SECRETSIG"
    first = served.get(url, "kim")
    second = served.get(url, "kim")
    assert first.status_code == second.status_code == 200
    bad = served.get(f"/v1/users/{addr('eve')}/photo", None, Authorization="Bearer upt_LEAKME")
    assert bad.status_code == 401
    lines = log_lines(served, 3, "/v1/users/{user}/photo", since)
    eve = [line for line in lines if line["user"] == served.ids["eve"]]
    assert [line["cache"] for line in eve] == ["miss", "hit"]
    last = eve[-1]
    assert last["method"] == "GET" and last["status"] == 200 and last["viewer"] == "member"
    assert last["bytes"] == len(second.content) and last["ms"] >= 0
    assert last["time"].endswith("Z")
    assert any(line["viewer"] == "invalid" and line["status"] == 401 for line in lines)
    text = (served.home / "serve.log").read_text()
    assert "SECRETSIG" not in text and "size=64" not in text
    assert "LEAKME" not in text and served.tokens["kim"] not in text
    assert addr("eve") not in text  # the route template, not the address in the path


def test_metrics_health_and_readiness(served: Served) -> None:
    served.get(f"/v1/users/{addr('ada')}/photo?size=48", "bob")
    metrics = served.client.get("/metrics")
    assert metrics.status_code == 200  # loopback is in the default metrics_allow
    text = metrics.text
    assert 'userphoto_requests_total{route="/v1/users/{user}/photo",status="200"}' in text
    # prometheus_client writes `le` first; Prometheus reads labels in any order.
    assert 'userphoto_request_seconds_bucket{le="+Inf",route="/v1/users/{user}/photo"}' in text
    for name in (
        "userphoto_cache_hits_total",
        "userphoto_cache_misses_total",
        "userphoto_cache_evictions_total",
        "userphoto_cache_invalidations_total",
        "userphoto_cache_bytes",
        "userphoto_miss_queue_depth",
        "userphoto_build_seconds_count",
        "userphoto_store_read_seconds_count",
    ):
        assert f"\n{name}" in text, name
    assert served.client.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 30  # a server just started may still be warming up
    while (ready := served.client.get("/readyz")).status_code != 200:
        assert ready.json()["status"].startswith("warming up"), ready.text
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.05)
    assert ready.json()["status"] == "ready"


def test_metrics_outside_the_allowed_range_need_an_admin(served: Served) -> None:
    server = PhotoServer(served.app(), poll=False)
    try:
        with TestClient(server.site) as tc:  # its client address is not in metrics_allow
            assert tc.get("/metrics").status_code in (401, 403)
            member = tc.get("/metrics", headers={"Authorization": f"Bearer {served.tokens['bob']}"})
            assert member.status_code == 403
            admin = tc.get(
                "/metrics", headers={"Authorization": f"Bearer {served.tokens['admin']}"}
            )
            assert admin.status_code == 200 and "userphoto_cache_bytes" in admin.text
    finally:
        server.close()


def test_metrics_cover_workers_sync_process_and_version(served: Served) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from userphoto import __version__
    from userphoto.directory import status
    from userphoto.directory.status import SyncReport

    app = served.app()
    try:
        report = SyncReport(mode="delta", added=2, updated=3, photos_new=1, ok=True)
        report.finished = report.started
        status.record(app.store, report)
        failed = SyncReport(mode="full", error="directory unreachable")
        failed.finished = failed.started
        status.record(app.store, failed)
    finally:
        app.close()
    served.get(f"/v1/users/{addr('ada')}/photo?size=64", "bob")
    text = served.client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}  # parses: valid
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families.values()
        for s in family.samples
    }
    assert samples[("userphoto_image_workers_busy", ())] == 0
    assert ("userphoto_image_workers_queued", ()) in samples
    assert samples[("userphoto_image_workers", ())] >= 1
    assert samples[("userphoto_image_refusals_total", (("reason", "queue_full"),))] == 0
    assert ("userphoto_image_worker_kills_total", ()) in samples
    assert samples[("userphoto_directory_sync_changes", (("mode", "delta"),))] == 6
    assert samples[("userphoto_directory_sync_failed", (("mode", "delta"),))] == 0
    assert samples[("userphoto_directory_sync_failed", (("mode", "full"),))] == 1
    assert 0 <= samples[("userphoto_directory_sync_lag_seconds", ())] < 600
    assert samples[("process_resident_memory_bytes", ())] > 0
    assert samples[("process_cpu_seconds_total", ())] > 0
    build = [k for k in samples if k[0] == "userphoto_build_info"]
    assert len(build) == 1 and ("version", __version__) in build[0][1]
    assert (
        samples[
            ("userphoto_requests_total", (("route", "/v1/users/{user}/photo"), ("status", "200")))
        ]
        >= 1
    )
