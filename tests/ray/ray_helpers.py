"""Servers on the Ray runtime, and the processes behind their pods, for the Ray tests."""

from __future__ import annotations

from pathlib import Path

import psutil

from tcdeploy.server.runtime.paths import REPLICA_MODULE
from tests.support.cloudapi import call, common_client
from tests.support.server import BackgroundServer, start_server

# Each node of the test cluster: enough logical CPU and memory for a rolling update of two 1C1G
# replicas, and the resource that marks a node as one that takes replicas.
NODE = {
    "num_cpus": 4,
    "memory": 6 * 2**30,
    "object_store_memory": 80 * 2**20,
    "resources": {"tcdeploy_replica": 1},
}


def start_ray_server(data_dir: Path, address: str, *extra: str) -> BackgroundServer:
    """A `tcdeploy server --runtime ray` on the test cluster (every node sees this machine's files)."""
    args = ("--runtime", "ray", "--ray-address", address, "--ray-shared-storage", *extra)
    return start_server(data_dir, extra_args=args)


def tione_pods(server: BackgroundServer, service_id: str) -> list[dict]:
    """The service's pods as TI-ONE's `Pod`s (they name the node: `NodeId`, `NodeIP`)."""
    reply = call(common_client(server, "tione"), "DescribeModelService", {"ServiceId": service_id})
    return reply["Service"]["ServiceInfo"]["PodInfos"] or []


def replica_processes(pod_name: str) -> list[psutil.Process]:
    """The live replica processes of a pod, wherever on this machine (any node) they run."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE or REPLICA_MODULE not in cmd or "--pod-name" not in cmd:
            continue
        if cmd[cmd.index("--pod-name") + 1] == pod_name:
            found.append(proc)
    return found


def replica_process(pod_name: str) -> psutil.Process:
    procs = replica_processes(pod_name)
    assert len(procs) == 1, f"{pod_name}: {len(procs)} replica processes"
    return procs[0]


def replica_tcp(pod_name: str) -> str:
    """The `HOST:PORT` the pod's replica listens on for the gateway."""
    cmd = replica_process(pod_name).cmdline()
    return cmd[cmd.index("--tcp") + 1]
