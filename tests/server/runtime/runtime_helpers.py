"""Helpers shared by the runtime tests (imported by name: this folder is on sys.path in tests)."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import mlflow.pyfunc
import psutil

from tcdeploy.server.runtime import ReplicaSpec, ReplicaState
from tcdeploy.server.runtime.paths import REPLICA_MODULE

# Short delays so restarts and crash loops happen within a test's few seconds.
FAST_BACKOFF = (0.1, 0.2, 0.4)
LOAD_TIMEOUT = 90.0  # loading mlflow + sklearn takes ~5 s alone; far more on a busy 2-core box


class Recorder:
    """Collects every state `on_change` reports and lets a test wait for one."""

    def __init__(self) -> None:
        self.states: list[ReplicaState] = []

    def __call__(self, state: ReplicaState) -> None:
        self.states.append(state)

    async def until(self, predicate: Callable[[ReplicaState], bool], timeout: float = LOAD_TIMEOUT) -> ReplicaState:
        """The first reported state (past or future) that matches."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for state in self.states[seen:]:
                if predicate(state):
                    return state
            seen = len(self.states)
            await asyncio.sleep(0.02)
        raise AssertionError(f"no reported state matched in {timeout} s; last: {self.states[-3:]}")


async def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout} s")
        await asyncio.sleep(0.02)


def replica_processes() -> list[psutil.Process]:
    """Replica processes started by this test process's runtimes: its direct children (the exec
    wrapper keeps the pid). A session-wide server's replicas are grandchildren and not ours."""
    found = []
    for child in psutil.Process().children(recursive=False):
        try:
            if REPLICA_MODULE in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def spec(
    pod_name: str, model: Path | str, *, memory_mb: int = 2048, service_id: str = "svc-test", **extra
) -> ReplicaSpec:
    return ReplicaSpec(
        pod_name=pod_name,
        service_id=service_id,
        model_uri=str(model),
        cpu_millicores=1000,
        memory_mb=memory_mb,
        **extra,
    )


def save_code_model(path: Path, code: str) -> Path:
    """An MLflow pyfunc model from code (the code travels with the model, nothing is pickled)."""
    source = path.parent / f"{path.name}_code.py"
    source.write_text(textwrap.dedent(code))
    mlflow.pyfunc.save_model(str(path), python_model=str(source), pip_requirements=["mlflow"])
    return path
