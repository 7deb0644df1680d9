"""A full disk under the inference table: requests keep being answered, the rows wait in memory,
an event says what happened, and once space returns every answered request has its row."""

from __future__ import annotations

import signal

import httpx

from tcdeploy.server.gateway import read_inference_table
from tests.support.cloudapi import events_of
from tests.support.disks import fill, small_disk
from tests.support.server import start_server

from .resilience_helpers import deploy, group_url, iris_body, kill_replicas, wait_until


def metric(server, name: str) -> float:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def told(wedata, service_id: str, words: str) -> dict | None:
    """The service's first event whose message says `words`."""
    return next((e for e in events_of(wedata, service_id) if words in e["Message"]), None)


def test_a_full_disk_keeps_rows_in_memory_says_so_and_writes_them_when_space_returns(tmp_path, sentinel_model_dir):
    from tests.support.cloudapi import common_client

    data_dir = tmp_path / "data"
    with small_disk(data_dir / "inference", "2m") as disk:
        server = start_server(data_dir)
        try:
            wedata = common_client(server, "wedata")
            svc = deploy(wedata, "full-disk", sentinel_model_dir, InferenceTablePushEnable=True)
            url, sid = group_url(server, svc["ServiceGroupId"]), svc["ServiceId"]
            ballast = fill(disk)
            answered = []
            for _ in range(20):
                reply = httpx.post(url, content=iris_body(), timeout=30)
                assert reply.status_code == 200, reply.text
                answered.append(reply.headers["x-request-id"])
            assert metric(server, "tcdeploy_inference_rows_pending") > 0
            failure = wait_until(lambda: told(wedata, sid, "cannot be written"), timeout=10)
            assert failure and failure["Type"] == "Warning" and "No space left on device" in failure["Message"]

            ballast.unlink()
            assert wait_until(lambda: metric(server, "tcdeploy_inference_rows_pending") == 0, timeout=15)
            assert wait_until(lambda: told(wedata, sid, "written again"), timeout=10)
            assert metric(server, "tcdeploy_inference_rows_dropped_total") == 0
            assert server.stop(signal.SIGTERM) == 0
            rows = list(read_inference_table(data_dir, svc["ServiceGroupId"])["request_id"])
            assert set(answered) <= set(rows) and len(rows) == len(set(rows))
        finally:
            server.stop(signal.SIGKILL)
            kill_replicas(data_dir)
