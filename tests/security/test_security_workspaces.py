"""A key limited to workspace A can neither see nor change nor call anything in workspace B.

Every action of the catalogue is tried twice: aimed at workspace B outright (refused with
`AuthFailure.UnauthorizedOperation` before anything is looked up), and from A's own workspace with
B's ids and names (B's resources do not exist there: `ResourceNotFound`). B's state is the same
afterwards: its store rows, its replicas and their pids.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tcdeploy.protocol.actions import CATALOGUE, parse_request
from tests.support.cloudapi import call, error_of

from .security_estate import PREDICT_BODY, WORKSPACE_FIELD, Estate, service_spec, side_state

EVERY_ACTION = sorted((service, name) for service, actions in CATALOGUE.items() for name in actions)


def bodies_aimed_at_b(e: Estate) -> dict[str, dict]:
    """A valid body for every action, about B's resources (the workspace field is added later)."""
    b = e.b
    group = {"ServiceGroupId": b.group_id}
    pod = {"ServiceId": b.service_id, "PodName": b.pod_name}
    registry = {"CatalogName": "default", "SchemaName": "default"}
    return {
        "CreateMLModelServices": {
            "ServiceName": "sneaky",
            "ServiceGroupId": b.group_id,
            "Services": [service_spec(e.model_dir)],
        },
        "UpdateMLModelService": {"ServiceId": b.service_id, "ServiceAction": "STOP"},
        "DeleteMLModelService": {"ServiceId": b.service_id},
        "GetMLModelService": {"ServiceId": b.service_id},
        "ListMLModelServiceGroups": {},
        "ModelServiceInterfaceCallTest": {
            **group,
            "ServiceId": b.group_id,
            "RelativeUrl": "/predict",
            "CurlData": PREDICT_BODY,
            "AuthTokenValue": b.token,
        },
        "CreateModelServicePodUrl": pod,
        "RebuildModelServicePod": pod,
        "ListMLServiceLogs": {"ServiceId": b.service_id},
        "ListModelVersions": {**registry, "ModelName": "b-model"},
        "GetModelVersion": {**registry, "ModelName": "b-model", "ModelVersion": 1},
        "UpdateModelVersionAliases": {**registry, "ModelName": "b-model", "ModelVersion": 1, "AddedAliases": ["x"]},
        "ListModels": {**registry, "MaxResults": 10},
        "GetModel": {**registry, "ModelName": "b-model"},
        "SearchModels": {"MaxResults": 10},
        "GetBillingSpecs": {"ChargeType": "POSTPAID_BY_HOUR"},
        "CheckDuplicateServiceName": {"ServiceName": b.service_name},
        "CreateMLModelService": {"ServiceName": "sneaky-flat", "ServiceGroupId": b.group_id, **flat_service(e)},
        "GetMLModelServiceGroup": group,
        "DeleteMLModelServiceGroup": group,
        "UpdateModelServiceGroup": {**group, "Description": "sneaky"},
        "UpdateServiceGroupWeights": {**group, "WeightEntries": [{"ServiceId": b.service_id, "Weight": 0}]},
        "GetModelServiceCallInfo": group,
        "UpdateModelServiceAuthToken": {**group, "AuthToken": {"Base": {"Value": b.token, "Name": "sneaky"}}},
        "UpdateModelServiceAuthorization": {**group, "AuthorizationEnable": False},
        "ListModelServiceEvents": {"ServiceId": b.service_id},
        "GetModelServiceMonitorData": {"MetricName": "Requests", "ServiceId": b.service_id},
        "GetServiceGroupMonitorConfig": group,
        "UpdateServiceGroupMonitorConfig": {**group, "InferenceTableCollectionEnabled": False},
        "DescribeInferenceSpecs": {},
        "CreateModelServiceGroup": {"ServiceGroupName": "sneaky"},
        "DescribeModelServiceGroup": group,
        "DescribeModelServiceGroups": {},
        "ModifyServiceGroupWeights": {**group, "Weights": [{"ServiceId": b.service_id, "Weight": 0}]},
        "DeleteModelServiceGroup": group,
        "DescribeModelServiceCallInfo": group,
        "CreateModelServiceAuthToken": {**group, "Name": "sneaky"},
        "DeleteModelServiceAuthToken": {**group, "AuthTokenValue": b.token},
        "ModifyModelServiceAuthorization": {**group, "AuthorizationEnable": False},
        "DescribeModelServiceMonitoring": group,
        "CreateModelService": {**group, "InstanceType": "TI.S.SMALL.POST", "Replicas": 0, **tione_model(e)},
        "ModifyModelService": {"ServiceId": b.service_id, "ServiceAction": "STOP"},
        "DescribeModelService": {"ServiceId": b.service_id},
        "DeleteModelService": {"ServiceId": b.service_id},
        "ModifyModelServiceAuthToken": {**group, "AuthToken": {"Base": {"Value": b.token, "Name": "sneaky"}}},
        "DescribeEvents": {"Service": "INFER", "ServiceId": b.service_id},
        "DescribeLogs": {"Service": "INFER", "ServiceId": b.service_id},
        "DescribeBillingSpecs": {"ChargeType": "POSTPAID_BY_HOUR"},
        "ChatCompletion": {"Model": b.group_id, "Messages": [{"Role": "user", "Content": "sneaky"}]},
    }


