"""The data plane end to end: a served gateway in front of replica processes."""

from __future__ import annotations

import asyncio
import json

import pytest

from tcdeploy.server.gateway import Replica, RouteTable, UnixHttpTransport

from .gateway_harness import IRIS_BODY, IRIS_COLUMNS, make_group, make_version, serve_gateway
from .gateway_harness import IRIS_ROW as ROW

BODIES = {
    "dataframe_split": {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [ROW, ROW]}},
    "dataframe_records": {"dataframe_records": [dict(zip(IRIS_COLUMNS, ROW))] * 2},
    "instances": {"instances": [dict(zip(IRIS_COLUMNS, ROW))] * 2},
    "inputs": {"inputs": {c: [v, v] for c, v in zip(IRIS_COLUMNS, ROW)}},
    "with params": {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [ROW, ROW]}, "params": {}},
    "wedata": {"client_request_id": "c-1", "dataframe_split": {"columns": IRIS_COLUMNS, "data": [ROW, ROW]}},
}


def one_group(replicas, **version_options) -> RouteTable:
    routes = RouteTable()
    routes.put_group(make_group("grp-a", make_version("svc-a", "grp-a", **version_options)))
    routes.set_replicas("svc-a", [Replica(r.pod_name, r.address) for r in replicas])
    return routes


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    ["/groups/grp-a/predict", "/groups/grp-a/invocations", "/services/svc-a/predict", "/services/svc-a/invocations"],
)
async def test_every_body_form_passes_through_both_urls(tmp_path, model_replicas, url):
    async with serve_gateway(one_group(model_replicas), tmp_path) as gw:
        for form, document in BODIES.items():
            reply = await gw.client.post(url, json=document)
            assert reply.status_code == 200, (form, reply.text)
            assert len(reply.json()["predictions"]) == 2, form
            assert len(reply.headers["x-request-id"]) == 32


@pytest.mark.anyio
async def test_request_id_is_kept_when_given_and_reaches_the_replica(tmp_path, standin):
    async with serve_gateway(one_group([standin]), tmp_path) as gw:
        url = "/groups/grp-a/predict"
        reply = await gw.client.post(url, content=IRIS_BODY, headers={"X-Request-Id": "abc-123"})
        assert reply.headers["x-request-id"] == "abc-123" and reply.json()["seen_request_id"] == "abc-123"
        reply = await gw.client.post(url, content=IRIS_BODY, headers={"X-Request-Id": "bad id!"})
        assert reply.headers["x-request-id"] != "bad id!"
        assert reply.json()["seen_request_id"] == reply.headers["x-request-id"]


@pytest.mark.anyio
async def test_the_replicas_own_errors_pass_through(tmp_path, model_replicas):
    async with serve_gateway(one_group(model_replicas), tmp_path) as gw:
        reply = await gw.client.post("/groups/grp-a/predict", content=b"{not json")
        assert reply.status_code == 400
        assert set(reply.json()) >= {"error_code", "message"}


@pytest.mark.anyio
async def test_unknown_group_service_or_path_is_404_and_get_is_405(tmp_path, model_replicas):
    async with serve_gateway(one_group(model_replicas), tmp_path) as gw:
        for url in ("/groups/grp-nope/predict", "/services/svc-nope/predict"):
            reply = await gw.client.post(url, content=IRIS_BODY)
            assert reply.status_code == 404 and reply.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
            assert "nope" in reply.json()["message"]
        assert (await gw.client.get("/groups/grp-a/predict")).status_code == 405
        reply = await gw.gateway.call(group_id="grp-a", body=IRIS_BODY, headers={}, path="/admin")
        assert reply.status == 404


@pytest.mark.anyio
@pytest.mark.parametrize("status", ["Stopped", "Stopping", "Creating"])
async def test_a_group_that_is_not_running_is_503(tmp_path, model_replicas, status):
    async with serve_gateway(one_group(model_replicas, status=status), tmp_path) as gw:
        for url in ("/groups/grp-a/predict", "/services/svc-a/predict"):
            reply = await gw.client.post(url, content=IRIS_BODY)
            assert reply.status_code == 503 and reply.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"


@pytest.mark.anyio
async def test_no_ready_replica_is_503(tmp_path):
    async with serve_gateway(one_group([]), tmp_path) as gw:
        reply = await gw.client.post("/groups/grp-a/predict", content=IRIS_BODY)
        assert reply.status_code == 503 and "no ready replica" in reply.json()["message"]


