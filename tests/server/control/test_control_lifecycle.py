"""A service's whole life through the official SDK, against a real server with real replicas."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import mlflow.pyfunc
import pytest

from tcdeploy.protocol.schema import reply_mismatches
from tests.support.cloudapi import (
    call,
    common_client,
    create_service,
    error_of,
    events_of,
    pod_facts,
    ready_replicas,
    reason,
    wait_for_status,
)
from tests.support.models import iris_frame, register_model

WS = "default"


@pytest.fixture(scope="module")
def wedata(tcdeploy_server):
    return common_client(tcdeploy_server, "wedata")


@pytest.fixture(scope="module")
def running(wedata, logistic_model_dir):
    """One Running service of the logistic model (from a local directory), shared by these tests."""
    created = create_service(
        wedata,
        {
            "WorkspaceId": WS,
            "ServiceName": "life-iris",
            "Services": [
                {
                    "InstanceType": "TI.S.SMALL.POST",
                    "Replicas": 1,
                    "MlModelInfo": {"ModelPath": str(logistic_model_dir)},
                }
            ],
        },
    )
    assert created["Status"] == "NEW"
    detail = wait_for_status(wedata, created["ServiceId"], {"RUNNING", "CREATE_FAILED"})
    assert detail["Status"] == "RUNNING", detail
    yield detail
    call(wedata, "DeleteMLModelService", {"WorkspaceId": WS, "ServiceId": detail["ServiceId"]})


def predict_via_call_test(wedata, group_id, frame):
    body = json.dumps({"client_request_id": "c-1", "dataframe_split": frame.to_dict(orient="split")})
    data = call(
        wedata,
        "ModelServiceInterfaceCallTest",
        {
            "WorkspaceId": WS,
            "ServiceGroupId": group_id,
            "ServiceId": group_id,
            "RelativeUrl": "/predict",
            "CurlData": body,
        },
    )["Data"]
    raw = json.loads(data["CurlResponseRaw"])
    return raw["status"], json.loads(raw["body"])


def test_a_created_service_runs_and_predicts_like_the_model(wedata, running, logistic_model_dir):
    X, _ = iris_frame()
    sample = X.iloc[[0, 60, 120]]
    status, body = predict_via_call_test(wedata, running["ServiceGroupId"], sample)
    expected = mlflow.pyfunc.load_model(str(logistic_model_dir)).predict(sample)
    assert status == 200
    assert body["predictions"] == [int(v) for v in expected]
    assert body["client_request_id"] == "c-1"
    assert ready_replicas(running) == 1 and pod_facts(running)[0]["Phase"] == "Running"


def test_the_service_is_listed_in_its_group(wedata, running):
    data = call(
        wedata,
        "ListMLModelServiceGroups",
        {
            "WorkspaceId": WS,
            "Filters": [{"Name": "ServiceName", "Values": ["life-iris"]}],
        },
    )["Data"]
    assert data["TotalCount"] == 1
    group = data["Rows"][0]
    assert group["ServiceGroupId"] == running["ServiceGroupId"]
    assert [s["ServiceId"] for s in group["Services"]] == [running["ServiceId"]]


def test_logs_have_timestamps_wildcards_and_continuation(wedata, running):
    pod = pod_facts(running)[0]["PodName"]
    prefix = pod.rsplit("-", 1)[0]
    first = call(
        wedata,
        "ListMLServiceLogs",
        {
            "WorkspaceId": WS,
            "Service": "INFER",
            "ServiceId": running["ServiceId"],
            "PodName": prefix + "-*",
            "Limit": 2,
        },
    )["Data"]
    assert len(first["Content"]) == 2 and first["Context"]  # a Context: more follow
    assert all(line["PodName"] == pod and line["Timestamp"] for line in first["Content"])
    rest = call(
        wedata,
        "ListMLServiceLogs",
        {
            "WorkspaceId": WS,
            "ServiceId": running["ServiceId"],
            "PodName": pod,
            "Limit": 1000,
            "Context": first["Context"],
        },
    )["Data"]
    ids = [line["Id"] for line in first["Content"] + rest["Content"]]
    assert len(ids) == len(set(ids)), "continuation repeated lines"
    messages = " ".join(line["Message"] for line in first["Content"] + rest["Content"])
    assert "loaded" in messages
    future = call(
        wedata,
        "ListMLServiceLogs",
        {
            "WorkspaceId": WS,
            "ServiceId": running["ServiceId"],
            "StartTime": "2099-01-01T00:00:00+00:00",
        },
    )["Data"]
    assert future["Content"] == [] and future["Context"] == ""
    assert reply_mismatches("ListMLServiceLogs", first) == []


def test_logs_search_by_keyword_newest_first_and_across_the_workspace(wedata, running):
    pod = pod_facts(running)[0]["PodName"]
    oldest_first = call(wedata, "ListMLServiceLogs", {"WorkspaceId": WS, "ServiceId": running["ServiceId"]})["Data"]
    everything = [line["Message"] for line in oldest_first["Content"]]
    newest = call(
        wedata, "ListMLServiceLogs", {"WorkspaceId": WS, "ServiceId": running["ServiceId"], "Order": "DESC", "Limit": 1}
    )["Data"]
    assert newest["Content"][0]["Message"] == everything[-1] and newest["Context"]
    older = call(
        wedata,
        "ListMLServiceLogs",
        {
            "WorkspaceId": WS,
            "ServiceId": running["ServiceId"],
            "Order": "DESC",
            "Limit": 1,
            "Context": newest["Context"],
        },
    )["Data"]
    assert older["Content"][0]["Message"] == everything[-2]
    found = call(wedata, "ListMLServiceLogs", {"WorkspaceId": WS, "ServiceId": running["ServiceId"], "Key": "loaded"})
    assert found["Data"]["Content"] and all("loaded" in line["Message"] for line in found["Data"]["Content"])
    skipped = call(wedata, "ListMLServiceLogs", {"WorkspaceId": WS, "ServiceId": running["ServiceId"], "Offset": 1})
    assert [line["Message"] for line in skipped["Data"]["Content"]] == everything[1:]
    # As in the published example: no ServiceId, a pod-name wildcard across the workspace.
    by_pod = call(wedata, "ListMLServiceLogs", {"WorkspaceId": WS, "PodName": pod.rsplit("-", 2)[0] + "*"})["Data"]
    assert {line["PodName"] for line in by_pod["Content"]} == {pod}
    assert error_of(wedata, "ListMLServiceLogs", {"WorkspaceId": WS, "Order": "UP"}).code == "InvalidParameterValue"


def test_rebuild_restarts_the_pod(wedata, running):
    pod = pod_facts(running)[0]
    data = call(
        wedata,
        "RebuildModelServicePod",
        {
            "WorkspaceId": WS,
            "ServiceId": running["ServiceId"],
            "PodName": pod["PodName"],
        },
    )["Data"]
    assert data["TiOneRebuildServiceRequestId"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        detail = wait_for_status(wedata, running["ServiceId"], {"RUNNING"})
        now = pod_facts(detail)[0]
        if now["RestartCount"] == pod["RestartCount"] + 1 and now["Ready"]:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"pod not rebuilt: {pod_facts(detail)}")


def test_a_replica_killed_with_sigkill_comes_back(wedata, running, tcdeploy_server):
    before = pod_facts(wait_for_status(wedata, running["ServiceId"], {"RUNNING"}))[0]
    pid = int((tcdeploy_server.data_dir / "run" / f"{before['PodName']}.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        detail = call(wedata, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": running["ServiceId"]})["Data"]
        pod = pod_facts(detail)[0]
        if pod["RestartCount"] == before["RestartCount"] + 1 and pod["Ready"]:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"replica not restarted: {pod_facts(detail)}")
    assert any("Restarted" in e["Message"] for e in events_of(wedata, running["ServiceId"]))


def test_the_pod_page_needs_its_token(wedata, running, tcdeploy_server):
    pod = pod_facts(running)[0]["PodName"]
    data = call(
        wedata,
        "CreateModelServicePodUrl",
        {
            "WorkspaceId": WS,
            "ServiceId": running["ServiceId"],
            "PodName": pod,
        },
    )["Data"]
    page = httpx.get(data["Url"], timeout=10)
    assert page.status_code == 200 and pod in page.text
    assert httpx.get(data["Url"].split("?")[0], timeout=10).status_code == 403
    spoiled = data["Url"][:-1] + ("1" if data["Url"].endswith("0") else "0")  # its last character changed
    assert httpx.get(spoiled, timeout=10).status_code == 403
    other_host = httpx.get(data["Url"], headers={"Host": f"evil.example:{tcdeploy_server.port}"}, timeout=10)
    assert other_host.status_code == 421


def test_an_unloadable_model_fails_the_create_with_the_reason(wedata, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: no_such_module_xyz\n")
    created = create_service(
        wedata,
        {
            "WorkspaceId": WS,
            "ServiceName": "broken-model",
            "Services": [{"InstanceType": "TI.S.SMALL.POST", "MlModelInfo": {"ModelPath": str(broken)}}],
        },
    )
    detail = wait_for_status(wedata, created["ServiceId"], {"CREATE_FAILED", "RUNNING"}, timeout=90)
    try:
        assert detail["Status"] == "CREATE_FAILED"
        assert "no_such_module_xyz" in reason(detail)
    finally:
        call(wedata, "DeleteMLModelService", {"WorkspaceId": WS, "ServiceId": created["ServiceId"]})


def test_a_deleted_service_is_gone_and_delete_is_refused_after(wedata, logistic_model_dir):
    created = create_service(
        wedata,
        {
            "WorkspaceId": WS,
            "ServiceName": "short-lived",
            "Services": [
                {
                    "InstanceType": "TI.S.SMALL.POST",
                    "Replicas": 0,
                    "MlModelInfo": {"ModelPath": str(logistic_model_dir)},
                }
            ],
        },
    )
    call(wedata, "DeleteMLModelService", {"WorkspaceId": WS, "ServiceId": created["ServiceId"]})
    err = error_of(wedata, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": created["ServiceId"]})
    assert err.code == "ResourceNotFound"
    err = error_of(wedata, "DeleteMLModelService", {"WorkspaceId": WS, "ServiceId": created["ServiceId"]})
    assert err.code == "ResourceNotFound"


def test_a_registered_three_part_model_resolves_through_list_model_versions(wedata, tcdeploy_server):
    version = register_model(tcdeploy_server.tracking_uri, "cat.sch.iris3")
    data = call(
        wedata,
        "ListModelVersions",
        {
            "WorkspaceId": WS,
            "CatalogName": "cat",
            "SchemaName": "sch",
            "ModelName": "iris3",
            "MaxResults": "1000",
        },
    )["Data"]
    item = next(i for i in data["Items"] if i["Version"] == version)
    props = {p["Key"]: p["Value"] for p in item["Properties"]}
    assert props["tclake.mlflow.artifact_path"] == f"models:/cat.sch.iris3/{version}"
    created = create_service(
        wedata,
        {
            "WorkspaceId": WS,
            "ServiceName": "three-part",
            "Services": [
                {
                    "InstanceType": "TI.S.SMALL.POST",
                    "CatalogName": "cat",
                    "SchemaName": "sch",
                    "MlModelInfo": {"Name": "iris3", "Version": version, "Id": props["tclake.mlflow.model_id"]},
                }
            ],
        },
    )
    try:
        assert created["MlModelInfo"]["ModelPath"] == f"models:/cat.sch.iris3/{version}"
        assert wait_for_status(wedata, created["ServiceId"], {"RUNNING", "CREATE_FAILED"})["Status"] == "RUNNING"
    finally:
        call(wedata, "DeleteMLModelService", {"WorkspaceId": WS, "ServiceId": created["ServiceId"]})