def flat_service(e: Estate) -> dict:
    """The service members of the flat CreateMLModelService (no replicas: nothing to start)."""
    return {"InstanceType": "TI.S.SMALL.POST", "Replicas": 0, "MlModelInfo": {"ModelPath": str(e.model_dir)}}


def tione_model(e: Estate) -> dict:
    return {"ModelInfo": {"CosPathInfo": {"Paths": [str(e.model_dir)]}}}


def b_refs_from_a(e: Estate) -> dict[str, list[dict]]:
    """Bodies in A's workspace naming B's resources, by id and by name: each must be ResourceNotFound."""
    a, b = e.a, e.b
    services = [b.service_id, b.service_name]
    groups = [b.group_id, b.group_name]
    by_group = [{"ServiceGroupId": g} for g in groups]
    pods = [{"ServiceId": s, "PodName": b.pod_name} for s in [*services, a.service_id]]
    return {
        "CreateMLModelServices": [
            {"ServiceName": "sneaky", "ServiceGroupId": g, "Services": [service_spec(e.model_dir)]} for g in groups
        ],
        "UpdateMLModelService": [{"ServiceId": s, "ServiceAction": "STOP"} for s in services]
        + [{"ServiceId": s, "Replicas": 0} for s in services],
        "DeleteMLModelService": [{"ServiceId": s} for s in services],
        "GetMLModelService": [{"ServiceId": s} for s in services],
        "ModelServiceInterfaceCallTest": [
            {
                **g,
                "ServiceId": g["ServiceGroupId"],
                "RelativeUrl": "/predict",
                "CurlData": PREDICT_BODY,
                "AuthTokenValue": b.token,
            }
            for g in by_group
        ]
        + [
            {"ServiceGroupId": a.group_id, "ServiceId": s, "RelativeUrl": "/predict", "CurlData": PREDICT_BODY}
            for s in services
        ],
        "CreateModelServicePodUrl": pods,
        "RebuildModelServicePod": pods,
        "ListMLServiceLogs": [{"ServiceId": s} for s in services],
        "DescribeModelServiceGroup": by_group,
        "ModifyServiceGroupWeights": [{**g, "Weights": [{"ServiceId": b.service_id, "Weight": 0}]} for g in by_group],
        "DeleteModelServiceGroup": by_group,
        "DescribeModelServiceCallInfo": by_group,
        "CreateModelServiceAuthToken": [{**g, "Name": "sneaky"} for g in by_group],
        "DeleteModelServiceAuthToken": [{**g, "AuthTokenValue": b.token} for g in by_group]
        + [{"ServiceGroupId": a.group_id, "AuthTokenValue": b.token}],
        "ModifyModelServiceAuthorization": [{**g, "AuthorizationEnable": False} for g in by_group],
        "DescribeModelServiceMonitoring": by_group,
        "CreateModelService": [
            {"ServiceGroupId": g, "InstanceType": "TI.S.SMALL.POST", "Replicas": 0, **tione_model(e)} for g in groups
        ],
        "ModifyModelService": [{"ServiceId": s, "ServiceAction": "STOP"} for s in services]
        + [{"ServiceId": s, "Replicas": 0} for s in services],
        "DescribeModelService": [{"ServiceId": s} for s in services],
        "DeleteModelService": [{"ServiceId": s} for s in services],
        "ModifyModelServiceAuthToken": [{**g, "AuthToken": {"Base": {"Value": b.token}}} for g in by_group]
        + [{"ServiceGroupId": a.group_id, "AuthToken": {"Base": {"Value": b.token}}}],
        "DescribeEvents": [{"Service": "INFER", "ServiceId": s} for s in services],
        "CreateMLModelService": [
            {"ServiceName": "sneaky-flat", "ServiceGroupId": g, **flat_service(e)} for g in groups
        ],
        "GetMLModelServiceGroup": by_group,
        "DeleteMLModelServiceGroup": by_group,
        "UpdateModelServiceGroup": [{**g, "Description": "sneaky"} for g in by_group],
        "UpdateServiceGroupWeights": [
            {**g, "WeightEntries": [{"ServiceId": b.service_id, "Weight": 0}]} for g in by_group
        ],
        "GetModelServiceCallInfo": by_group + [{"ServiceId": s} for s in services],
        "UpdateModelServiceAuthToken": [{**g, "AuthToken": {"Base": {"Value": b.token}}} for g in by_group],
        "UpdateModelServiceAuthorization": [{**g, "AuthorizationEnable": False} for g in by_group],
        "ListModelServiceEvents": [{"ServiceId": s} for s in services],
        "GetModelServiceMonitorData": [{"MetricName": "Requests", "ServiceId": s} for s in services],
        "GetServiceGroupMonitorConfig": by_group,
        "UpdateServiceGroupMonitorConfig": [{**g, "InferenceTableCollectionEnabled": False} for g in by_group],
        "DescribeLogs": [{"Service": "INFER", "ServiceId": s} for s in services],
        "ChatCompletion": [{"Model": g, "Messages": [{"Role": "user", "Content": "sneaky"}]} for g in groups],
    }


