"""State lives in the store: a killed server comes back with everything; keys stay in their workspaces."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.support.cloudapi import call, common_client, create_service, error_of, ready_replicas, wait_for_status
from tests.support.server import start_server


def replica_pids(data_dir) -> set[int]:
    """This data dir's replicas, not the zygote that forks them (it serves nothing itself)."""
    pids = set()
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "tcdeploy.server.replica.zygote" in cmd:
            continue
        if "tcdeploy.server.replica" in cmd and str(data_dir) in cmd:
            pids.add(proc.pid)
    return pids


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.fixture
def server(tmp_path):
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()


def test_a_killed_server_restarts_with_its_state_and_replicas(server, logistic_model_dir):
    wedata, tione = common_client(server, "wedata"), common_client(server, "tione")
    created = create_service(
        wedata,
        {
            "WorkspaceId": "default",
            "ServiceName": "durable",
            "AuthorizationEnable": True,
            "InferenceTablePushEnable": True,
            "Services": [
                {
                    "InstanceType": "TI.S.SMALL.POST",
                    "Replicas": 2,
                    "ServiceLimit": {
                        "EnableInstanceRpsLimit": True,
                        "InstanceRpsLimit": 50,
                        "EnableInstanceReqLimit": False,
                        "InstanceReqLimit": 0,
                    },
                    "MlModelInfo": {"ModelPath": str(logistic_model_dir)},
                }
            ],
        },
    )
    sid, gid = created["ServiceId"], created["ServiceGroupId"]
    wait_for_status(wedata, sid, {"RUNNING"})
    token = call(tione, "DescribeModelServiceCallInfo", {"ServiceGroupId": gid})["ServiceCallInfoV2"]["AuthToken"]
    before = replica_pids(server.data_dir)
    assert len(before) == 2

    server.stop(signal.SIGKILL)
    # Replicas die with their server (parent-death signal): no orphans left behind.
    assert wait_until(lambda: not (replica_pids(server.data_dir) & before)), "orphaned replicas"
    server.start()

    detail = wait_for_status(wedata, sid, {"RUNNING"})
    assert ready_replicas(detail) == 2 and detail["AuthorizationEnable"] is True
    assert detail["ServiceLimit"]["InstanceRpsLimit"] == 50 and detail["InferenceTablePushEnable"] is True
    info = call(tione, "DescribeModelServiceCallInfo", {"ServiceGroupId": gid})["ServiceCallInfoV2"]
    assert info["AuthToken"] == token
    assert len(replica_pids(server.data_dir)) == 2


def test_a_clean_stop_leaves_no_replica_behind(server, logistic_model_dir):
    wedata = common_client(server, "wedata")
    created = create_service(
        wedata,
        {
            "WorkspaceId": "default",
            "ServiceName": "stopper",
            "Services": [{"InstanceType": "TI.S.SMALL.POST", "MlModelInfo": {"ModelPath": str(logistic_model_dir)}}],
        },
    )
    wait_for_status(wedata, created["ServiceId"], {"RUNNING"})
    assert replica_pids(server.data_dir)
    assert server.stop(signal.SIGTERM) == 0
    assert wait_until(lambda: not replica_pids(server.data_dir), timeout=5)


def test_a_key_limited_to_a_workspace_sees_nothing_else(tmp_path, logistic_model_dir):
    data_dir = tmp_path / "data"
    added = subprocess.run(
        [sys.executable, "-m", "tcdeploy", "add-key", "--workspace", "team-a", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    keys = json.loads((data_dir / "credentials.json").read_text())["Keys"]
    assert (data_dir / "credentials.json").stat().st_mode & 0o777 == 0o600
    limited = next(k for k in keys if k["Workspaces"] == ["team-a"])
    assert limited["SecretKey"] not in added.stdout, "a secret was printed"
    server = start_server(data_dir)
    try:
        admin = common_client(server, "wedata")
        team_a = common_client(server, "wedata", limited["SecretId"], limited["SecretKey"])

        def body(ws, name):
            return {
                "WorkspaceId": ws,
                "ServiceName": name,
                "Services": [
                    {
                        "InstanceType": "TI.S.SMALL.POST",
                        "Replicas": 0,
                        "MlModelInfo": {"ModelPath": str(logistic_model_dir)},
                    }
                ],
            }

        theirs = create_service(admin, body("team-b", "b-svc"))
        create_service(team_a, body("team-a", "a-svc"))
        # Acting in another workspace is refused outright...
        for action, params in [
            ("GetMLModelService", {"WorkspaceId": "team-b", "ServiceId": theirs["ServiceId"]}),
            ("ListMLModelServiceGroups", {"WorkspaceId": "team-b"}),
            ("DeleteMLModelService", {"WorkspaceId": "team-b", "ServiceId": theirs["ServiceId"]}),
            ("CreateMLModelServices", body("team-b", "sneaky")),
        ]:
            assert error_of(team_a, action, params).code == "AuthFailure.UnauthorizedOperation", action
        # ...and from its own workspace, another workspace's ids do not exist.
        assert (
            error_of(team_a, "GetMLModelService", {"WorkspaceId": "team-a", "ServiceId": theirs["ServiceId"]}).code
            == "ResourceNotFound"
        )
        listed = call(team_a, "ListMLModelServiceGroups", {"WorkspaceId": "team-a"})["Data"]
        assert [g["ServiceGroupName"] for g in listed["Rows"]] == ["a-svc"]
        assert (
            call(admin, "GetMLModelService", {"WorkspaceId": "team-b", "ServiceId": theirs["ServiceId"]})["Data"][
                "ServiceName"
            ]
            == "b-svc"
        )
    finally:
        server.stop()
