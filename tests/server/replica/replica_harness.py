"""Start real replica processes for tests and talk to them over a unix socket or TCP."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from tcdeploy.server.background import free_port

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


class Replica:
    """A running `python -m tcdeploy.server.replica` and how to reach it."""

    def __init__(self, process: subprocess.Popen, log_dir: Path, uds: str | None, port: int | None):
        self.process = process
        self.log_dir = log_dir
        self.uds = uds
        self.port = port

    @property
    def base_url(self) -> str:
        return "http://replica" if self.uds else f"http://127.0.0.1:{self.port}"

    def transport(self) -> httpx.HTTPTransport:
        return httpx.HTTPTransport(uds=self.uds) if self.uds else httpx.HTTPTransport()

    def async_transport(self) -> httpx.AsyncHTTPTransport:
        return httpx.AsyncHTTPTransport(uds=self.uds) if self.uds else httpx.AsyncHTTPTransport()

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(transport=self.transport(), base_url=self.base_url, timeout=30, **kwargs)

    def async_client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.async_transport(), base_url=self.base_url, timeout=30, **kwargs)

    def stdout(self) -> str:
        return (self.log_dir / "stdout.txt").read_text()

    def stderr(self) -> str:
        return (self.log_dir / "stderr.txt").read_text()


def short_socket_path() -> str:
    """A unix socket path well under the 107-byte limit (pytest's tmp paths can exceed it)."""
    return str(Path(tempfile.mkdtemp(prefix="rep-", dir="/tmp")) / "r.sock")


def launch(model_uri: str | Path, log_dir: Path, *args: str) -> subprocess.Popen:
    """Start a replica with the given extra CLI args; stdout/stderr go to files in `log_dir`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tcdeploy.server.replica", "--model-uri", str(model_uri)]
    command += args
    with open(log_dir / "stdout.txt", "wb") as out, open(log_dir / "stderr.txt", "wb") as err:
        return subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL)


@contextlib.contextmanager
def running_replica(model_uri: str | Path, log_dir: Path, *args: str, tcp: bool = False) -> Iterator[Replica]:
    """A ready replica (GET /ping answered 200), stopped with SIGTERM (then killed) afterwards."""
    uds = None if tcp else short_socket_path()
    port = free_port() if tcp else None
    where = ["--host", "127.0.0.1", "--port", str(port)] if tcp else ["--uds", uds]
    process = launch(model_uri, log_dir, *where, *args)
    replica = Replica(process, log_dir, uds, port)
    try:
        wait_ready(replica)
        yield replica
    finally:
        stop(process)


def wait_ready(replica: Replica) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    with replica.client() as client:
        while time.monotonic() < deadline:
            if replica.process.poll() is not None:
                raise RuntimeError(f"replica exited with {replica.process.returncode}: {replica.stderr()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if client.get("/ping").status_code == 200:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"replica not ready after {START_TIMEOUT_S}s: {replica.stderr()[-2000:]}")


def stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def split_body(frame, **extra) -> dict:
    return {"dataframe_split": frame.to_dict(orient="split", index=False), **extra}
