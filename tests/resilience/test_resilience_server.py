"""Under failure, of the server itself: killed with SIGKILL and started again, and a clean stop."""

from __future__ import annotations

import signal
import time

from tcdeploy.server.gateway import read_inference_table
from tests.support.cloudapi import call, common_client, pod_facts

from .resilience_helpers import (
    WS,
    deploy,
    group_url,
    iris_body,
    replica_pids,
    rows_lost,
    service,
    update,
    varied_bodies,
    wait_settled,
    wait_until,
)
from .resilience_load import Load, describe, during, failed

# What a restart may change; everything else must come back as it was.
VOLATILE = {"Status", "WorkloadStatus", "PodInfos", "UpdateTime"}


def settings_of(wedata, tione, group_id: str) -> dict:
    """Everything the control plane says about a group, without what runs (pods, states, times)."""
    groups = call(
        wedata,
        "ListMLModelServiceGroups",
        {"WorkspaceId": WS, "Filters": [{"Name": "ServiceGroupId", "Values": [group_id]}]},
    )["Data"]["Rows"]
    services = [{k: v for k, v in s.items() if k not in VOLATILE} for s in groups[0]["Services"]]
    info = call(tione, "DescribeModelServiceCallInfo", {"ServiceGroupId": group_id})["ServiceCallInfoV2"]
    tokens = sorted((t["Base"]["Name"], t["Base"]["Value"]) for t in info["AuthTokens"])
    return {
        "services": services,
        "auth": info["AuthorizationEnable"],
        "tokens": tokens,
        "group": {k: v for k, v in groups[0].items() if k not in VOLATILE | {"Services"}},
    }


def table_ids(data_dir, group_id: str) -> list[str]:
    return list(read_inference_table(data_dir, group_id)["request_id"])


def test_a_killed_server_comes_back_with_its_state_replicas_and_flushed_rows(
    own_server, logistic_model_dir, sentinel_model_dir
):
    server = own_server
    wedata, tione = common_client(server, "wedata"), common_client(server, "tione")
    first = deploy(
        wedata,
        "durable-a",
        logistic_model_dir,
        AuthorizationEnable=True,
        InferenceTablePushEnable=True,
        ServiceDescription="the first version",
    )
    gid = first["ServiceGroupId"]
    update(
        wedata,
        first["ServiceId"],
        ServiceLimit={
            "EnableInstanceRpsLimit": True,
            "InstanceRpsLimit": 5000,
            "EnableInstanceReqLimit": False,
            "InstanceReqLimit": 0,
        },
    )
    second = deploy(wedata, "durable-b", sentinel_model_dir, group_id=gid, InferenceTablePushEnable=True)
    call(
        tione,
        "ModifyServiceGroupWeights",
        {
            "ServiceGroupId": gid,
            "Weights": [
                {"ServiceId": first["ServiceId"], "Weight": 70},
                {"ServiceId": second["ServiceId"], "Weight": 30},
            ],
        },
    )
    call(tione, "CreateModelServiceAuthToken", {"ServiceGroupId": gid, "Name": "second"})
    before = settings_of(wedata, tione, gid)
    token = before["tokens"][0][1]
    old_pids = set(replica_pids(server.data_dir))
    assert len(old_pids) == 2

    with Load(group_url(server, gid), varied_bodies, headers={"Authorization": token}) as load:
        load.wait_for_calls(60)
        flushed = set(table_ids(server.data_dir, gid))
        killed = time.monotonic()  # before the signal: clients see it at once
        server.stop(signal.SIGKILL)
        assert wait_until(lambda: not set(replica_pids(server.data_dir)) & old_pids, timeout=10), (
            "replicas outlived their server"
        )
        server.start()
        up = time.monotonic()
        for sid in (first["ServiceId"], second["ServiceId"]):
            wait_settled(wedata, sid, ready=1)
        load.wait_for_calls(40)
    calls = load.calls
    assert settings_of(wedata, tione, gid) == before
    # The replicas that should run do, once each: none duplicated, none orphaned.
    pods = {p["PodName"] for sid in (first["ServiceId"], second["ServiceId"]) for p in pod_facts(service(wedata, sid))}
    assert sorted(replica_pids(server.data_dir).values()) == sorted(pods)
    assert len(pods) == 2
    assert server.stop(signal.SIGTERM) == 0  # a clean stop: every row since the restart is written

    # Only while the server itself was down did requests fail, and then for want of a connection.
    outside = during(calls, 0, killed) + during(calls, up)
    assert not failed(outside), describe(outside)
    assert all(c.status is None for c in failed(calls)), describe(calls)
    # No row is lost, not even of the requests the killed server answered last: rows are
    # journaled before their reply leaves.
    rows = table_ids(server.data_dir, gid)
    assert len(rows) == len(set(rows)), "a row was written twice"
    assert flushed <= set(rows)
    lost = rows_lost(calls, set(rows))
    assert not lost, f"{len(lost)} answered requests have no row: {describe(lost)}"
    served_after = {c.request_id for c in calls if c.ok and c.started >= up}
    assert served_after <= set(rows)


def test_a_clean_stop_under_load_answers_what_it_accepted_and_leaves_nothing_running(own_server, sentinel_model_dir):
    server = own_server
    wedata = common_client(server, "wedata")
    svc = deploy(wedata, "clean-stop", sentinel_model_dir, replicas=2, InferenceTablePushEnable=True)
    gid = svc["ServiceGroupId"]
    slow = iris_body(sleep_s=0.3)
    with Load(group_url(server, gid), slow, workers=6, pause=0.0) as load:
        load.wait_for_calls(30)
        stopping = time.monotonic()
        assert server.stop(signal.SIGTERM) == 0
        stopped = time.monotonic()
    calls = load.calls
    assert not replica_pids(server.data_dir), "a replica outlived its server"
    rows = table_ids(server.data_dir, gid)
    answered = [c.request_id for c in calls if c.ok]
    # Exactly one row per answered request; a request the server took in was answered.
    assert sorted(rows) == sorted(answered)
    in_flight = [c for c in calls if c.started < stopping < c.ended]
    assert in_flight and all(c.ok for c in in_flight), describe(in_flight)
    assert not failed(during(calls, 0, stopping)), describe(calls)
    assert all(c.status is None for c in failed(calls)), describe(calls)
    assert stopped - stopping < 30
