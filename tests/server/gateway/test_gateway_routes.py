"""The route table's choices: versions by weight, replicas by load, state kept across pushes."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tcdeploy.server.gateway import Replica, RouteTable
from tcdeploy.server.gateway.routes import NoRoute

from .gateway_harness import make_group, make_version


def table_with(*versions, replicas_per_version: int = 1) -> RouteTable:
    routes = RouteTable()
    routes.put_group(make_group("grp-a", *versions))
    for version in versions:
        routes.set_replicas(
            version.service_id,
            [
                Replica(f"ms-{version.service_id}-{i}", f"/tmp/{version.service_id}-{i}.sock")
                for i in range(replicas_per_version)
            ],
        )
    return routes


def split(routes: RouteTable, requests: int) -> Counter:
    group = routes.group("grp-a")
    return Counter(routes.choose_version(group).service_id for _ in range(requests))


def test_weights_70_30_over_10000_requests_within_2_points():
    routes = table_with(make_version("svc-a", "grp-a", 70), make_version("svc-b", "grp-a", 30))
    counts = split(routes, 10_000)
    assert abs(counts["svc-a"] / 10_000 - 0.70) <= 0.02
    assert abs(counts["svc-b"] / 10_000 - 0.30) <= 0.02


def test_smooth_round_robin_interleaves_instead_of_bursting():
    routes = table_with(make_version("svc-a", "grp-a", 50), make_version("svc-b", "grp-a", 50))
    group = routes.group("grp-a")
    picks = [routes.choose_version(group).service_id for _ in range(6)]
    assert all(first != second for first, second in zip(picks, picks[1:]))


@pytest.mark.parametrize("weights", [(1, 99), (33, 67), (100, 0), (5, 5)])
def test_split_matches_any_weights(weights):
    routes = table_with(make_version("svc-a", "grp-a", weights[0]), make_version("svc-b", "grp-a", weights[1]))
    counts = split(routes, 10_000)
    assert abs(counts["svc-a"] / 10_000 - weights[0] / sum(weights)) <= 0.02


def test_versions_that_cannot_serve_get_no_traffic():
    routes = table_with(make_version("svc-a", "grp-a", 50), make_version("svc-b", "grp-a", 50, status="Stopped"))
    assert split(routes, 100) == Counter({"svc-a": 100})
    routes.put_group(make_group("grp-a", make_version("svc-a", "grp-a", 50), make_version("svc-b", "grp-a", 50)))
    routes.set_replicas("svc-a", [])
    assert split(routes, 100) == Counter({"svc-b": 100})


@pytest.mark.parametrize(
    "status,weight,ready,reason",
    [
        ("Stopped", 100, 1, "is not running"),
        ("Running", 0, 1, "weight above 0"),
        ("Running", 100, 0, "no ready replica"),
    ],
)
def test_no_route_says_why(status, weight, ready, reason):
    routes = table_with(make_version("svc-a", "grp-a", weight, status=status), replicas_per_version=ready)
    with pytest.raises(NoRoute, match=reason):
        routes.choose_version(routes.group("grp-a"))


def test_fewest_inflight_replica_wins_and_ties_go_round_robin():
    routes = table_with(make_version("svc-a", "grp-a"), replicas_per_version=3)
    picks = [routes.choose_replica("svc-a").pod_name for _ in range(6)]
    assert Counter(picks) == Counter({"ms-svc-a-0": 2, "ms-svc-a-1": 2, "ms-svc-a-2": 2})
    busy = routes.choose_replica("svc-a")
    busy.begin()
    assert all(routes.choose_replica("svc-a") is not busy for _ in range(10))


def test_set_replicas_keeps_objects_and_counters_of_pods_that_stay():
    routes = table_with(make_version("svc-a", "grp-a"), replicas_per_version=2)
    kept = routes.choose_replica("svc-a")
    kept.begin()
    routes.set_replicas("svc-a", [Replica(kept.pod_name, "/tmp/moved.sock"), Replica("ms-new", "/tmp/new.sock")])
    assert routes.choose_replica("svc-a").pod_name == "ms-new"  # the kept one is still busy
    assert kept.address == "/tmp/moved.sock" and kept.inflight == 1


def test_put_group_keeps_replicas_of_remaining_services_and_drops_the_others():
    routes = table_with(make_version("svc-a", "grp-a", 50), make_version("svc-b", "grp-a", 50))
    routes.put_group(make_group("grp-a", make_version("svc-a", "grp-a", 100)))
    assert routes.choose_replica("svc-a") is not None
    assert routes.choose_replica("svc-b") is None
    assert routes.service("svc-b") is None


def test_remove_group_forgets_services_and_tells_listeners():
    routes = table_with(make_version("svc-a", "grp-a"))
    removed = []
    routes.on_group_removed(removed.append)
    routes.remove_group("grp-a")
    assert routes.group("grp-a") is None and routes.service("svc-a") is None and removed == ["grp-a"]


def test_retry_choice_skips_the_failed_replica_unless_it_is_the_only_one():
    routes = table_with(make_version("svc-a", "grp-a"), replicas_per_version=2)
    failed = routes.choose_replica("svc-a")
    assert all(routes.choose_replica("svc-a", exclude=failed) is not failed for _ in range(5))
    routes.set_replicas("svc-a", [failed])
    assert routes.choose_replica("svc-a", exclude=failed) is failed


@pytest.mark.anyio
async def test_drain_stops_new_requests_and_waits_for_inflight():
    routes = table_with(make_version("svc-a", "grp-a"), replicas_per_version=2)
    busy = routes.choose_replica("svc-a")
    busy.begin()
    drain = asyncio.create_task(routes.drain(busy.pod_name, timeout=5))
    await asyncio.sleep(0.05)
    assert not drain.done()
    assert all(routes.choose_replica("svc-a") is not busy for _ in range(5))
    busy.end()
    await asyncio.wait_for(drain, 1)


@pytest.mark.anyio
async def test_drain_gives_up_after_timeout_and_finds_unlisted_pods():
    routes = table_with(make_version("svc-a", "grp-a"), replicas_per_version=1)
    busy = routes.choose_replica("svc-a")
    busy.begin()
    routes.set_replicas("svc-a", [])  # the control plane may unlist a pod before draining it
    started = asyncio.get_running_loop().time()
    await routes.drain(busy.pod_name, timeout=0.2)
    assert 0.15 < asyncio.get_running_loop().time() - started < 1
    await routes.drain("ms-unknown", timeout=5)  # nothing to wait for


def test_drained_pod_stays_out_while_listed_and_returns_after_being_unlisted():
    routes = table_with(make_version("svc-a", "grp-a"), replicas_per_version=1)
    pod = routes.choose_replica("svc-a")
    asyncio.run(routes.drain(pod.pod_name))
    routes.set_replicas("svc-a", [Replica(pod.pod_name, pod.address)])
    assert routes.choose_replica("svc-a") is None
    routes.set_replicas("svc-a", [])
    routes.set_replicas("svc-a", [Replica(pod.pod_name, pod.address)])
    assert routes.choose_replica("svc-a").pod_name == pod.pod_name
