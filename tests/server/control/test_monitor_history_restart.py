"""The monitoring history is kept on disk: requests served before a restart are still in the
monitor data after it."""

from __future__ import annotations

import json

import httpx

from tests.support.cloudapi import call, common_client
from tests.support.models import iris_frame
from tests.support.server import start_server

from .wedata_calls import WS, running_service


def test_monitor_data_keeps_the_requests_served_before_a_restart(tmp_path, logistic_model_dir):
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    try:
        wedata = common_client(server, "wedata")
        detail = running_service(wedata, "history-iris", logistic_model_dir)
        X, _ = iris_frame()
        body = json.dumps({"dataframe_split": X.iloc[:1].to_dict(orient="split")})
        url = f"{server.url}/groups/{detail['ServiceGroupId']}/predict"
        for _ in range(5):
            assert httpx.post(url, content=body, headers={"content-type": "application/json"}).status_code == 200
    finally:
        assert server.stop() == 0
    assert (data_dir / "metrics.db").stat().st_mode & 0o777 == 0o600
    server = start_server(data_dir)
    try:
        wedata = common_client(server, "wedata")
        query = {"WorkspaceId": WS, "ServiceId": detail["ServiceId"], "Period": 60}
        requests = call(wedata, "GetModelServiceMonitorData", {**query, "MetricName": "Requests"})["Data"]
        assert sum(requests["DataPoints"][0]["Values"]) == 5
        bytes_in = call(wedata, "GetModelServiceMonitorData", {**query, "MetricName": "BytesIn"})["Data"]
        assert sum(bytes_in["DataPoints"][0]["Values"]) == 5 * len(body)
        replicas = call(wedata, "GetModelServiceMonitorData", {**query, "MetricName": "ReadyReplicas"})["Data"]
        assert 1 in replicas["DataPoints"][0]["Values"]
    finally:
        server.stop()
