"""Prometheus metrics at /metrics and the per-group monitor figures."""

from __future__ import annotations

import json
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tcdeploy.server.gateway import RouteTable
from tcdeploy.server.gateway.monitor import GroupMonitor

from .gateway_harness import IRIS_BODY, make_group, make_version, serve_gateway

NAMES = [
    "tcdeploy_requests",
    "tcdeploy_request_latency_seconds",
    "tcdeploy_inflight_requests",
    "tcdeploy_rate_limited",
    "tcdeploy_batch_rows",
    "tcdeploy_replica_cpu_percent",
    "tcdeploy_replica_memory_bytes",
]


def routes_for(replicas, **version_options) -> RouteTable:
    routes = RouteTable()
    routes.put_group(make_group("grp-m", make_version("svc-m", "grp-m", **version_options)))
    routes.set_replicas("svc-m", [r.replica() for r in replicas])
    return routes


def samples(text: str) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.anyio
async def test_metrics_are_present_and_move(tmp_path, model_replicas):
    def usage():
        return [("svc-m", r.pod_name, 12.5, 200 * 2**20) for r in model_replicas]

    async with serve_gateway(routes_for(model_replicas, rps=5.0), tmp_path, usage=usage) as gw:
        before = samples((await gw.client.get("/metrics")).text)
        replies = [await gw.client.post("/groups/grp-m/predict", content=IRIS_BODY) for _ in range(25)]
        scrape = await gw.client.get("/metrics")
    assert scrape.headers["content-type"].startswith("text/plain")
    for name in NAMES:
        assert f"# TYPE {name}" in scrape.text, name
    after = samples(scrape.text)
    ok = sum(r.status_code == 200 for r in replies)
    limited = sum(r.status_code == 429 for r in replies)
    assert ok >= 10 and limited >= 1
    labels = {"group": "grp-m", "service": "svc-m"}
    assert value(after, "tcdeploy_requests_total", status="200", **labels) == ok
    assert value(after, "tcdeploy_requests_total", status="429", **labels) == limited
    assert value(after, "tcdeploy_rate_limited_total", **labels) == limited
    assert value(after, "tcdeploy_request_latency_seconds_count", **labels) > value(
        before, "tcdeploy_request_latency_seconds_count", **labels
    )
    assert value(after, "tcdeploy_inflight_requests", **labels) == 0
    pod = model_replicas[0].pod_name
    assert value(after, "tcdeploy_replica_cpu_percent", service="svc-m", pod=pod) == 12.5
    assert value(after, "tcdeploy_replica_memory_bytes", service="svc-m", pod=pod) == 200 * 2**20


@pytest.mark.anyio
async def test_batch_rows_are_observed_when_the_replica_reports_them(tmp_path, standin):
    async with serve_gateway(routes_for([standin]), tmp_path) as gw:
        body = json.dumps({"inputs": [[1], [2], [3]]})
        assert (await gw.client.post("/groups/grp-m/predict", content=body)).status_code == 200
        scraped = samples((await gw.client.get("/metrics")).text)
    labels = {"group": "grp-m", "service": "svc-m"}
    assert value(scraped, "tcdeploy_batch_rows_sum", **labels) == 3


@pytest.mark.anyio
async def test_a_failing_usage_source_does_not_break_the_scrape(tmp_path, model_replicas):
    def usage():
        raise RuntimeError("psutil went away")

    async with serve_gateway(routes_for(model_replicas), tmp_path, usage=usage) as gw:
        scrape = await gw.client.get("/metrics")
    assert scrape.status_code == 200 and "tcdeploy_replica_cpu_percent" in scrape.text


@pytest.mark.anyio
async def test_a_removed_group_leaves_the_metrics(tmp_path, model_replicas):
    routes = routes_for(model_replicas)
    async with serve_gateway(routes, tmp_path) as gw:
        await gw.client.post("/groups/grp-m/predict", content=IRIS_BODY)
        assert 'group="grp-m"' in (await gw.client.get("/metrics")).text
        routes.remove_group("grp-m")
        assert 'group="grp-m"' not in (await gw.client.get("/metrics")).text


@pytest.mark.anyio
async def test_monitor_shows_the_groups_recent_traffic(tmp_path, model_replicas):
    async with serve_gateway(routes_for(model_replicas), tmp_path) as gw:
        start = time.time()
        for _ in range(20):
            await gw.client.post("/groups/grp-m/predict", content=IRIS_BODY)
        await gw.client.post("/groups/grp-m/predict", content=b"{broken")
        steps = gw.gateway.monitor("grp-m", start - 60, time.time() + 1, step=30)
    assert sum(s["requests"] for s in steps) == 21 and sum(s["errors"] for s in steps) == 1
    busy = [s for s in steps if s["requests"]]
    assert all(0 < s["p50_latency_ms"] <= s["p99_latency_ms"] < 10_000 for s in busy)
    assert all(s["inflight"] >= 1 for s in busy)
    assert set(steps[0]) == {
        "time", "requests", "errors", "limited", "p50_latency_ms", "p99_latency_ms", "inflight", "bytes_in", "bytes_out",
    }  # fmt: skip
    # The bodies' bytes each way: 20 iris bodies and the broken one in, their replies out.
    assert sum(s["bytes_in"] for s in steps) == 20 * len(IRIS_BODY) + len(b"{broken")
    assert sum(s["bytes_out"] for s in steps) > 20 * len(b'{"predictions": [0]}')


def test_monitor_steps_and_quantiles():
    monitor = GroupMonitor()
    base = 1_700_000_000
    for i in range(100):  # 100 requests in second 0 with latencies 1..100 ms
        monitor.record(base + 0.5, 200, float(i + 1), inflight=3)
    monitor.record(base + 61.2, 429, None, inflight=1)
    monitor.record(base + 61.7, 500, 5.0, inflight=1)
    first, second, third = monitor.steps(base, base + 180, 60)
    assert (first["requests"], first["errors"], first["limited"], first["inflight"]) == (100, 0, 0, 3)
    assert first["p50_latency_ms"] == pytest.approx(50, rel=0.05)
    assert first["p99_latency_ms"] == pytest.approx(99, rel=0.05)
    assert (second["requests"], second["errors"], second["limited"]) == (2, 1, 1)
    assert third["requests"] == 0 and third["p50_latency_ms"] is None
    assert [s["time"] for s in (first, second, third)] == [base, base + 60, base + 120]


def test_monitor_forgets_what_is_older_than_an_hour():
    monitor = GroupMonitor()
    base = 1_700_000_000
    monitor.record(base, 200, 1.0, inflight=1)
    monitor.record(base + 3600, 200, 1.0, inflight=1)  # same ring slot, an hour later
    assert monitor.steps(base, base + 1, 1)[0]["requests"] == 0
    assert monitor.steps(base + 3600, base + 3601, 1)[0]["requests"] == 1


@pytest.mark.parametrize(
    "start,end,step,problem",
    [
        (10, 5, 60, "must not be before"),
        (0, 60, 0, "step must be at least 1"),
        (0, 10**9, 1, "at most"),
    ],
)
def test_monitor_refuses_bad_windows(start, end, step, problem):
    with pytest.raises(ValueError, match=problem):
        GroupMonitor().steps(start, end, step)
