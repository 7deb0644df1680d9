"""Health that acts: a replica that stops answering (SIGSTOP) or whose predict hangs fails its
liveness probe, leaves rotation at once and is replaced; requests it held are retried elsewhere or
answered 504; an event names the probe that failed."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

from tests.support.cloudapi import (
    call,
    common_client,
    create_service,
    error_of,
    events_of,
    pod_facts,
    wait_for_status,
)
from tests.support.server import start_server

from .resilience_helpers import group_url, iris_body, kill_replicas, pod_pid, wait_until
from .resilience_load import Load, describe, failed

REQUEST_TIMEOUT = 4  # s: the gateway's wait for a replica, and how long a predict may run
FAST_LIVENESS = {"LivenessProbe": {"PeriodSeconds": 1, "TimeoutSeconds": 1, "FailureThreshold": 2}}


@pytest.fixture(scope="module")
def health_server(tmp_path_factory):
    server = start_server(
        tmp_path_factory.mktemp("health") / "data", extra_env={"TCDEPLOY_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT)}
    )
    try:
        yield server
    finally:
        server.stop(signal.SIGTERM)
        kill_replicas(server.data_dir)


def create(server, name: str, model_dir, replicas: int) -> dict:
    tione = common_client(server, "tione")
    body = {
        "ServiceGroupName": name,
        "ImageInfo": {"ImageType": "PRESET", "ImageUrl": "tcdeploy/mlflow"},
        "ModelInfo": {"ModelSource": "COS", "CosPathInfo": {"Paths": [str(model_dir)]}},
        "InstanceType": "TI.S.SMALL.POST",
        "Replicas": replicas,
        "ChargeType": "POSTPAID_BY_HOUR",
        "HealthProbe": FAST_LIVENESS,
    }
    service = call(tione, "CreateModelService", body)["Service"]
    wait_for_status(common_client(server, "wedata"), service["ServiceId"], {"RUNNING"}, timeout=180)
    return service


def pods(server, service_id: str) -> dict[str, dict]:
    wedata = common_client(server, "wedata")
    detail = call(wedata, "GetMLModelService", {"WorkspaceId": "default", "ServiceId": service_id})["Data"]
    return {p["PodName"]: p for p in pod_facts(detail)}


def liveness_events(server, service_id: str) -> list[str]:
    return [e["Message"] for e in events_of(common_client(server, "wedata"), service_id) if "liveness" in e["Message"]]


def replaced(server, service_id: str, pod: str, restarts: int) -> bool:
    now = pods(server, service_id)
    return all(p["Ready"] for p in now.values()) and now[pod]["RestartCount"] > restarts


def test_a_stopped_replica_is_replaced_and_its_requests_answered_elsewhere(health_server, sentinel_model_dir):
    service = create(health_server, "health-stop", sentinel_model_dir, replicas=2)
    sid = service["ServiceId"]
    victim, facts = next(iter(pods(health_server, sid).items()))
    with Load(group_url(health_server, service["ServiceGroupId"]), iris_body(), workers=4) as load:
        load.wait_for_calls(20)
        os.kill(pod_pid(health_server.data_dir, victim), signal.SIGSTOP)  # alive, answering nothing
        assert wait_until(lambda: replaced(health_server, sid, victim, facts["RestartCount"]), timeout=60)
        load.wait_for_calls(20)
    assert not failed(load.calls), describe(load.calls)
    told = liveness_events(health_server, sid)
    assert told and "GET /live did not answer within 1 s" in told[0], told


def test_a_hung_predict_is_answered_504_and_its_replica_replaced(health_server, sentinel_model_dir):
    service = create(health_server, "health-hang", sentinel_model_dir, replicas=1)
    sid = service["ServiceId"]
    ((pod, facts),) = pods(health_server, sid).items()
    url = group_url(health_server, service["ServiceGroupId"])
    hung = httpx.post(url, content=iris_body(sleep_s=600), timeout=60)
    assert hung.status_code == 504 and hung.json()["error_code"] == "DEADLINE_EXCEEDED", hung.text
    assert wait_until(lambda: replaced(health_server, sid, pod, facts["RestartCount"]), timeout=60)
    told = liveness_events(health_server, sid)
    assert told and "a predict has been running for" in told[0], told
    assert httpx.post(url, content=iris_body(), timeout=30).status_code == 200


def test_a_probe_that_cannot_run_here_is_refused_naming_it(health_server, sentinel_model_dir):
    tione = common_client(health_server, "tione")
    for probe, member, value in (
        ({"LivenessProbe": {"ProbeAction": {"ActionType": "Exec"}}}, "LivenessProbe.ProbeAction.ActionType", "Exec"),
        ({"ReadinessProbe": {"PeriodSeconds": 0}}, "ReadinessProbe.PeriodSeconds", "from 1 to 300"),
        ({"StartupProbe": {"SuccessThreshold": 3}}, "StartupProbe.SuccessThreshold", "must be 1"),
    ):
        body = {
            "ServiceGroupName": "health-refused",
            "ImageInfo": {"ImageType": "PRESET", "ImageUrl": "tcdeploy/mlflow"},
            "ModelInfo": {"ModelSource": "COS", "CosPathInfo": {"Paths": [str(sentinel_model_dir)]}},
            "InstanceType": "TI.S.SMALL.POST",
            "ChargeType": "POSTPAID_BY_HOUR",
            "HealthProbe": probe,
        }
        refused = error_of(tione, "CreateModelService", body)
        assert refused.code == "InvalidParameterValue"
        assert f"HealthProbe.{member}" in refused.message and value in refused.message
    groups = call(
        tione, "DescribeModelServiceGroups", {"Filters": [{"Name": "ServiceGroupName", "Values": ["health-refused"]}]}
    )
    assert groups["TotalCount"] == 0


def test_a_service_s_own_request_timeout_bounds_its_requests(health_server, sentinel_model_dir):
    """RequestTimeoutSeconds (our extension) below the server's: a predict slower than it is a 504."""
    wedata = common_client(health_server, "wedata")
    item = {"InstanceType": "TI.S.SMALL.POST", "MlModelInfo": {"ModelPath": str(sentinel_model_dir)}}
    params = {
        "WorkspaceId": "default",
        "ServiceName": "health-own-timeout",
        "Services": [{**item, "RequestTimeoutSeconds": 2}],
    }
    service = create_service(wedata, params)
    wait_for_status(wedata, service["ServiceId"], {"RUNNING"}, timeout=180)
    detail = call(wedata, "GetMLModelService", {"WorkspaceId": "default", "ServiceId": service["ServiceId"]})
    assert detail["Data"]["RequestTimeoutSeconds"] == 2
    url = group_url(health_server, service["ServiceGroupId"])
    slow = httpx.post(url, content=iris_body(sleep_s=3), timeout=30)  # within the server's 4 s
    assert slow.status_code == 504 and slow.json()["error_code"] == "DEADLINE_EXCEEDED", slow.text
    assert httpx.post(url, content=iris_body(sleep_s=0.5), timeout=30).status_code == 200
