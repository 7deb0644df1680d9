"""A real `tcdeploy server` in a child process: start it, wait until it is healthy, stop it.

What the end-to-end tests, the benchmarks and the demo run the server with, so each of them
starts it the same way (its own process group, its log in a file, loopback only).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(port: int, data_dir: Path) -> list[str]:
    """The command line of a loopback `tcdeploy server` on `port` with its state in `data_dir`."""
    return [
        sys.executable,
        "-m",
        "tcdeploy",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]


@dataclass
class BackgroundServer:
    port: int
    data_dir: Path
    tracking_uri: str
    secret_id: str
    secret_key: str
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    extra_env: dict = field(default_factory=dict)
    extra_args: tuple[str, ...] = ()  # more `tcdeploy server` flags (say, --runtime ray …)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def target(self) -> str:
        return f"tcdeploy://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """Environment a client process needs to reach this server."""
        return {
            "TENCENTCLOUD_SECRET_ID": self.secret_id,
            "TENCENTCLOUD_SECRET_KEY": self.secret_key,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
        }

    def start(self, timeout: float = 60.0) -> BackgroundServer:
        env = {
            **os.environ,
            "TCDEPLOY_SECRET_ID": self.secret_id,
            "TCDEPLOY_SECRET_KEY": self.secret_key,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            **self.extra_env,
        }
        if self.log_path is None:
            self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*server_command(self.port, self.data_dir), *self.extra_args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tcdeploy server exited early:\n{self.log()}")
            if self.healthy():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tcdeploy server not healthy in {timeout}s:\n{self.log()}")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """Stop the server (SIGTERM: clean stop; SIGKILL: crash) and return its exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        code = self.process.returncode
        self.process = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path else ""
