"""Groups, weights and tokens through TI-ONE's actions; every reply parses with the official models."""

from __future__ import annotations

import json

import pytest
from tencentcloud.tione.v20211111 import models

from tests.support.cloudapi import call, common_client, create_service, error_of, tione_client

WS = "default"


@pytest.fixture(scope="module")
def two_versions(tcdeploy_server, logistic_model_dir):
    wedata = common_client(tcdeploy_server, "wedata")

    def body(name):
        return {
            "WorkspaceId": WS,
            "ServiceName": name,
            "Services": [
                {
                    "InstanceType": "TI.S.SMALL.POST",
                    "Replicas": 0,
                    "MlModelInfo": {"ModelPath": str(logistic_model_dir)},
                }
            ],
        }

    v1 = create_service(wedata, body("grp-a"))
    v2 = create_service(wedata, {**body("grp-a-v2"), "ServiceGroupId": v1["ServiceGroupId"]})
    yield v1["ServiceGroupId"], v1["ServiceId"], v2["ServiceId"]
    call(common_client(tcdeploy_server, "tione"), "DeleteModelServiceGroup", {"ServiceGroupId": v1["ServiceGroupId"]})


def test_describe_group_parses_with_the_sdk(tcdeploy_server, two_versions):
    group_id, v1, v2 = two_versions
    req = models.DescribeModelServiceGroupRequest()
    req.ServiceGroupId = group_id
    group = tione_client(tcdeploy_server).DescribeModelServiceGroup(req).ServiceGroup
    assert group.ServiceGroupName == "grp-a" and group.ServiceCount == 2
    assert [s.ServiceId for s in group.Services] == [v1, v2]
    assert [s.Weight for s in group.Services] == [100, 0]
    assert group.Services[0].ServiceInfo.InstanceType == "TI.S.SMALL.POST"


def test_describe_groups_filters_and_pages(tcdeploy_server, two_versions):
    group_id, v1, _ = two_versions
    req = models.DescribeModelServiceGroupsRequest()
    req.from_json_string(json.dumps({"Filters": [{"Name": "ServiceId", "Values": [v1]}], "Limit": 10}))
    reply = tione_client(tcdeploy_server).DescribeModelServiceGroups(req)
    assert reply.TotalCount == 1 and reply.ServiceGroups[0].ServiceGroupId == group_id


def test_weights_move_and_are_checked(tcdeploy_server, two_versions):
    group_id, v1, v2 = two_versions
    req = models.ModifyServiceGroupWeightsRequest()
    req.from_json_string(
        json.dumps(
            {"ServiceGroupId": group_id, "Weights": [{"ServiceId": v1, "Weight": 50}, {"ServiceId": v2, "Weight": 50}]}
        )
    )
    group = tione_client(tcdeploy_server).ModifyServiceGroupWeights(req).ServiceGroup
    assert [s.Weight for s in group.Services] == [50, 50]
    tione = common_client(tcdeploy_server, "tione")
    err = error_of(
        tione,
        "ModifyServiceGroupWeights",
        {"ServiceGroupId": group_id, "Weights": [{"ServiceId": "svc-zz", "Weight": 1}]},
    )
    assert err.code == "InvalidParameterValue" and "svc-zz" in err.message
    err = error_of(
        tione,
        "ModifyServiceGroupWeights",
        {"ServiceGroupId": group_id, "Weights": [{"ServiceId": v1, "Weight": 0}, {"ServiceId": v2, "Weight": 0}]},
    )
    assert err.code == "InvalidParameterValue"
    err = error_of(
        tione, "ModifyServiceGroupWeights", {"ServiceGroupId": group_id, "Weights": [{"ServiceId": v1, "Weight": 101}]}
    )
    assert err.code == "InvalidParameterValue"


def test_tokens_are_created_shown_and_deleted(tcdeploy_server, two_versions):
    group_id, *_ = two_versions
    tione = common_client(tcdeploy_server, "tione")
    call(tione, "ModifyModelServiceAuthorization", {"ServiceGroupId": group_id, "AuthorizationEnable": True})
    req = models.DescribeModelServiceCallInfoRequest()
    req.ServiceGroupId = group_id
    info = tione_client(tcdeploy_server).DescribeModelServiceCallInfo(req).ServiceCallInfoV2
    assert info.AuthorizationEnable is True and len(info.AuthTokens) == 1
    first = info.AuthTokens[0].Base.Value
    assert info.AuthToken == first and len(first) >= 32
    call(tione, "CreateModelServiceAuthToken", {"ServiceGroupId": group_id, "Name": "ci"})
    info = tione_client(tcdeploy_server).DescribeModelServiceCallInfo(req).ServiceCallInfoV2
    assert [t.Base.Name for t in info.AuthTokens] == ["default", "ci"]
    call(tione, "DeleteModelServiceAuthToken", {"ServiceGroupId": group_id, "AuthTokenValue": first})
    info = tione_client(tcdeploy_server).DescribeModelServiceCallInfo(req).ServiceCallInfoV2
    assert [t.Base.Name for t in info.AuthTokens] == ["ci"]
    assert (
        error_of(tione, "DeleteModelServiceAuthToken", {"ServiceGroupId": group_id, "AuthTokenValue": first}).code
        == "ResourceNotFound"
    )
    # Only digests are stored: no token value appears in the database file.
    assert info.AuthTokens[0].Base.Value.encode() not in (tcdeploy_server.data_dir / "state.db").read_bytes()


def test_inference_specs_and_an_empty_group(tcdeploy_server):
    tione = common_client(tcdeploy_server, "tione")
    specs = call(tione, "DescribeInferenceSpecs", {})["SpecInfos"]
    assert {"SpecName", "SpecAlias", "SpecType", "Available", "Cpu", "Memory"} <= set(specs[0])
    group = call(tione, "CreateModelServiceGroup", {"ServiceGroupName": "empty-one"})["ServiceGroup"]
    assert group["ServiceCount"] == 0
    assert error_of(tione, "CreateModelServiceGroup", {"ServiceGroupName": "empty-one"}).code == "ResourceInUse"
    call(tione, "DeleteModelServiceGroup", {"ServiceGroupId": group["ServiceGroupId"]})
    assert (
        error_of(tione, "DescribeModelServiceGroup", {"ServiceGroupId": group["ServiceGroupId"]}).code
        == "ResourceNotFound"
    )
