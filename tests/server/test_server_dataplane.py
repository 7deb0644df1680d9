"""The data plane seen from outside the server: metrics move, the monitoring action and the
inference-table command show what was served."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.cloudapi import call, common_client, create_service, wait_for_status
from tests.support.models import iris_frame


@pytest.fixture(scope="module")
def served(tcdeploy_server, logistic_model_dir):
    wedata = common_client(tcdeploy_server, "wedata")
    created = create_service(
        wedata,
        {
            "WorkspaceId": "default",
            "ServiceName": "observed",
            "InferenceTablePushEnable": True,
            "Services": [{"InstanceType": "TI.S.SMALL.POST", "MlModelInfo": {"ModelPath": str(logistic_model_dir)}}],
        },
    )
    wait_for_status(wedata, created["ServiceId"], {"RUNNING"})
    X, _ = iris_frame()
    body = {"dataframe_split": X.head(2).to_dict(orient="split")}
    url = f"{tcdeploy_server.url}/groups/{created['ServiceGroupId']}/predict"
    with httpx.Client(timeout=30) as client:
        replies = [client.post(url, json={**body, "client_request_id": f"r{i}"}) for i in range(5)]
    assert [r.status_code for r in replies] == [200] * 5
    assert all(r.headers["x-request-id"] for r in replies)
    yield created
    call(wedata, "DeleteMLModelService", {"WorkspaceId": "default", "ServiceId": created["ServiceId"]})


def metric(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_batches_and_replica_memory(tcdeploy_server, served):
    text = httpx.get(f"{tcdeploy_server.url}/metrics", timeout=10).text
    group, service = served["ServiceGroupId"], served["ServiceId"]
    assert metric(text, "tcdeploy_requests_total", group=group, service=service, status="200") >= 5
    assert metric(text, "tcdeploy_request_latency_seconds_count", group=group) >= 5
    assert metric(text, "tcdeploy_batch_rows_count") >= 5
    assert metric(text, "tcdeploy_replica_memory_bytes", service=service) > 10 * 2**20


def test_the_monitoring_action_shows_the_requests(tcdeploy_server, served):
    tione = common_client(tcdeploy_server, "tione")
    points = call(
        tione,
        "DescribeModelServiceMonitoring",
        {
            "ServiceGroupId": served["ServiceGroupId"],
            "Step": 60,
        },
    )["Points"]
    assert sum(p["requests"] for p in points) >= 5
    assert any(p["p50_latency_ms"] for p in points)


def test_the_inference_table_command_prints_the_rows(tcdeploy_server, served):
    deadline = time.monotonic() + 10  # rows are flushed at least every second
    while True:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "tcdeploy",
                "inference-table",
                served["ServiceGroupId"],
                "--data-dir",
                str(tcdeploy_server.data_dir),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows = json.loads(out)
        if len(rows) >= 5 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ids = {row["client_request_id"] for row in rows}
    assert {f"r{i}" for i in range(5)} <= ids
    assert all(row["status_code"] == 200 and row["service_id"] == served["ServiceId"] for row in rows)
