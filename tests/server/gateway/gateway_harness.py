"""The gateway's test harness (its fixtures are in conftest.py): replica processes on unix
sockets — the real replica with a real model, or a model-free stand-in where a test needs a slow
request — and a gateway served by uvicorn on a free loopback port, with a route table filled by
hand."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette

from tcdeploy.server.gateway import Gateway, Group, Replica, RouteTable, UnixHttpTransport, Version, gateway_routes

HERE = Path(__file__).parent
STANDIN = HERE / "standin_replica.py"


@dataclass
class ReplicaProcess:
    pod_name: str
    address: str
    process: subprocess.Popen
    log_path: Path

    def replica(self) -> Replica:
        return Replica(self.pod_name, self.address)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _wait_ready(replica: ReplicaProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    transport = httpx.HTTPTransport(uds=replica.address)
    with httpx.Client(transport=transport, base_url="http://replica", timeout=2) as client:
        while time.monotonic() < deadline:
            if replica.process.poll() is not None:
                raise RuntimeError(f"replica {replica.pod_name} exited early:\n{replica.log()}")
            try:
                if client.get("/ping").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    replica.kill()
    raise RuntimeError(f"replica {replica.pod_name} not ready in {timeout}s:\n{replica.log()}")


class ReplicaPool:
    """Starts replica processes and kills them all at the end, failure or not."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))  # short: sockets max 107 chars
        self.replicas: list[ReplicaProcess] = []

    def start(self, pod_name: str, model_dir: Path | None = None, timeout: float = 120.0) -> ReplicaProcess:
        """A real replica serving `model_dir`, or the stand-in when model_dir is None."""
        return self.start_many([pod_name], model_dir, timeout)[0]

    def start_many(
        self, names: list[str], model_dir: Path | None = None, timeout: float = 120.0
    ) -> list[ReplicaProcess]:
        """Start several replicas at once (a real one takes seconds to load its model)."""
        started = [self._spawn(name, model_dir) for name in names]
        for replica in started:
            _wait_ready(replica, timeout)
        return started

    def _spawn(self, pod_name: str, model_dir: Path | None) -> ReplicaProcess:
        address = str(self.directory / f"{pod_name}.sock")
        if model_dir is None:
            command = [sys.executable, str(STANDIN), address]
        else:
            command = [
                sys.executable,
                "-m",
                "tcdeploy.server.replica",
                "--model-uri",
                str(model_dir),
                "--uds",
                address,
                "--pod-name",
                pod_name,
            ]
        log_path = self.directory / f"{pod_name}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        replica = ReplicaProcess(pod_name, address, process, log_path)
        self.replicas.append(replica)
        return replica

    def close(self) -> None:
        for replica in self.replicas:
            replica.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


def make_group(group_id: str, *versions: Version, auth: bool = False, token_hashes=frozenset()) -> Group:
    return Group(
        group_id=group_id,
        name=group_id,
        workspace_id="default",
        auth_enabled=auth,
        token_hashes=frozenset(token_hashes),
        versions={v.service_id: v for v in versions},
    )


def make_version(
    service_id: str,
    group_id: str,
    weight: int = 100,
    status: str = "Running",
    rps: float | None = None,
    table: bool = False,
) -> Version:
    return Version(
        service_id=service_id,
        service_name=f"name-{service_id}",
        group_id=group_id,
        version="1",
        weight=weight,
        status=status,
        rps_limit_per_replica=rps,
        inference_table=table,
    )


@dataclass
class Harness:
    gateway: Gateway
    routes: RouteTable
    client: httpx.AsyncClient
    url: str


@asynccontextmanager
async def serve_gateway(routes: RouteTable, data_dir: Path, **options):
    """A Gateway behind uvicorn on a free loopback port, and an httpx client for it."""
    gateway = Gateway(routes, data_dir=data_dir, **options)
    await gateway.start()
    app = Starlette(routes=gateway_routes(gateway))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", http="httptools")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    url = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    client = httpx.AsyncClient(base_url=url, limits=limits, timeout=30)
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield Harness(gateway, routes, client, url)
    finally:
        await client.aclose()
        server.should_exit = True
        await task
        await gateway.close()
        sock.close()


IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
IRIS_ROW = [5.1, 3.5, 1.4, 0.2]
IRIS_BODY = json.dumps({"dataframe_split": {"columns": IRIS_COLUMNS, "data": [IRIS_ROW]}}).encode()


class CountingTransport(UnixHttpTransport):
    """The real transport, counting what it sends: shows what reached (or did not reach) a replica."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    async def send(self, address, path, body, headers):
        self.sent += 1
        return await super().send(address, path, body, headers)
