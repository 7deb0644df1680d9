"""The tests' `tcdeploy server`: a BackgroundServer with the tests' own access key."""

from __future__ import annotations

from pathlib import Path

from tcdeploy.server.background import BackgroundServer, free_port

__all__ = ["SECRET_ID", "SECRET_KEY", "BackgroundServer", "free_port", "start_server"]

SECRET_ID = "AKIDtcdeploytests0000000000000000"
SECRET_KEY = "tcdeploy-test-secret-key-0123456789"


def start_server(data_dir: Path, **kwargs) -> BackgroundServer:
    """Start a server on a free port with its state in `data_dir` (its log beside it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("tracking_uri", f"sqlite:///{data_dir}/mlflow.db")
    kwargs.setdefault("secret_id", SECRET_ID)
    kwargs.setdefault("secret_key", SECRET_KEY)
    return BackgroundServer(port=free_port(), data_dir=data_dir, **kwargs).start()
