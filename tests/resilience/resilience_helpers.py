"""Deploying, predicting and watching processes, shared by the resilience tests."""

from __future__ import annotations

import json
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import mlflow.pyfunc
import psutil
from mlflow.models import infer_signature

from tcdeploy.server.runtime.paths import RunPaths
from tests.support.cloudapi import call, create_service, pod_facts, ready_replicas, wait_for_status
from tests.support.models import iris_frame

from .resilience_load import Call

WS = "default"
SENTINEL_CODE = Path(__file__).with_name("sentinel_model.py")
SENTINEL_ANSWER = 7
CRASH_VALUE = 666.0
LOGISTIC_ANSWERS = {0, 1, 2}


def save_sentinel_model(path: Path) -> Path:
    """The sentinel model (see sentinel_model.py) as an MLflow model directory."""
    X, _ = iris_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hints about type hints and input examples
        signature = infer_signature(X, [float(SENTINEL_ANSWER)] * len(X), params={"sleep_s": 0.0})
        # Requirements given, not inferred: inferring runs the model in a subprocess, for nothing here.
        mlflow.pyfunc.save_model(
            str(path), python_model=str(SENTINEL_CODE), signature=signature, pip_requirements=["mlflow"]
        )
    return path


def iris_body(rows: int = 1, first: int = 0, *, crash: bool = False, sleep_s: float | None = None) -> bytes:
    X, _ = iris_frame()
    frame = X.iloc[first : first + rows].copy()
    if crash:
        frame.iloc[0, 0] = CRASH_VALUE
    body: dict = {"dataframe_split": frame.to_dict(orient="split")}
    if sleep_s is not None:
        body["params"] = {"sleep_s": sleep_s}
    return json.dumps(body).encode()


def varied_bodies(n: int) -> bytes:
    """A body per call number, one iris row each, going round the data set."""
    return iris_body(1, first=n % 150)


def group_url(server, group_id: str) -> str:
    return f"{server.url}/groups/{group_id}/predict"


def deploy(
    wedata,
    name: str,
    model_dir: Path,
    *,
    replicas: int = 1,
    group_id: str | None = None,
    instance_type: str = "TI.S.SMALL.POST",
    wait: bool = True,
    **group_fields,
) -> dict:
    """Create a service (a new group, or a version in `group_id`) and wait until it runs."""
    params = {
        "WorkspaceId": WS,
        "ServiceName": name,
        **group_fields,
        "Services": [
            {"InstanceType": instance_type, "Replicas": replicas, "MlModelInfo": {"ModelPath": str(model_dir)}}
        ],
    }
    if group_id is not None:
        params["ServiceGroupId"] = group_id
    created = create_service(wedata, params)
    if not wait:
        return created
    detail = wait_for_status(wedata, created["ServiceId"], {"RUNNING", "CREATE_FAILED"}, timeout=180)
    assert detail["Status"] == "RUNNING", detail
    return detail


def service(wedata, service_id: str) -> dict:
    return call(wedata, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": service_id})["Data"]


def update(wedata, service_id: str, **fields) -> dict:
    return call(wedata, "UpdateMLModelService", {"WorkspaceId": WS, "ServiceId": service_id, **fields})["Data"]


def wait_settled(wedata, service_id: str, ready: int | None = None, timeout: float = 180.0) -> dict:
    """Wait for Running (and, if given, that many ready replicas); fail on anything else settled."""
    deadline = time.monotonic() + timeout
    while True:
        detail = wait_for_status(
            wedata,
            service_id,
            {"RUNNING", "ABNORMAL", "STOPPED", "CREATE_FAILED"},
            timeout=max(1.0, deadline - time.monotonic()),
        )
        assert detail["Status"] == "RUNNING", detail
        if ready is None or ready_replicas(detail) == ready:
            return detail
        if time.monotonic() > deadline:
            raise AssertionError(f"{service_id}: {ready_replicas(detail)} ready, not {ready}")
        time.sleep(0.2)


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.1):
    """The predicate's first truthy value, or its last value once `timeout` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def wait_replaced(wedata, service_id: str, pod: dict, timeout: float = 180.0) -> float:
    """Wait until `pod` (a `pod_facts` entry) is ready again with more restarts than it had;
    return how long it took."""
    began = time.monotonic()
    while True:
        now = next(p for p in pod_facts(service(wedata, service_id)) if p["PodName"] == pod["PodName"])
        if now["Ready"] and now["RestartCount"] > pod["RestartCount"]:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"{pod['PodName']} was not replaced within {timeout:g} s: {now}")
        time.sleep(0.1)


def rows_lost(calls: Iterable[Call], rows: set[str]) -> list[Call]:
    """The answered calls without an inference-table row. The gateway journals a row before its
    reply leaves, so even a server killed with SIGKILL owes a row for every reply a client saw."""
    return [c for c in calls if c.ok and c.request_id not in rows]


# ---- processes ---------------------------------------------------------------------------------


def replica_pids(data_dir: Path) -> dict[int, str]:
    """Live replica processes started for this data dir: pid -> pod name."""
    paths = RunPaths(data_dir)
    homes = (str(paths.run_dir), str(paths.fallback_socket_dir))
    found = {}
    for proc in psutil.process_iter(["cmdline", "status"]):
        cmd = proc.info["cmdline"] or []
        if proc.info["status"] == psutil.STATUS_ZOMBIE or "tcdeploy.server.replica" not in cmd:
            continue
        if "--uds" in cmd and "--pod-name" in cmd and cmd[cmd.index("--uds") + 1].startswith(homes):
            found[proc.pid] = cmd[cmd.index("--pod-name") + 1]
    return found


def pod_pid(data_dir: Path, pod_name: str) -> int:
    return int((data_dir / "run" / f"{pod_name}.pid").read_text())


def kill_replicas(data_dir: Path) -> None:
    """Last-resort cleanup: SIGKILL whatever replica of this data dir is still alive."""
    for pid in replica_pids(data_dir):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
