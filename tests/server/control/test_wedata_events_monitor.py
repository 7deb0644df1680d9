"""A service's events, its monitor data and its group's monitor settings through wedata's actions,
against a real server with a real replica; and the billing specs (instance types)."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.support.cloudapi import common_client, error_of
from tests.support.models import iris_frame

from .wedata_calls import WS, checked, delete_group, running_service


@pytest.fixture(scope="module")
def wedata(tcdeploy_server):
    return common_client(tcdeploy_server, "wedata")


@pytest.fixture(scope="module")
def running(wedata, logistic_model_dir):
    detail = running_service(wedata, "wem-iris", logistic_model_dir)
    yield detail
    delete_group(wedata, detail["ServiceGroupId"])


def events(wedata, service_id: str, **params) -> dict:
    return checked(wedata, "ListModelServiceEvents", {"WorkspaceId": WS, "ServiceId": service_id, **params})


# ---- events -----------------------------------------------------------------------------------


def test_events_appear_after_a_create_and_name_the_pod(wedata, running):
    data = events(wedata, running["ServiceId"], Order="ASC", Limit=100)
    assert data["TotalCount"] == len(data["Events"]) >= 2
    first = data["Events"][0]
    assert (
        first["Type"] == "Normal" and first["ResourceKind"] == "Deployment" and first["Message"].startswith("Creating")
    )
    pod = running["PodInfos"][0]["Name"]
    pods = events(wedata, running["ServiceId"], Filters=[{"Name": "ResourceKind", "Values": ["Pod"]}])["Events"]
    assert pods and {e["ResourceName"] for e in pods} == {pod} and any("is ready" in e["Message"] for e in pods)
    # The published example's glob: every resource of the service starts with its deployment's name.
    globbed = events(wedata, running["ServiceId"], ResourceName=first["ResourceName"] + "*")
    assert globbed["TotalCount"] == data["TotalCount"]


def test_events_page_and_order(wedata, running):
    service_id = running["ServiceId"]
    every = events(wedata, service_id, Order="ASC")["Events"]
    newest_first = events(wedata, service_id)["Events"]  # TI-ONE's default order: DESC
    assert [e["Id"] for e in newest_first] == [e["Id"] for e in reversed(every)]
    pages = [events(wedata, service_id, Order="ASC", Limit=1, Offset=i)["Events"] for i in range(len(every))]
    assert [p[0]["Id"] for p in pages] == [e["Id"] for e in every]
    assert events(wedata, service_id, Filters=[{"Name": "Type", "Values": ["Warning"]}])["Events"] == []
    later = events(wedata, service_id, StartTime="2999-01-01T00:00:00+08:00")
    assert later == {"TotalCount": 0, "Events": []}


def test_bad_event_queries_are_refused_naming_the_member(wedata, running):
    service_id = running["ServiceId"]
    for params, member in [
        ({"Filters": [{"Name": "Color", "Values": ["red"]}]}, "Filters.0.Name"),
        ({"Filters": [{"Name": "Type", "Values": ["Fatal"]}]}, "Filters.0.Values"),
        ({"Order": "UP"}, "Order"),
        ({"OrderField": "Name"}, "OrderField"),
        ({"Service": "TRAIN"}, "Service"),
    ]:
        err = error_of(wedata, "ListModelServiceEvents", {"WorkspaceId": WS, "ServiceId": service_id, **params})
        assert err.code == "InvalidParameterValue" and member in err.message, (params, err.message)


# ---- monitor data -----------------------------------------------------------------------------


def monitor(wedata, service_id: str, metric: str, **params) -> dict:
    body = {"WorkspaceId": WS, "ServiceId": service_id, "MetricName": metric, **params}
    return checked(wedata, "GetModelServiceMonitorData", body)


def test_request_figures_count_what_was_sent(wedata, tcdeploy_server, running):
    X, _ = iris_frame()
    body = json.dumps({"dataframe_split": X.iloc[:1].to_dict(orient="split")})
    url = f"{tcdeploy_server.url}/groups/{running['ServiceGroupId']}/predict"
    for _ in range(3):
        assert (
            httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=30).status_code == 200
        )
    data = monitor(wedata, running["ServiceId"], "Requests", Period=60)
    assert data["MetricName"] == "Requests" and data["Period"] == 60
    [series] = data["DataPoints"]
    assert sum(series["Values"]) == 3 and len(series["Timestamps"]) == len(series["Values"])
    assert series["Dimensions"] == [{"Name": "ServiceId", "Value": running["ServiceId"]}]
    latency = monitor(wedata, running["ServiceId"], "LatencyP99", Period=3600)["DataPoints"][0]["Values"]
    assert latency and all(v > 0 for v in latency)
    assert sum(monitor(wedata, running["ServiceId"], "Errors")["DataPoints"][0]["Values"]) == 0


def test_replica_cpu_and_memory_are_shown_per_pod(wedata, running):
    deadline = time.monotonic() + 30
    while not (points := monitor(wedata, running["ServiceId"], "InstanceMemUtil")["DataPoints"]):
        assert time.monotonic() < deadline, "no usage sample within 30 s"
        time.sleep(1)
    [point] = points
    assert point["Dimensions"] == [{"Name": "PodName", "Value": running["PodInfos"][0]["Name"]}]
    assert 0 < point["Values"][0] < 100
    pod = [{"Dimensions": [{"Name": "PodName", "Value": running["PodInfos"][0]["Name"]}]}]
    assert len(monitor(wedata, running["ServiceId"], "InstanceMemUtil", Instances=pod)["DataPoints"]) == 1
    other = [{"Dimensions": [{"Name": "PodName", "Value": "ms-nobody-1-0-0"}]}]
    assert monitor(wedata, running["ServiceId"], "InstanceMemUtil", Instances=other)["DataPoints"] == []
    assert monitor(wedata, running["ServiceId"], "Requests", Instances=other)["DataPoints"] == []
    err = error_of(
        wedata,
        "GetModelServiceMonitorData",
        {
            "WorkspaceId": WS,
            "ServiceId": running["ServiceId"],
            "MetricName": "Requests",
            "Instances": [{"Dimensions": [{"Name": "Region", "Value": "x"}]}],
        },
    )
    assert err.code == "InvalidParameterValue" and "Instances.0.Dimensions.0.Name" in err.message
    assert all(
        v >= 0 for p in monitor(wedata, running["ServiceId"], "InstanceCpuUtil")["DataPoints"] for v in p["Values"]
    )


def test_an_unknown_metric_is_refused_listing_the_known_ones(wedata, running):
    err = error_of(
        wedata,
        "GetModelServiceMonitorData",
        {"WorkspaceId": WS, "ServiceId": running["ServiceId"], "MetricName": "Qps"},
    )
    assert err.code == "InvalidParameterValue" and "MetricName" in err.message and "LatencyP99" in err.message
    err = error_of(
        wedata,
        "GetModelServiceMonitorData",
        {
            "WorkspaceId": WS,
            "ServiceId": running["ServiceId"],
            "MetricName": "Requests",
            "StartTime": "2026-01-01T10:00:00+08:00",
            "EndTime": "2026-01-01T09:00:00+08:00",
        },
    )
    assert err.code == "InvalidParameterValue" and "EndTime" in err.message


# ---- monitor settings -------------------------------------------------------------------------


def test_monitor_settings_are_kept_and_the_inference_table_switch_acts(wedata, running):
    group_id, service_id = running["ServiceGroupId"], running["ServiceId"]
    config = checked(wedata, "GetServiceGroupMonitorConfig", {"WorkspaceId": WS, "ServiceGroupId": group_id})
    assert (config["ClsDeliveryEnabled"], config["InferenceTableCollectionEnabled"]) == (0, 0)
    update = {
        "WorkspaceId": WS,
        "ServiceGroupId": group_id,
        "InferenceTableCollectionEnabled": True,
        "ClsDeliveryEnabled": False,
        "LogConfig": {"LogsetId": "ls-1", "TopicId": "tp-1"},
        "CatalogPath": "DataLakeCatalog",
        "SchemaPath": "infer",
    }
    assert checked(wedata, "UpdateServiceGroupMonitorConfig", update) == {"Status": True}
    config = checked(wedata, "GetServiceGroupMonitorConfig", {"WorkspaceId": WS, "ServiceGroupId": group_id})
    assert (config["ClsDeliveryEnabled"], config["InferenceTableCollectionEnabled"]) == (2, 1)
    assert config["ClsConfig"] == {"LogsetId": "ls-1", "TopicId": "tp-1"}
    assert (config["CatalogPath"], config["SchemaPath"]) == ("DataLakeCatalog", "infer")
    assert config["CreateTime"].isdigit() and len(config["CreateTime"]) == 13
    service = checked(wedata, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": service_id})
    assert service["InferenceTablePushEnable"] is True
    off = {"WorkspaceId": WS, "ServiceGroupId": group_id, "InferenceTableCollectionEnabled": False}
    checked(wedata, "UpdateServiceGroupMonitorConfig", off)
    config = checked(wedata, "GetServiceGroupMonitorConfig", {"WorkspaceId": WS, "ServiceGroupId": group_id})
    assert config["InferenceTableCollectionEnabled"] == 2
    assert error_of(wedata, "GetServiceGroupMonitorConfig", {"WorkspaceId": WS}).code == "MissingParameter"


# ---- billing specs ----------------------------------------------------------------------------


def test_billing_specs_are_the_instance_types(wedata):
    specs = checked(wedata, "GetBillingSpecs", {"WorkspaceId": WS, "ChargeType": "INFERENCE"})["SpecInfos"]
    by_name = {s["SpecName"]: s for s in specs}
    assert "TI.S.SMALL.POST" in by_name and by_name["TI.S.SMALL.POST"]["SpecAlias"] == "1C2G"
    assert by_name["TI.S.MICRO.POST"]["Available"] is True
    err = error_of(wedata, "GetBillingSpecs", {"WorkspaceId": WS, "ChargeType": "TRAIN"})
    assert err.code == "InvalidParameterValue" and "ChargeType" in err.message
    assert error_of(wedata, "GetBillingSpecs", {"WorkspaceId": WS}).code == "MissingParameter"
