"""The plugin against a recording of the real cloud: the published WeData 2025-10-10 replies.

``RecordedCloud`` is the seam (``send``) of a cloud target. It answers each action with its
published example reply (``shared/reference/wedata-2025-10-10/examples``) with ids and names
substituted, or, for the few actions without an example, with a reply built from the schema's
structs. Every request the plugin sends must validate against the schema's request model, and
every reply handed back must pass ``reply_mismatches``: the recording stays true to the schema,
and the plugin is held to what the real API says and takes.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from functools import cache
from typing import Any

import pytest
from mlflow.exceptions import MlflowException

from tcdeploy.plugin.client import TcDeploymentClient
from tcdeploy.protocol.schema import reply_mismatches, request_model
from tests.support.reference import WEDATA_EXAMPLES

EXAMPLES = WEDATA_EXAMPLES  # CI lays shared/ beside the clone; without it these tests fail, not skip

WORKSPACE = "1464962169590902784"  # the recording's workspace
TARGET = "tcdeploy:/ap-guangzhou"
ENV = {
    "TENCENTCLOUD_SECRET_ID": "AKIDrecorded",
    "TENCENTCLOUD_SECRET_KEY": "recorded-key",
    "WEDATA_WORKSPACE_ID": WORKSPACE,
}
INSTANCE = "TI.S6.LARGE8.POST"


def recorded(action: str) -> Any:
    """``Response.Data`` of the published example of ``action`` (a fresh copy)."""
    document = json.loads((EXAMPLES / f"{action}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(document["response"]["Response"]["Data"])


real_request = cache(request_model)


class Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _token(offset: int) -> str:
    return base64.b64encode(f"context-{offset}".encode()).decode()


def _offset(token: str | None) -> int:
    return int(base64.b64decode(token).decode().split("-")[1]) if token else 0


class RecordedCloud:
    """The real cloud as its published replies show it, over the plugin's one-method seam.

    State: groups (``ListMLModelServiceGroups`` rows) with their services; ``states[service id]``
    scripts what ``GetMLModelService`` says, one reply per call, the last one repeating.
    ``page_rows`` is the server's own page size, smaller than the plugin asks for, so paging
    must follow ``TotalPageNumber``.
    """

    def __init__(self, page_rows: int = 2) -> None:
        self.page_rows = page_rows
        self.groups: dict[str, dict[str, Any]] = {}
        self.states: dict[str, list[dict[str, Any]]] = {}
        self.logs: list[dict[str, Any]] = []
        self.tokens: dict[str, str] = {}
        self.upstream: tuple[int, str | None] = (200, json.dumps({"predictions": [0, 1]}))
        self.unserved: set[str] = set()
        self.enforced: set[str] = set()  # groups whose URL wants a token whatever they say
        self.calls: list[tuple[str, dict[str, Any]]] = []

    # ---- the seam -----------------------------------------------------------------------------

    def __call__(self, service: str, version: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        if service == "tione":
            return self.tione(version, action, body)
        assert (service, version) == ("wedata", "2025-10-10"), f"{service} {action}: the plugin left wedata"
        # Exactly the schema's members with its types and required flags: the real API's, without
        # the extensions a tcdeploy server also takes.
        real_request(action).model_validate(body)
        assert body.get("WorkspaceId") == WORKSPACE
        self.calls.append((action, body))
        try:
            if action in self.unserved:
                raise Refused("InvalidAction", f"the action {action} is not found")
            data = getattr(self, action)(body)
        except Refused as exc:
            return {"Response": {"Error": {"Code": exc.code, "Message": str(exc)}, "RequestId": "req-err"}}
        assert reply_mismatches(action, data) == [], action
        return {"Response": {"Data": data, "RequestId": str(uuid.uuid4())}}

    def tione(self, version: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """TI-ONE, only where wedata has no answer: ``DescribeBillingSpecs``, checked with the SDK's models."""
        from tencentcloud.tione.v20211111 import models

        assert (version, action) == ("2021-11-11", "DescribeBillingSpecs"), f"tione {action}: not a fallback"
        assert {f"_{k}" for k in body} <= vars(models.DescribeBillingSpecsRequest()).keys(), body
        self.calls.append((action, body))
        specs = [{**spec, "SpecName": f"{spec['SpecName']}-tione"} for spec in self.GetBillingSpecs(body)["SpecInfos"]]
        reply = models.DescribeBillingSpecsResponse()
        reply._deserialize({"Specs": specs, "RequestId": "req-tione"})  # parses with the SDK's model
        return {"Response": {"Specs": specs, "RequestId": "req-tione"}}

    def actions(self) -> list[str]:
        return [action for action, _ in self.calls]

    def bodies(self, action: str) -> list[dict[str, Any]]:
        return [body for name, body in self.calls if name == action]

    # ---- state --------------------------------------------------------------------------------

    def add_group(self, name: str, services: tuple[str, ...] = (), authorization: bool = False) -> dict[str, Any]:
        group = recorded("ListMLModelServiceGroups")["Rows"][0]
        template = group["Services"][0]
        group.update(
            ServiceGroupId=str(uuid.uuid4()),
            ServiceGroupName=name,
            AuthorizationEnable=authorization,
            Services=[],
            ServiceCount=0,
        )
        self.groups[group["ServiceGroupId"]] = group
        for service_name in services:
            self.add_service(group, service_name, copy.deepcopy(template), status="RUNNING")
        return group

    def add_service(self, group: dict[str, Any], name: str, service: dict[str, Any], status: str) -> dict[str, Any]:
        number = int(group.get("LatestVersion") or 0) + 1 if group["Services"] else 1
        service.update(
            ServiceId=f"{group['ServiceGroupId']}-{number}",
            ServiceGroupId=group["ServiceGroupId"],
            ServiceName=name,
            Version=number,
            Status=status,
        )
        group["Services"].append(service)
        group.update(LatestVersion=str(number), ServiceCount=len(group["Services"]))
        return service

    def running(self, service: dict[str, Any], ready: int = 2) -> dict[str, Any]:
        """A running service as ``GetMLModelService`` tells it: the published update reply (RUNNING,
        2 replicas, ``PodInfos``, ``WorkloadStatus``) with this service's ids."""
        detail = recorded("UpdateMLModelService")
        detail.update({k: service[k] for k in ("ServiceId", "ServiceGroupId", "ServiceName")})
        detail["WorkloadStatus"]["ReadyReplicas"] = ready
        return detail

    def new(self, service: dict[str, Any]) -> dict[str, Any]:
        """A service being created: the published ``GetMLModelService`` reply (NEW, no pods, no
        workload, no ``ServiceGroupId``) with this service's id and name."""
        detail = recorded("GetMLModelService")
        detail.update(ServiceId=service["ServiceId"], ServiceName=service["ServiceName"])
        return detail

    def service(self, service_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        for group in self.groups.values():
            for service in group["Services"]:
                if service["ServiceId"] == service_id:
                    return group, service
        raise Refused("ResourceNotFound", f"service {service_id} does not exist")

    def group(self, group_id: str) -> dict[str, Any]:
        if group_id not in self.groups:
            raise Refused("ResourceNotFound", f"service group {group_id} does not exist")
        return self.groups[group_id]

    # ---- the actions --------------------------------------------------------------------------

    def ListMLModelServiceGroups(self, body):
        rows = list(self.groups.values())
        number, size = body.get("PageNumber") or 1, min(body.get("PageSize") or 10, self.page_rows)
        data = recorded("ListMLModelServiceGroups")
        data.update(
            PageNumber=number,
            PageSize=size,
            Rows=copy.deepcopy(rows[(number - 1) * size : number * size]),
            TotalCount=len(rows),
            TotalPageNumber=-(-len(rows) // size),
        )
        return data

    def GetMLModelServiceGroup(self, body):
        return copy.deepcopy(self.group(body["ServiceGroupId"]))

    def GetMLModelService(self, body):
        group, service = self.service(body["ServiceId"])
        script = self.states.get(service["ServiceId"])
        if not script:
            return self.running(service)
        detail = script.pop(0) if len(script) > 1 else script[0]
        service["Status"] = detail["Status"]
        return copy.deepcopy(detail)

    def CreateMLModelServices(self, body):
        reply = recorded("CreateMLModelServices")
        (template,) = reply["Services"]
        if body.get("ServiceGroupId"):
            group = self.group(body["ServiceGroupId"])
        else:
            group = self.add_group(body["ServiceName"], authorization=bool(body.get("AuthorizationEnable")))
        (spec,) = body["Services"]
        template.update(InstanceType=spec["InstanceType"], Replicas=spec["Replicas"], MlModelInfo=spec["MlModelInfo"])
        service = self.add_service(group, body["ServiceName"], template, status="NEW")
        self.states[service["ServiceId"]] = [self.new(service), self.running(service, ready=1), self.running(service)]
        reply.update({k: v for k, v in group.items() if k in ("ServiceGroupId", "ServiceGroupName", "Services")})
        return copy.deepcopy(reply)

    def DeleteMLModelService(self, body):
        group, service = self.service(body["ServiceId"])
        group["Services"].remove(service)
        return recorded("DeleteMLModelService")

    def DeleteMLModelServiceGroup(self, body):
        self.groups.pop(self.group(body["ServiceGroupId"])["ServiceGroupId"])
        return {"Status": True}

    def GetModelServiceCallInfo(self, body):
        group_id = body.get("ServiceGroupId") or self.service(body["ServiceId"])[0]["ServiceGroupId"]
        data = recorded("GetModelServiceCallInfo")
        short = f"ms-{group_id[:8]}"
        data["ServiceCallInfo"].update(
            ServiceGroupId=group_id,
            InternetEndpoint=f"https://{short}.ap-guangzhou.ti.tencentcs.com/{short}",
            AuthorizationEnable=self.group(group_id)["AuthorizationEnable"],
            AuthToken=self.tokens.get(group_id, ""),
        )
        return data

    def ListModelServiceEvents(self, body):
        self.service(body["ServiceId"])
        data = recorded("ListModelServiceEvents")
        data["Events"][0]["ResourceName"] = "ms-6mvp5w9v-1-6d49b68644-j8jjs"
        return data

    def ListMLServiceLogs(self, body):
        self.service(body["ServiceId"])
        start, limit = _offset(body.get("Context")), body.get("Limit") or 100
        page = self.logs[start : start + limit]
        data = recorded("ListMLServiceLogs")
        data["Content"] = copy.deepcopy(page)
        data["Context"] = _token(start + limit) if start + limit < len(self.logs) else ""
        return data

    def ModelServiceInterfaceCallTest(self, body):
        group = self.group(body["ServiceGroupId"])
        if body["ServiceId"] != group["ServiceGroupId"]:
            self.service(body["ServiceId"])
        status, text = self.upstream
        enforced = group["AuthorizationEnable"] or group["ServiceGroupId"] in self.enforced
        if enforced and body.get("AuthTokenValue") != self.tokens.get(group["ServiceGroupId"]):
            status, text = 401, json.dumps({"message": "unauthorized"})
        raw = json.loads(recorded("ModelServiceInterfaceCallTest")["CurlResponseRaw"])
        raw["status"] = raw["X-TiGateway-Upstream-Status"] = status
        if text is not None:  # the model's reply: what a tcdeploy server adds to the headers
            raw["body"] = text
        return {"CurlResponseRaw": json.dumps(raw)}

    def UpdateServiceGroupWeights(self, body):
        group = self.group(body["ServiceGroupId"])
        weights = {e["ServiceId"]: e["Weight"] for e in body["WeightEntries"]}
        for service in group["Services"]:
            service["Weight"] = weights.get(service["ServiceId"], 0)
        return {"TiOneRequestId": str(uuid.uuid4())}

    def UpdateModelServiceAuthorization(self, body):
        self.group(body["ServiceGroupId"])["AuthorizationEnable"] = body["AuthorizationEnable"]
        return {"TiOneRequestId": str(uuid.uuid4())}

    def RebuildModelServicePod(self, body):
        self.service(body["ServiceId"])
        return recorded("RebuildModelServicePod")

    def GetBillingSpecs(self, body):
        spec = {
            "SpecName": INSTANCE,
            "SpecAlias": "8C16G",
            "SpecType": "CPU",
            "Available": True,
            "AvailableRegion": [],
            "SpecFeatures": [],
            "GpuType": "",
            "SpecId": "sv_1",
            "CategoryId": "c1",
        }
        return {"SpecInfos": [spec, {**spec, "SpecName": "TI.GN7.LARGE20.POST", "SpecType": "GPU", "Available": False}]}


@pytest.fixture
def cloud() -> RecordedCloud:
    return RecordedCloud()


@pytest.fixture
def client(cloud, monkeypatch) -> TcDeploymentClient:
    for name in ("KERNEL_WEDATA_CLOUD_SDK_SECRET_ID", "KERNEL_WEDATA_CLOUD_SDK_SECRET_KEY", "TENCENTCLOUD_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return TcDeploymentClient(TARGET, send=cloud)


# ---- list -----------------------------------------------------------------------------------------


def test_list_pages_through_every_page_and_reads_rows(cloud, client):
    for i in range(5):
        cloud.add_group(f"group-{i}", services=(f"group-{i}",))
    assert [e["name"] for e in client.list_endpoints()] == [f"group-{i}" for i in range(5)]
    pages = cloud.bodies("ListMLModelServiceGroups")
    assert [(b["PageNumber"], b["PageSize"]) for b in pages] == [(1, 100), (2, 100), (3, 100)]
    assert all(set(b) == {"WorkspaceId", "PageNumber", "PageSize"} for b in pages)  # no Offset/Limit/Filters
    listed = client.list_deployments()
    assert [d["name"] for d in listed] == [f"group-{i}" for i in range(5)]
    assert all(d["service_group_id"] and d["service_id"].startswith(d["service_group_id"]) for d in listed)
    assert {d["status"] for d in listed} == {"RUNNING"}


# ---- get ------------------------------------------------------------------------------------------


def test_get_deployment_reads_workload_pods_events_and_the_url(cloud, client):
    cloud.add_group("other", services=("other",))
    group = cloud.add_group("iris", services=("iris",))
    service_id = group["Services"][0]["ServiceId"]
    by_name = client.get_deployment("iris")
    assert by_name == client.get_deployment(service_id)
    assert (by_name["name"], by_name["flavor"], by_name["service_id"]) == ("iris", "python_function", service_id)
    assert (by_name["service_group_id"], by_name["endpoint"]) == (group["ServiceGroupId"], "iris")
    assert (by_name["status"], by_name["replicas"], by_name["ready_replicas"]) == ("RUNNING", 2, 2)
    assert (
        by_name["url"]
        == f"https://ms-{group['ServiceGroupId'][:8]}.ap-guangzhou.ti.tencentcs.com/ms-{group['ServiceGroupId'][:8]}"
    )
    (pod,) = by_name["pods"]
    assert (pod["pod_name"], pod["ready"], pod["restart_count"], pod["phase"]) == (
        "mock-iris-classifier-0",
        True,
        0,
        "Running",
    )
    assert pod["container_infos"][0]["state"] == "running"
    assert by_name["events"][0]["message"] == "Created container sidecar-nginx"
    assert by_name["service_description"].startswith("Mock")
    assert by_name["ml_model_info"]["name"] == "iris-classifier"
    assert by_name["workload_status"]["ready_replicas"] == 2
    assert cloud.bodies("GetModelServiceCallInfo")[0] == {"WorkspaceId": WORKSPACE, "ServiceId": service_id}
    assert cloud.bodies("ListModelServiceEvents")[0] == {
        "WorkspaceId": WORKSPACE,
        "Service": "INFER",
        "ServiceId": service_id,
        "Limit": 100,
        "Offset": 0,
    }


def test_a_group_is_told_from_a_service_by_asking_not_by_its_id(cloud, client):
    group = cloud.add_group("iris", services=("iris-v1",))
    group_id, service_id = group["ServiceGroupId"], group["Services"][0]["ServiceId"]
    with pytest.raises(MlflowException) as info:
        client.get_deployment(group_id)  # a group's id names no service
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as info:
        client.get_endpoint(service_id)
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    endpoint = client.get_endpoint(group_id)
    assert endpoint["name"] == "iris" and [d["service_id"] for d in endpoint["deployments"]] == [service_id]
    assert endpoint["url"].startswith("https://ms-")
    assert cloud.bodies("GetModelServiceCallInfo")[-1] == {"WorkspaceId": WORKSPACE, "ServiceGroupId": group_id}


# ---- create ---------------------------------------------------------------------------------------


def test_create_blocks_until_running_through_new(cloud, client, capsys):
    reply = client.create_deployment(
        "iris", "runs:/0123abcd/model", config={"instance_type": INSTANCE, "replicas": 2, "timeout": 30}
    )
    (group,) = cloud.groups.values()
    service_id = f"{group['ServiceGroupId']}-1"
    assert (reply["name"], reply["service_id"], reply["service_group_id"]) == (
        "iris",
        service_id,
        group["ServiceGroupId"],
    )
    assert (reply["status"], reply["ready_replicas"], reply["replicas"]) == ("RUNNING", 2, 2)
    assert reply["url"] and reply["pods"][0]["ready"] is True
    assert capsys.readouterr().err.splitlines() == [
        f"[tcdeploy] iris ({service_id}): NEW, 0/1 replicas ready",
        f"[tcdeploy] iris ({service_id}): RUNNING, 1/2 replicas ready",
        f"[tcdeploy] iris ({service_id}): RUNNING, 2/2 replicas ready",
    ]
    (body,) = cloud.bodies("CreateMLModelServices")
    assert body["ServiceName"] == "iris" and "ServiceGroupId" not in body
    assert "BatchConfig" not in body["Services"][0]  # tcdeploy's extension never goes to the cloud


def test_create_in_an_endpoint_reads_the_new_service_from_the_group(cloud, client):
    group = cloud.add_group("iris", services=("iris-v1",))
    reply = client.create_deployment(
        "iris-v2", "runs:/0123abcd/model", config={"instance_type": INSTANCE, "wait": False}, endpoint="iris"
    )
    assert reply["service_id"] == f"{group['ServiceGroupId']}-2" and reply["status"] == "NEW"
    assert reply["endpoint"] == "iris" and reply["service_group_id"] == group["ServiceGroupId"]
    (body,) = cloud.bodies("CreateMLModelServices")
    assert body["ServiceGroupId"] == group["ServiceGroupId"] and body["NewVersion"] is True


def test_a_failed_create_says_why_with_containers_and_logs(cloud, client):
    def failing(body):
        reply = RecordedCloud.CreateMLModelServices(cloud, body)
        service = reply["Services"][-1]
        failed = cloud.running(service, ready=0)
        failed["Status"] = "CREATE_FAILED"
        failed["WorkloadStatus"]["Reason"] = "ProgressDeadlineExceeded"
        container = failed["PodInfos"][0]["ContainerInfos"][0]
        container.update(Ready=False, RestartCount=4, State="waiting", Reason="CrashLoopBackOff", Message="back-off")
        cloud.states[service["ServiceId"]] = [cloud.new(service), failed]
        return reply

    cloud.CreateMLModelServices = failing
    cloud.logs = [
        {
            "Id": str(i),
            "Message": f"line {i}",
            "PodName": "mock-iris-classifier-0",
            "Timestamp": f"2026-04-29T07:27:{i:02d}.000000000Z",
        }
        for i in range(30)
    ]
    with pytest.raises(MlflowException) as info:
        client.create_deployment("iris", "runs:/0123abcd/model", config={"instance_type": INSTANCE})
    message = str(info.value)
    assert info.value.error_code == "INVALID_STATE"
    assert "is CREATE_FAILED: ProgressDeadlineExceeded" in message
    assert "container inference-server: waiting CrashLoopBackOff back-off (4 restarts)" in message
    assert "mock-iris-classifier-0: line 29" in message and "line 9\n" not in message  # the last 20 lines


# ---- predict --------------------------------------------------------------------------------------


def test_predict_a_service_and_a_group(cloud, client):
    group = cloud.add_group("iris", services=("iris-v1",))
    group_id, service_id = group["ServiceGroupId"], group["Services"][0]["ServiceId"]
    assert client.predict("iris-v1", {"inputs": [[1, 2, 3, 4]]})["predictions"] == [0, 1]
    assert client.predict(group_id, [[1, 2, 3, 4]], endpoint="/invocations")["predictions"] == [0, 1]
    service_call, group_call = cloud.bodies("ModelServiceInterfaceCallTest")
    assert service_call == {
        "WorkspaceId": WORKSPACE,
        "ServiceGroupId": group_id,
        "ServiceId": service_id,
        "CurlData": '{"inputs":[[1,2,3,4]]}',
        "RelativeUrl": "/predict",
    }
    assert (group_call["ServiceId"], group_call["RelativeUrl"]) == (group_id, "/invocations")


def test_a_name_both_use_means_the_service_unless_the_cli_names_the_endpoint(cloud, client):
    group = cloud.add_group("iris", services=("iris",))  # as create_deployment makes them
    client.predict("iris", [[1, 2, 3, 4]])
    client.predict(None, [[1, 2, 3, 4]], endpoint="iris")  # mlflow deployments predict --endpoint iris
    by_name, by_endpoint = cloud.bodies("ModelServiceInterfaceCallTest")
    assert by_name["ServiceId"] == group["Services"][0]["ServiceId"]
    assert by_endpoint["ServiceId"] == group["ServiceGroupId"]


def test_predict_with_auth_sends_the_call_infos_token(cloud, client):
    group = cloud.add_group("iris", services=("iris",), authorization=True)
    cloud.tokens[group["ServiceGroupId"]] = "ee62aecbfbad3e5"
    assert client.predict("iris", [[1, 2, 3, 4]])["predictions"] == [0, 1]
    assert cloud.bodies("ModelServiceInterfaceCallTest")[0]["AuthTokenValue"] == "ee62aecbfbad3e5"
    assert cloud.bodies("GetModelServiceCallInfo") == [
        {"WorkspaceId": WORKSPACE, "ServiceGroupId": group["ServiceGroupId"]}
    ]


def test_a_401_with_auth_off_asks_for_a_token_once_and_reports_the_401_when_there_is_none(cloud, client):
    group = cloud.add_group("iris", services=("iris",))
    cloud.upstream = (401, json.dumps({"message": "token required"}))
    with pytest.raises(MlflowException, match="HTTP 401 at /predict: token required"):
        client.predict("iris", [[1, 2, 3, 4]])
    assert "AuthTokenValue" not in cloud.bodies("ModelServiceInterfaceCallTest")[-1]
    # Auth turned on since the group was listed: the 401 fetches a token and the call is sent again.
    cloud.upstream = (200, json.dumps({"predictions": [2]}))
    cloud.tokens[group["ServiceGroupId"]] = "fresh"
    cloud.enforced.add(group["ServiceGroupId"])
    assert client.predict(group["ServiceGroupId"], [[1, 2, 3, 4]])["predictions"] == [2]
    tried, retried = cloud.bodies("ModelServiceInterfaceCallTest")[-2:]
    assert "AuthTokenValue" not in tried and retried["AuthTokenValue"] == "fresh"


def test_the_recorded_404_is_an_error_naming_the_status(cloud, client):
    cloud.add_group("iris", services=("iris",))
    cloud.upstream = (404, None)  # as published: headers and status, Content-Length 0, no body
    with pytest.raises(MlflowException) as info:
        client.predict("iris", [[1, 2, 3, 4]], endpoint="/001")
    assert "HTTP 404 at /001" in str(info.value) and info.value.error_code == "RESOURCE_DOES_NOT_EXIST"


# ---- delete ---------------------------------------------------------------------------------------


def test_delete_takes_the_group_made_for_it_and_is_idempotent(cloud, client):
    group = cloud.add_group("iris", services=("iris",))
    kept = cloud.add_group("shared", services=("shared", "iris-v2"))
    client.delete_deployment("iris")
    assert cloud.bodies("DeleteMLModelService")[0]["ServiceId"] == f"{group['ServiceGroupId']}-1"
    assert cloud.bodies("DeleteMLModelServiceGroup") == [
        {"WorkspaceId": WORKSPACE, "ServiceGroupId": group["ServiceGroupId"]}
    ]
    assert list(cloud.groups) == [kept["ServiceGroupId"]]
    client.delete_deployment("iris")  # gone already: nothing more is deleted
    assert len(cloud.bodies("DeleteMLModelService")) == 1
    client.delete_deployment("iris-v2")  # a version in a group of another name: the group stays
    assert list(cloud.groups) == [kept["ServiceGroupId"]] and len(kept["Services"]) == 1
    client.delete_endpoint("shared")
    client.delete_endpoint("shared")
    assert cloud.groups == {}


# ---- pods, logs, events, endpoints, specs ---------------------------------------------------------


def test_pod_logs_page_with_the_context(cloud, client):
    group = cloud.add_group("iris", services=("iris",))
    cloud.logs = recorded("ListMLServiceLogs")["Content"] * 3
    first = client.get_pod_logs("iris", "ms-cp6rgw9r-1*", limit=2)
    assert len(first["logs"]) == 2 and first["context"] and first["list_over"] is False
    assert first["logs"][0] == {
        "id": "77b5d420-73bc-47f2-96ab-3a2b32262ffe",
        "message": "This is a log",
        "pod_name": "ms-cp6rgw9r-1-864587bdb4-p5cv6",
        "timestamp": "2022-01-11T04:14:36.348499491Z",
    }
    second = client.get_pod_logs(group["Services"][0]["ServiceId"], "ms-cp6rgw9r-1*", limit=2, context=first["context"])
    assert len(second["logs"]) == 1 and second["list_over"] is True and second["context"] is None
    assert cloud.bodies("ListMLServiceLogs")[0] == {
        "WorkspaceId": WORKSPACE,
        "Service": "INFER",
        "ServiceId": group["Services"][0]["ServiceId"],
        "PodName": "ms-cp6rgw9r-1*",
        "Limit": 2,
    }


def test_restart_pod(cloud, client):
    cloud.add_group("iris", services=("iris",))
    assert client.restart_pod("iris", "ms-6mvp5w9v-1-6d49b68644-j8jjs") == {
        "request_id": "c17f351e-dffe-43f3-970c-52c271c86559"
    }


def test_update_endpoint_sends_weight_entries_and_authorization(cloud, client):
    group = cloud.add_group("iris", services=("iris-v1", "iris-v2"))
    a, b = (s["ServiceId"] for s in group["Services"])
    cloud.tokens[group["ServiceGroupId"]] = "tok"
    view = client.update_endpoint("iris", config={"traffic": {"iris-v1": 30, b: 70}, "authorization_enable": True})
    assert view["traffic"] == {"iris-v1": 30, "iris-v2": 70} and view["auth_enabled"] is True
    assert cloud.bodies("UpdateServiceGroupWeights") == [
        {
            "WorkspaceId": WORKSPACE,
            "ServiceGroupId": group["ServiceGroupId"],
            "WeightEntries": [{"ServiceId": a, "Weight": 30}, {"ServiceId": b, "Weight": 70}],
        }
    ]
    assert cloud.bodies("UpdateModelServiceAuthorization")[0]["AuthorizationEnable"] is True


def test_instance_types_from_billing_specs(cloud, client):
    specs = client.list_instance_types()
    assert [s["spec_name"] for s in specs] == [INSTANCE, "TI.GN7.LARGE20.POST"]
    assert [s["spec_name"] for s in client.list_instance_types("gpu")] == ["TI.GN7.LARGE20.POST"]
    assert cloud.bodies("GetBillingSpecs")[0] == {
        "WorkspaceId": WORKSPACE,
        "ChargeType": "POSTPAID_BY_HOUR",
        "TaskType": "INFERENCE",
    }


def test_instance_types_fall_back_to_tione_where_wedata_has_no_billing_specs(cloud, client):
    cloud.unserved = {"GetBillingSpecs"}
    assert [s["spec_name"] for s in client.list_instance_types()] == [f"{INSTANCE}-tione", "TI.GN7.LARGE20.POST-tione"]
    assert cloud.actions() == ["GetBillingSpecs", "DescribeBillingSpecs"]
    assert cloud.bodies("DescribeBillingSpecs") == [{"ChargeType": "POSTPAID_BY_HOUR", "TaskType": "INFERENCE"}]


def test_the_cloud_refuses_what_it_does_not_have_before_any_call(cloud, client):
    with pytest.raises(MlflowException, match="tcdeploy server extension"):
        client.create_deployment(
            "iris", "runs:/0123abcd/model", config={"instance_type": INSTANCE, "max_batch_size": 8}
        )
    with pytest.raises(MlflowException, match="no action that creates an empty service group"):
        client.create_endpoint("iris")
    assert cloud.calls == []


# ---- the registry ---------------------------------------------------------------------------------


def test_an_unregistered_version_reads_the_recorded_empty_page(cloud, client):
    cloud.ListModelVersions = lambda body: recorded("ListModelVersions")
    with pytest.raises(MlflowException, match="no versions registered") as info:
        client.create_deployment("iris", "models:/yb_test05.sc_test05.randyrren1/1", config={"instance_type": INSTANCE})
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert cloud.bodies("ListModelVersions") == [
        {
            "WorkspaceId": WORKSPACE,
            "CatalogName": "yb_test05",
            "SchemaName": "sc_test05",
            "ModelName": "randyrren1",
            "MaxResults": "1000",
        }
    ]
