"""The official `tccli` drives the TI-ONE lifecycle against `tcdeploy server`: create, describe,
list groups, weights, call info, events, logs, delete. Each reply it prints is checked against
the SDK's response model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tcdeploy.protocol.tione import reply_mismatches
from tests.support.tione import NORMAL

TCCLI = Path(sys.executable).with_name("tccli")


@pytest.fixture(scope="module")
def tione(tcdeploy_server, tmp_path_factory):
    """`tione(action, **members)`: one tccli call, its printed reply as a dict (checked)."""
    home = tmp_path_factory.mktemp("tccli-home")  # tccli keeps its configuration under $HOME
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")},
        "HOME": str(home),
        "TENCENTCLOUD_SECRET_ID": tcdeploy_server.secret_id,
        "TENCENTCLOUD_SECRET_KEY": tcdeploy_server.secret_key,
    }
    endpoint = f"http://127.0.0.1:{tcdeploy_server.port}"  # the scheme is needed: tccli has no flag for it

    def run(action: str, *extra: str, **members) -> dict:
        args = [str(TCCLI), "tione", action, "--region", "ap-guangzhou", "--endpoint", endpoint, *extra]
        for name, value in members.items():
            args += [f"--{name}", value if isinstance(value, str) else json.dumps(value)]
        done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        reply = json.loads(done.stdout)
        reply.pop("RequestId", None)
        if "--waiter" not in extra:
            assert reply_mismatches(action, reply) == []
        return reply

    return run


def test_tccli_runs_the_lifecycle(tione, logistic_model_dir):
    created = tione(
        "CreateModelService",
        ServiceGroupName="tccli-life",
        InstanceType="TI.S.SMALL.POST",
        Replicas=1,
        ModelInfo={"CosPathInfo": {"Paths": [str(logistic_model_dir)]}},
        ServiceLimit={"EnableInstanceRpsLimit": True, "InstanceRpsLimit": 100},
    )["Service"]
    service_id, group_id = created["ServiceId"], created["ServiceGroupId"]
    waiter = json.dumps({"expr": "Service.Status", "to": NORMAL, "timeout": 120})
    tione("DescribeModelService", "--waiter", waiter, ServiceId=service_id)
    running = tione("DescribeModelService", ServiceId=service_id)["Service"]
    assert running["Status"] == NORMAL and running["ServiceInfo"]["Status"]["ReadyReplicas"] == 1
    try:
        groups = tione("DescribeModelServiceGroups", Filters=[{"Name": "ServiceGroupId", "Values": [group_id]}])
        assert groups["TotalCount"] == 1 and groups["ServiceGroups"][0]["ServiceGroupName"] == "tccli-life"
        group = tione("DescribeModelServiceGroup", ServiceGroupId=group_id)["ServiceGroup"]
        assert [s["ServiceId"] for s in group["Services"]] == [service_id]
        weighted = tione(
            "ModifyServiceGroupWeights", ServiceGroupId=group_id, Weights=[{"ServiceId": service_id, "Weight": 100}]
        )
        assert [s["Weight"] for s in weighted["ServiceGroup"]["Services"]] == [100]
        info = tione("DescribeModelServiceCallInfo", ServiceGroupId=group_id)["ServiceCallInfoV2"]
        assert info["InternetEndpoint"].endswith(f"/groups/{group_id}/predict") and info["EnableLimit"] is True
        events = tione("DescribeEvents", Service="INFER", ServiceId=service_id)
        assert events["TotalCount"] >= 1 and {"Id", "Message", "Count", "LastTimestamp"} <= set(events["Events"][0])
        logs = tione("DescribeLogs", Service="INFER", ServiceId=service_id, Limit=3)
        assert 1 <= len(logs["Content"]) <= 3 and logs["Content"][0]["PodName"].startswith("ms-")
        scaled = tione("ModifyModelService", ServiceId=service_id, ServiceAction="SCALE", Replicas=0)["Service"]
        assert scaled["ServiceInfo"]["Replicas"] == 0
    finally:
        tione("DeleteModelService", ServiceId=service_id)
        tione("DeleteModelServiceGroup", ServiceGroupId=group_id)
    assert (
        tione("DescribeModelServiceGroups", Filters=[{"Name": "ServiceGroupId", "Values": [group_id]}])["TotalCount"]
        == 0
    )
