"""`tcdeploy server --runtime ray` end to end: real replicas as actors on the two-node cluster,
driven through the cloud API and the gateway, broken under load."""

from __future__ import annotations

import signal

import httpx
import mlflow.pyfunc
import pytest

from tcdeploy.server.runtime.ray_runtime import RayOptions
from tests.resilience.resilience_helpers import (
    deploy,
    group_url,
    iris_body,
    service,
    update,
    varied_bodies,
    wait_replaced,
    wait_settled,
    wait_until,
)
from tests.resilience.resilience_load import Load, answers_seen, describe, failed
from tests.support.cloudapi import call, common_client, error_of, pod_facts
from tests.support.models import iris_frame

from .ray_helpers import NODE, replica_process, replica_processes, replica_tcp, start_ray_server, tione_pods

SMALL = "TI.S.MICRO.POST"  # 1 CPU, 1 GiB: two fit a node of the test cluster, with room to roll


@pytest.fixture(scope="session")
def ray_server(ray_cluster, tmp_path_factory):
    server = start_ray_server(tmp_path_factory.mktemp("ray-server") / "data", ray_cluster.address)
    try:
        yield server
    finally:
        server.stop(signal.SIGTERM)


@pytest.fixture(scope="session")
def wedata(ray_server):
    return common_client(ray_server, "wedata")


@pytest.fixture(scope="session")
def pair(ray_server, wedata, logistic_model_dir):
    """A service of two replicas of the logistic model on the cluster."""
    return deploy(wedata, "ray-pair", logistic_model_dir, replicas=2, instance_type=SMALL)


