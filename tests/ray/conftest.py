"""The Ray tests' cluster: two nodes on this machine, in a network namespace with only loopback.

`run_in_netns.sh` (run by `make test`) makes the namespace and runs these tests in it. Anywhere
else they skip, saying why: Ray would bind the machine's other addresses. One cluster serves the
whole session; it is torn down by the processes it started (never `ray stop`, which would kill
every Ray process on the machine).
"""

from __future__ import annotations

import socket

import pytest

from tests.ray.ray_helpers import NODE
from tests.server.runtime.conftest import anyio_backend, broken_model_dir, recorder  # noqa: F401  (fixtures)


def loopback_only() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@pytest.fixture(scope="session", autouse=True)
def in_loopback_namespace() -> None:
    if not loopback_only():
        pytest.skip("Ray tests run only in a loopback-only network namespace: sh tests/ray/run_in_netns.sh")


@pytest.fixture(scope="session")
def ray_cluster(in_loopback_namespace):
    """A head and a worker node (the dashboard off), both taking replicas."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    try:
        cluster.add_node(**NODE)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        import ray

        ray.shutdown()  # this process may still be a driver: the head cannot be removed under it
        cluster.shutdown()