@pytest.mark.anyio
async def test_a_body_over_the_limit_is_400_naming_the_limit(tmp_path, model_replicas):
    limit = 1000
    async with serve_gateway(one_group(model_replicas), tmp_path, max_body_bytes=limit) as gw:
        big = b"x" * (limit + 1)

        async def chunked():  # no Content-Length: refused while reading
            for _ in range(4):
                yield big[: limit // 2]

        for content in (big, chunked()):
            reply = await gw.client.post("/groups/grp-a/predict", content=content)
            assert reply.status_code == 400
            assert reply.json()["error_code"] == "BAD_REQUEST" and "1000 bytes" in reply.json()["message"]
        reply = await gw.gateway.call(group_id="grp-a", body=big, headers={})
        assert reply.status == 400
        assert (await gw.client.post("/groups/grp-a/predict", content=IRIS_BODY)).status_code == 200


@pytest.mark.anyio
async def test_call_is_the_same_data_plane_without_http(tmp_path, model_replicas):
    async with serve_gateway(one_group(model_replicas), tmp_path) as gw:
        reply = await gw.gateway.call(group_id="grp-a", body=IRIS_BODY, headers={"X-Request-ID": "r-1"})
        assert reply.status == 200 and reply.headers["x-request-id"] == "r-1"
        assert len(json.loads(reply.body)["predictions"]) == 1
        reply = await gw.gateway.call(service_id="svc-a", body=IRIS_BODY, headers={}, path="/invocations")
        assert reply.status == 200
        with pytest.raises(ValueError, match="exactly one"):
            await gw.gateway.call(group_id="grp-a", service_id="svc-a", body=b"", headers={})


@pytest.mark.anyio
async def test_weights_split_real_traffic(tmp_path, model_replicas):
    routes = RouteTable()
    versions = make_version("svc-a", "grp-a", 70), make_version("svc-b", "grp-a", 30)
    routes.put_group(make_group("grp-a", *versions))
    routes.set_replicas("svc-a", [model_replicas[0].replica()])
    routes.set_replicas("svc-b", [model_replicas[1].replica()])
    async with serve_gateway(routes, tmp_path) as gw:
        replies = await asyncio.gather(
            *[gw.client.post("/groups/grp-a/predict", content=IRIS_BODY) for _ in range(200)]
        )
        assert all(reply.status_code == 200 for reply in replies)
        served = {
            service: gw.gateway.metrics.registry.get_sample_value(
                "tcdeploy_requests_total", {"group": "grp-a", "service": service, "status": "200"}
            )
            for service in ("svc-a", "svc-b")
        }
        assert abs(served["svc-a"] / 200 - 0.70) <= 0.02
        reply = await gw.client.post("/services/svc-b/predict", content=IRIS_BODY)  # bypasses weights
        assert reply.status_code == 200


@pytest.mark.anyio
async def test_a_replica_killed_under_load_fails_no_request(tmp_path, replicas, logistic_model_dir):
    pods = replicas.start_many(["ms-kill-0", "ms-kill-1"], logistic_model_dir)
    async with serve_gateway(one_group(pods), tmp_path) as gw:
        statuses: list[int] = []
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                reply = await gw.client.post("/groups/grp-a/predict", content=IRIS_BODY)
                statuses.append(reply.status_code)

        clients = [asyncio.create_task(client()) for _ in range(8)]
        await asyncio.sleep(0.5)
        pods[0].kill()
        before_kill = len(statuses)
        await asyncio.sleep(1.0)
        stop.set()
        await asyncio.gather(*clients)
    assert len(statuses) > before_kill + 20
    assert set(statuses) == {200}


@pytest.mark.anyio
async def test_the_only_replica_killed_is_retried_once_then_503(tmp_path, replicas):
    pod = replicas.start("ms-only-0")
    async with serve_gateway(one_group([pod]), tmp_path) as gw:
        assert (await gw.client.post("/groups/grp-a/predict", content=IRIS_BODY)).status_code == 200
        pod.kill()
        reply = await gw.client.post("/groups/grp-a/predict", content=IRIS_BODY)
        assert reply.status_code == 503 and "no replica of service svc-a answered" in reply.json()["message"]


@pytest.mark.anyio
async def test_drain_waits_for_inflight_requests_while_new_ones_go_elsewhere(tmp_path, replicas):
    slow, other = replicas.start_many(["ms-slow-0", "ms-other-0"])
    routes = one_group([slow, other])
    async with serve_gateway(routes, tmp_path) as gw:
        slow_body = json.dumps({"inputs": [[1]], "sleep": 0.6}).encode()
        # Both replicas idle: the first request goes to one of them; make sure it is `slow`.
        routes._next_replica["svc-a"] = 0
        pending = asyncio.create_task(gw.client.post("/groups/grp-a/predict", content=slow_body))
        await asyncio.sleep(0.2)
        drained = asyncio.create_task(routes.drain("ms-slow-0", timeout=5))
        await asyncio.sleep(0.05)
        assert not drained.done()
        replies = [await gw.client.post("/groups/grp-a/predict", content=IRIS_BODY) for _ in range(5)]
        assert {reply.json()["pid"] for reply in replies} == {other.process.pid}
        await asyncio.wait_for(drained, 2)
        assert pending.done() and (await pending).json()["pid"] == slow.process.pid


@pytest.mark.anyio
async def test_a_replica_that_does_not_answer_in_time_is_504(tmp_path, standin):
    transport = UnixHttpTransport(timeout=0.2)
    async with serve_gateway(one_group([standin]), tmp_path, transport=transport) as gw:
        reply = await gw.client.post("/groups/grp-a/predict", json={"inputs": [[1]], "sleep": 1})
        assert reply.status_code == 504 and "0.2 s" in reply.json()["message"]