# Actions that name no resource of a workspace: what they show from A is checked below instead.
LISTINGS = {
    "ListMLModelServiceGroups", "DescribeModelServiceGroups", "ListMLServiceLogs", "CreateModelServiceGroup",
    "CheckDuplicateServiceName",
}  # fmt: skip
# The instance types are the server's; the registry's partition by workspace has its own module
# (test_security_registry.py), with models registered for B.
SERVER_WIDE = {
    "DescribeInferenceSpecs", "DescribeBillingSpecs", "GetBillingSpecs", "ListModelVersions", "GetModelVersion",
    "UpdateModelVersionAliases", "ListModels", "GetModel", "SearchModels",
}  # fmt: skip


def in_workspace(service: str, body: dict, workspace: str | None) -> dict:
    body = dict(body)
    if workspace is not None:
        body[WORKSPACE_FIELD[service]] = workspace
    return body


def test_every_action_has_a_case(estate):
    names = {name for _, name in EVERY_ACTION}
    assert set(bodies_aimed_at_b(estate)) == names
    assert set(b_refs_from_a(estate)) | LISTINGS | SERVER_WIDE == names


@pytest.mark.parametrize("service,action", EVERY_ACTION)
def test_a_key_for_a_is_refused_in_workspace_b(estate, service, action):
    body = bodies_aimed_at_b(estate)[action]
    parse_request(CATALOGUE[service][action], body)  # valid: only the workspace can refuse it
    client = estate.client(estate.a.key, service)
    before = side_state(estate, estate.b)
    # B's workspace named, and none named (the default workspace, which A's key is not for either).
    for workspace in (estate.b.workspace, None):
        err = error_of(client, action, in_workspace(service, body, workspace))
        assert err.code == "AuthFailure.UnauthorizedOperation", (action, workspace, err.message)
    assert side_state(estate, estate.b) == before


@pytest.mark.parametrize("service,action", [(s, a) for s, a in EVERY_ACTION if a not in LISTINGS | SERVER_WIDE])
def test_from_workspace_a_the_resources_of_b_do_not_exist(estate, service, action):
    client = estate.client(estate.a.key, service)
    before = side_state(estate, estate.b)
    for body in b_refs_from_a(estate)[action]:
        err = error_of(client, action, in_workspace(service, body, estate.a.workspace))
        assert err.code == "ResourceNotFound", (action, body, err.message)
    assert side_state(estate, estate.b) == before


