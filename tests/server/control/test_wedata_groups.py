"""Service groups through wedata's own actions, against a real server with real replicas: get,
describe, weights that really route, a duplicate name reported, the flat single create, delete."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.cloudapi import common_client, error_of, wait_for_status
from tests.support.models import iris_frame

from .wedata_calls import WS, checked, delete_group, flat_create, running_service


@pytest.fixture(scope="module")
def wedata(tcdeploy_server):
    return common_client(tcdeploy_server, "wedata")


@pytest.fixture(scope="module")
def two_versions(wedata, logistic_model_dir):
    """A group of two running versions: the first by CreateMLModelServices, the second by the
    flat CreateMLModelService into the same group."""
    v1 = running_service(wedata, "wg-iris", logistic_model_dir)
    group_id = v1["ServiceGroupId"]
    v2 = flat_create(
        wedata,
        "wg-iris-v2",
        logistic_model_dir,
        ServiceGroupId=group_id,
        NewVersion=True,
        Replicas=1,
        ServiceDescription="the flat create",
    )
    assert v2["ServiceGroupId"] == group_id and v2["Description"] == "the flat create" and v2["Weight"] == 0
    assert wait_for_status(wedata, v2["ServiceId"], {"RUNNING", "CREATE_FAILED"})["Status"] == "RUNNING"
    yield group_id, v1["ServiceId"], v2["ServiceId"]
    delete_group(wedata, group_id)


def test_get_group_has_the_shape_of_a_list_row(wedata, two_versions):
    group_id, v1, v2 = two_versions
    group = checked(wedata, "GetMLModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": group_id})
    assert group["ServiceGroupName"] == "wg-iris" and group["ServiceCount"] == 2
    assert [s["ServiceId"] for s in group["Services"]] == [v1, v2]
    page = checked(wedata, "ListMLModelServiceGroups", {"WorkspaceId": WS, "PageSize": 100})
    row = next(r for r in page["Rows"] if r["ServiceGroupId"] == group_id)
    assert row.keys() == group.keys()
    err = error_of(wedata, "GetMLModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": "no-such-group"})
    assert err.code == "ResourceNotFound"


def test_a_description_set_on_the_group_is_shown_back(wedata, two_versions):
    group_id, *_ = two_versions
    data = checked(
        wedata, "UpdateModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": group_id, "Description": "iris, two"}
    )
    assert data == {"Status": True}
    group = checked(wedata, "GetMLModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": group_id})
    assert group["Description"] == "iris, two"


def test_a_taken_name_is_reported_as_a_duplicate(wedata, two_versions):
    def taken(name):
        return checked(wedata, "CheckDuplicateServiceName", {"WorkspaceId": WS, "ServiceName": name})["Status"]

    assert taken("wg-iris") is True and taken("wg-iris-v2") is True
    assert taken("wg-free-name") is False
    assert error_of(wedata, "CheckDuplicateServiceName", {"WorkspaceId": WS}).code == "MissingParameter"


def test_weights_route_the_traffic(wedata, tcdeploy_server, two_versions):
    group_id, v1, v2 = two_versions
    entries = [{"ServiceId": v1, "Weight": 0}, {"ServiceId": v2, "Weight": 100}]
    data = checked(
        wedata, "UpdateServiceGroupWeights", {"WorkspaceId": WS, "ServiceGroupId": group_id, "WeightEntries": entries}
    )
    assert data["TiOneRequestId"]
    group = checked(wedata, "GetMLModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": group_id})
    assert [s["Weight"] for s in group["Services"]] == [0, 100]
    X, _ = iris_frame()
    body = json.dumps({"dataframe_split": X.iloc[:2].to_dict(orient="split")})
    url = f"{tcdeploy_server.url}/groups/{group_id}/predict"
    for _ in range(8):
        reply = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30)
        assert reply.status_code == 200, reply.text

    def served(service_id):
        params = {"WorkspaceId": WS, "ServiceId": service_id, "MetricName": "Requests", "Period": 60}
        data = checked(wedata, "GetModelServiceMonitorData", params)
        return sum(sum(point["Values"]) for point in data["DataPoints"])

    assert (served(v1), served(v2)) == (0, 8)


def test_weights_are_checked_naming_the_entry(wedata, two_versions):
    group_id, v1, v2 = two_versions
    err = error_of(
        wedata,
        "UpdateServiceGroupWeights",
        {"WorkspaceId": WS, "ServiceGroupId": group_id, "WeightEntries": [{"ServiceId": "nope", "Weight": 5}]},
    )
    assert err.code == "InvalidParameterValue" and "WeightEntries.0.ServiceId" in err.message
    zero = [{"ServiceId": v1, "Weight": 0}, {"ServiceId": v2, "Weight": 0}]
    err = error_of(
        wedata, "UpdateServiceGroupWeights", {"WorkspaceId": WS, "ServiceGroupId": group_id, "WeightEntries": zero}
    )
    assert err.code == "InvalidParameterValue"
    assert error_of(wedata, "UpdateServiceGroupWeights", {"ServiceGroupId": group_id}).code == "MissingParameter"


def test_the_flat_create_refuses_a_new_version_without_its_group(wedata, logistic_model_dir):
    body = {"WorkspaceId": WS, "ServiceName": "wg-orphan", "InstanceType": "TI.S.SMALL.POST"}
    err = error_of(wedata, "CreateMLModelService", {**body, "NewVersion": True})
    assert err.code == "InvalidParameterValue" and "NewVersion" in err.message
    err = error_of(wedata, "CreateMLModelService", {"WorkspaceId": WS, "ServiceName": "wg-orphan"})
    assert err.code == "MissingParameter" and "InstanceType" in err.message
    # Refusals name the member at the top of the request, where the flat create carries it.
    err = error_of(wedata, "CreateMLModelService", {**body, "Env": [{"Name": "PATH", "Value": "/x"}]})
    assert err.code == "InvalidParameterValue" and err.message.startswith("Env.0.Name")
    err = error_of(wedata, "CreateMLModelService", {**body, "InstanceType": "TI.HUGE"})
    assert err.code == "InvalidParameterValue" and err.message.startswith("InstanceType")
    assert (
        checked(wedata, "CheckDuplicateServiceName", {"WorkspaceId": WS, "ServiceName": "wg-orphan"})["Status"] is False
    )


def test_a_deleted_group_is_gone_with_its_services(wedata, logistic_model_dir):
    created = flat_create(wedata, "wg-doomed", logistic_model_dir, Replicas=0)
    delete_group(wedata, created["ServiceGroupId"])
    err = error_of(wedata, "GetMLModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": created["ServiceGroupId"]})
    assert err.code == "ResourceNotFound"
    err = error_of(wedata, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": created["ServiceId"]})
    assert err.code == "ResourceNotFound"
    assert (
        checked(wedata, "CheckDuplicateServiceName", {"WorkspaceId": WS, "ServiceName": "wg-doomed"})["Status"] is False
    )