def test_two_replicas_land_on_two_nodes_and_answer_the_models_predictions(ray_server, wedata, pair, logistic_model_dir):
    pods = tione_pods(ray_server, pair["ServiceId"])
    assert len(pods) == 2 and len({pod["NodeId"] for pod in pods}) == 2, pods
    assert all(pod["NodeIP"] == "127.0.0.1" for pod in pods)
    # The pod page names the node too.
    for pod in pods:
        link = call(
            wedata,
            "CreateModelServicePodUrl",
            {"WorkspaceId": "default", "ServiceId": pair["ServiceId"], "PodName": pod["Name"]},
        )
        page = httpx.get(link["Data"]["Url"], timeout=30)
        assert page.status_code == 200 and f"<dt>Node</dt><dd>{pod['NodeId']} (127.0.0.1)</dd>" in page.text

    X, _ = iris_frame()
    expected = mlflow.pyfunc.load_model(str(logistic_model_dir)).predict(X.iloc[:20]).tolist()
    for _ in range(4):  # both replicas, by the least-busy pick
        reply = httpx.post(group_url(ray_server, pair["ServiceGroupId"]), content=iris_body(20), timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["predictions"] == expected

    # The replica's TCP port is reachable by the cluster network: nothing without the pod's token.
    for pod in pods:
        url = f"http://{replica_tcp(pod['Name'])}/invocations"
        for headers in ({}, {"X-Tcdeploy-Replica-Token": "guess"}):
            refused = httpx.post(url, content=iris_body(1), headers={"Content-Type": "application/json", **headers})
            assert refused.status_code == 403, refused.text


def test_an_actor_process_killed_under_load_fails_no_request_and_is_replaced(ray_server, wedata, pair):
    victim = pod_facts(service(wedata, pair["ServiceId"]))[0]
    actor = replica_process(victim["PodName"]).parent()
    with Load(group_url(ray_server, pair["ServiceGroupId"]), varied_bodies) as load:
        load.wait_for_calls(30)
        actor.kill()  # the Ray worker that hosts the actor: its replica dies with it
        wait_replaced(wedata, pair["ServiceId"], victim, timeout=120)
        load.wait_for_calls(30)
    assert not failed(load.calls), describe(load.calls)
    now = next(p for p in pod_facts(service(wedata, pair["ServiceId"])) if p["PodName"] == victim["PodName"])
    assert now["RestartCount"] == victim["RestartCount"] + 1
    assert replica_process(victim["PodName"]).parent().pid != actor.pid, "a new actor process"


def test_a_type_no_node_can_hold_is_refused_and_the_billing_specs_say_so(ray_server, wedata, logistic_model_dir):
    params = {
        "WorkspaceId": "default",
        "ServiceName": "ray-too-big",
        "Services": [
            {
                "InstanceType": "TI.S.XLARGE.POST",
                "Replicas": 1,
                "MlModelInfo": {"ModelPath": str(logistic_model_dir)},
            }
        ],
    }
    err = error_of(wedata, "CreateMLModelServices", params)
    assert err.code == "InvalidParameterValue", err
    assert "InstanceType" in err.message and "cannot be placed" in err.message and "4 CPU" in err.message
    specs = call(wedata, "GetBillingSpecs", {"WorkspaceId": "default", "ChargeType": "INFERENCE"})["Data"]
    available = {spec["SpecName"]: spec["Available"] for spec in specs["SpecInfos"]}
    # The nodes offer 4 CPU and 6 GiB each: up to 2C4G fits, 4C8G and 8C16G do not.
    assert available == {
        "TI.S.MICRO.POST": True,
        "TI.S.SMALL.POST": True,
        "TI.S.MEDIUM.POST": True,
        "TI.S.LARGE.POST": False,
        "TI.S.XLARGE.POST": False,
    }


def test_a_rolling_update_under_load_fails_no_request(ray_server, wedata, pair, forest_model_dir):
    before = {p["PodName"] for p in pod_facts(service(wedata, pair["ServiceId"]))}
    with Load(group_url(ray_server, pair["ServiceGroupId"]), varied_bodies) as load:
        load.wait_for_calls(20)
        update(wedata, pair["ServiceId"], MlModelInfo={"ModelPath": str(forest_model_dir)})
        wait_until(lambda: service(wedata, pair["ServiceId"])["Status"] == "UPDATING", timeout=10, interval=0.05)
        detail = wait_settled(wedata, pair["ServiceId"], ready=2, timeout=180)
        load.wait_for_calls(20)
    assert not failed(load.calls), describe(load.calls)
    after = {p["PodName"] for p in pod_facts(detail)}
    assert len(after) == 2 and not before & after, "every replica replaced"
    assert answers_seen(load.calls) <= {0, 1, 2}
    assert all(not replica_processes(pod) for pod in before), "the old replicas are gone"


def test_a_killed_server_restarted_adopts_its_replicas_which_kept_serving(ray_cluster, tmp_path, logistic_model_dir):
    data_dir = tmp_path / "data"
    server = start_ray_server(data_dir, ray_cluster.address)
    try:
        wedata = common_client(server, "wedata")
        svc = deploy(wedata, "ray-adopt", logistic_model_dir, replicas=2, instance_type=SMALL)
        pods = {p["PodName"] for p in pod_facts(svc)}
        pids = {pod: replica_process(pod).pid for pod in pods}

        # A second server on the same namespace is refused while the first holds its lease.
        namespace = RayOptions().namespace_for(data_dir)
        with pytest.raises(RuntimeError, match="in use by another tcdeploy server"):
            start_ray_server(tmp_path / "rival", ray_cluster.address, "--ray-namespace", namespace)

        server.stop(signal.SIGKILL)
        assert {pod: replica_process(pod).pid for pod in pods} == pids, "the replicas outlive their server"
        server = start_ray_server(data_dir, ray_cluster.address)
        wedata = common_client(server, "wedata")
        detail = wait_settled(wedata, svc["ServiceId"], ready=2, timeout=120)
        assert {p["PodName"] for p in pod_facts(detail)} == pods, "the same pods, adopted"
        assert {pod: replica_process(pod).pid for pod in pods} == pids, "not restarted, not duplicated"
        reply = httpx.post(group_url(server, svc["ServiceGroupId"]), content=iris_body(3), timeout=60)
        assert reply.status_code == 200 and len(reply.json()["predictions"]) == 3, reply.text

        call(wedata, "DeleteMLModelService", {"WorkspaceId": "default", "ServiceId": svc["ServiceId"]})
        gone = wait_until(lambda: not any(replica_processes(pod) for pod in pods), timeout=60)
        assert gone, "a deleted service's actors are gone"
    finally:
        server.stop(signal.SIGTERM)


def test_a_lost_node_has_its_replicas_rescheduled_on_the_others(ray_cluster, ray_server, wedata, logistic_model_dir):
    extra = ray_cluster.add_node(**NODE)
    ray_cluster.wait_for_nodes()
    try:
        svc = deploy(wedata, "ray-spread", logistic_model_dir, replicas=3, instance_type=SMALL)
        nodes = {pod["Name"]: pod["NodeId"] for pod in tione_pods(ray_server, svc["ServiceId"])}
        assert len(set(nodes.values())) == 3, f"one replica a node: {nodes}"
        lost = next(pod for pod, node in nodes.items() if node == extra.node_id)
        before = next(p for p in pod_facts(svc) if p["PodName"] == lost)
    finally:
        ray_cluster.remove_node(extra, allow_graceful=False)
    wait_replaced(wedata, svc["ServiceId"], before, timeout=180)
    moved = {pod["Name"]: pod["NodeId"] for pod in tione_pods(ray_server, svc["ServiceId"])}
    assert moved[lost] not in (extra.node_id, ""), moved
    reply = httpx.post(group_url(ray_server, svc["ServiceGroupId"]), content=iris_body(2), timeout=60)
    assert reply.status_code == 200, reply.text
