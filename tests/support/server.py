"""A real `tcdeploy server` in a subprocess, for end-to-end tests."""

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

SECRET_ID = "AKIDtcdeploytests0000000000000000"
SECRET_KEY = "tcdeploy-test-secret-key-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningServer:
    port: int
    data_dir: Path
    tracking_uri: str
    secret_id: str = SECRET_ID
    secret_key: str = SECRET_KEY
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    extra_env: dict = field(default_factory=dict)

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

    def start(self, timeout: float = 60.0) -> RunningServer:
        env = {
            **os.environ,
            "TCDEPLOY_SECRET_ID": self.secret_id,
            "TCDEPLOY_SECRET_KEY": self.secret_key,
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            **self.extra_env,
        }
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tcdeploy",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"tcdeploy server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"tcdeploy server not healthy in {timeout}s:\n{self.log()}")

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


def start_server(data_dir: Path, **kwargs) -> RunningServer:
    data_dir.mkdir(parents=True, exist_ok=True)
    tracking_uri = kwargs.pop("tracking_uri", f"sqlite:///{data_dir}/mlflow.db")
    return RunningServer(port=free_port(), data_dir=data_dir, tracking_uri=tracking_uri, **kwargs).start()