def test_listings_from_a_show_nothing_of_b(estate):
    a, b = estate.a, estate.b
    wedata, tione = estate.client(a.key, "wedata"), estate.client(a.key, "tione")
    listed = call(wedata, "ListMLModelServiceGroups", {"WorkspaceId": a.workspace, "Limit": 100})["Data"]
    assert [g["ServiceGroupId"] for g in listed["Rows"]] == [a.group_id]
    for f in ({"Name": "ServiceGroupId", "Values": [b.group_id]}, {"Name": "ServiceName", "Values": [b.service_name]}):
        assert (
            call(wedata, "ListMLModelServiceGroups", {"WorkspaceId": a.workspace, "Filters": [f]})["Data"]["TotalCount"]
            == 0
        )
        assert (
            call(tione, "DescribeModelServiceGroups", {"TiProjectId": a.workspace, "Filters": [f]})["TotalCount"] == 0
        )
    described = call(tione, "DescribeModelServiceGroups", {"TiProjectId": a.workspace, "Limit": 100})
    assert [g["ServiceGroupId"] for g in described["ServiceGroups"]] == [a.group_id]
    for name in (b.service_name, b.group_name):  # B's names are free in A
        checked = call(wedata, "CheckDuplicateServiceName", {"WorkspaceId": a.workspace, "ServiceName": name})
        assert checked["Data"]["Status"] is False, name
    events = call(wedata, "ListModelServiceEvents", {"WorkspaceId": a.workspace, "Limit": 1000})["Data"]["Events"]
    assert events and all(b.service_id not in (e["ResourceName"] or "") for e in events)


def test_logs_from_a_never_include_the_pods_of_b(estate):
    a, b = estate.a, estate.b
    admin = estate.client(estate.admin)
    theirs = call(admin, "ListMLServiceLogs", {"WorkspaceId": b.workspace, "ServiceId": b.service_id})["Data"]
    assert theirs["Content"], "B's replica has logged nothing: this test would prove nothing"
    wedata = estate.client(a.key)
    for pattern in (b.pod_name, "*", "ms-*", b.pod_name[:-1] + "*"):
        ours = call(
            wedata, "ListMLServiceLogs", {"WorkspaceId": a.workspace, "ServiceId": a.service_id, "PodName": pattern}
        )
        assert ours["Data"]["Content"] == [], pattern


def test_a_service_of_b_cannot_be_weighted_in_a_group_of_a(estate):
    a, b = estate.a, estate.b
    before = side_state(estate, b)
    err = error_of(
        estate.client(a.key, "tione"),
        "ModifyServiceGroupWeights",
        {
            "TiProjectId": a.workspace,
            "ServiceGroupId": a.group_id,
            "Weights": [{"ServiceId": b.service_id, "Weight": 50}],
        },
    )
    assert err.code == "InvalidParameterValue" and b.service_id in err.message
    assert side_state(estate, b) == before


def test_a_group_named_like_one_of_b_is_a_group_of_a(estate):
    a, b = estate.a, estate.b
    tione = estate.client(a.key, "tione")
    before = side_state(estate, b)
    created = call(tione, "CreateModelServiceGroup", {"TiProjectId": a.workspace, "ServiceGroupName": b.group_name})
    try:
        assert created["ServiceGroup"]["ServiceGroupId"] != b.group_id
        assert side_state(estate, b) == before
    finally:
        call(
            tione,
            "DeleteModelServiceGroup",
            {"TiProjectId": a.workspace, "ServiceGroupId": created["ServiceGroup"]["ServiceGroupId"]},
        )


def test_the_data_plane_of_b_is_closed_to_the_token_of_a(estate):
    """ModelServiceInterfaceCallTest from B itself, with A's token: the data plane refuses it."""
    b = estate.b
    reply = call(
        estate.client(b.key),
        "ModelServiceInterfaceCallTest",
        {
            "WorkspaceId": b.workspace,
            "ServiceGroupId": b.group_id,
            "ServiceId": b.group_id,
            "RelativeUrl": "/predict",
            "CurlData": PREDICT_BODY,
            "AuthTokenValue": estate.a.token,
        },
    )["Data"]
    assert json.loads(reply["CurlResponseRaw"])["status"] == 401
    for by in ("groups", "services"):
        assert (
            httpx.post(
                estate.predict_url(b, by), content=PREDICT_BODY, timeout=30, headers={"Authorization": estate.a.token}
            ).status_code
            == 401
        )
