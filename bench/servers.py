"""The two servers under test, each a context manager that starts it, yields how to reach it, and
always stops it: `mlflow models serve` and `tcdeploy server` with one service."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from benchmodel import predictions_in, request_body, synthetic_frame
from cpumeter import pss_by_role, rss_by_role
from procs import PeakRssSampler, free_port, http_ok, start_process, stop_process, tail, tree_pss, wait_until

from tcdeploy.server.background import server_command

SECRET_ID = "AKIDtcdeploybench000000000000000"
SECRET_KEY = "tcdeploy-bench-secret-key-0123456789"
REGION = "ap-guangzhou"
WORKSPACE = "default"
SERVICE_NAME = "bench-forest"
# Env vars that would change `mlflow models serve`'s worker count away from its default.
WORKER_OVERRIDES = ("MLFLOW_WORKERS", "MLFLOW_MODELS_WORKERS")


@dataclass
class Target:
    """A running server: where to POST, with which header, and its memory sampler."""

    name: str
    predict_url: str
    authorization: str
    pid: int
    memory: PeakRssSampler
    startup_s: dict[str, float] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    form: str = "mlflow"  # the body it takes (benchmodel.request_body)
    # Measured after the load cases, while it still runs (ours: a second replica, a restart).
    after_load: Callable[[], None] | None = None


def _base_env() -> dict[str, str]:
    # The venv's bin first: `mlflow models serve --env-manager local` runs `uvicorn` from PATH.
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in WORKER_OVERRIDES}
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


@contextlib.contextmanager
def mlflow_serve(model_dir: Path, workdir: Path, ready_timeout_s: float = 180) -> Iterator[Target]:
    port = free_port()
    log_path = workdir / "mlflow-serve.log"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "models",
        "serve",
        "-m",
        str(model_dir),
        "--env-manager",
        "local",
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
    ]
    launched = time.monotonic()
    proc = start_process(command, _base_env(), log_path)
    try:
        with PeakRssSampler(proc.pid) as memory:
            to_ping = wait_until(
                http_ok(f"http://127.0.0.1:{port}/ping"), proc, ready_timeout_s, "mlflow models serve", log_path
            )
            target = Target(
                "mlflow",
                f"http://127.0.0.1:{port}/invocations",
                "",
                proc.pid,
                memory,
                startup_s={"launch_to_ping": round(to_ping, 2)},
                notes={"log": str(log_path)},
            )
            wait_first_prediction(target, proc, launched, ready_timeout_s, log_path)
            yield target
    finally:
        stop_process(proc)


@contextlib.contextmanager
def tcdeploy_server(
    model_dir: Path, workdir: Path, instance_type: str, max_batch_size: int | None = None, ready_timeout_s: float = 180
) -> Iterator[Target]:
    port = free_port()
    data_dir = workdir / "tcdeploy-data"
    log_path = workdir / "tcdeploy-server.log"
    env = _base_env() | {
        "TCDEPLOY_SECRET_ID": SECRET_ID,
        "TCDEPLOY_SECRET_KEY": SECRET_KEY,
        "MLFLOW_TRACKING_URI": f"sqlite:///{data_dir}/mlflow.db",
    }
    launched = time.monotonic()
    proc = start_process(server_command(port, data_dir), env, log_path)
    target: Target | None = None
    try:
        with PeakRssSampler(proc.pid) as memory:
            to_health = wait_until(
                http_ok(f"http://127.0.0.1:{port}/healthz"), proc, ready_timeout_s, "tcdeploy server", log_path
            )
            api = ControlApi(port)
            created = time.monotonic()
            service_id, group_id = api.create_service(
                model_dir, instance_type, max_batch_size, ready_timeout_s, log_path
            )
            to_running = time.monotonic() - created
            token = api.auth_token(group_id)
            url = f"http://127.0.0.1:{port}/groups/{group_id}/predict"
            target = Target(
                "tcdeploy",
                url,
                token,
                proc.pid,
                memory,
                startup_s={
                    "launch_to_healthz": round(to_health, 2),
                    "create_to_running": round(to_running, 2),
                    "launch_to_running": round(time.monotonic() - launched, 2),
                },
                notes={
                    "log": str(log_path),
                    "group_id": group_id,
                    "service_id": service_id,
                    "data_dir": str(data_dir),
                    "instance_type": instance_type,
                    "max_batch_size": max_batch_size,
                },
            )
            wait_first_prediction(target, proc, launched, ready_timeout_s, log_path)
            target.after_load = lambda: _more_replicas(api, target, data_dir, ready_timeout_s)
            yield target
    finally:
        stop_process(proc)
    if target is not None:
        target.notes["inference_table_rows"] = _inference_rows(data_dir, target.notes["group_id"])


def _inference_rows(data_dir: Path, group_id: str) -> int | str:
    """Rows in the group's inference table after the clean stop: evidence the table was on."""
    try:
        from tcdeploy.server.gateway import read_inference_table

        return len(read_inference_table(data_dir, group_id))
    except Exception as exc:  # a broken table must not hide the benchmark's figures
        return f"unreadable: {exc}"


class ControlApi:
    """The control plane through the official Tencent Cloud SDK, as a user would call it."""

    def __init__(self, port: int) -> None:
        from tencentcloud.common import credential
        from tencentcloud.common.common_client import CommonClient
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile

        cred = credential.Credential(SECRET_ID, SECRET_KEY)
        profile = ClientProfile(httpProfile=HttpProfile(protocol="http", endpoint=f"127.0.0.1:{port}", reqTimeout=60))
        self.wedata = CommonClient("wedata", "2025-10-10", cred, REGION, profile)
        self.tione = CommonClient("tione", "2021-11-11", cred, REGION, profile)

    def create_service(
        self, model_dir: Path, instance_type: str, max_batch_size: int | None, timeout_s: float, log_path: Path
    ) -> tuple[str, str]:
        """Create the one-replica service, auth and inference table on; its service and group
        ids once Running."""
        spec = {"InstanceType": instance_type, "Replicas": 1, "MlModelInfo": {"ModelPath": str(model_dir)}}
        if max_batch_size is not None:
            spec["BatchConfig"] = {"MaxBatchSize": max_batch_size}
        group = self.wedata.call_json(
            "CreateMLModelServices",
            {
                "WorkspaceId": WORKSPACE,
                "ServiceName": SERVICE_NAME,
                "AuthorizationEnable": True,
                "InferenceTablePushEnable": True,
                "Services": [spec],
            },
        )["Response"]["Data"]
        detail = group["Services"][0]
        deadline = time.monotonic() + timeout_s
        while detail["Status"] != "RUNNING":
            if detail["Status"] in ("CREATE_FAILED", "ABNORMAL") or time.monotonic() > deadline:
                reason = (detail.get("WorkloadStatus") or {}).get("Reason")
                raise RuntimeError(
                    f"service {detail['ServiceId']} is {detail['Status']}: {reason}; server log:\n{tail(log_path)}"
                )
            time.sleep(0.2)
            detail = self.wedata.call_json(
                "GetMLModelService", {"WorkspaceId": WORKSPACE, "ServiceId": detail["ServiceId"]}
            )["Response"]["Data"]
        return detail["ServiceId"], detail["ServiceGroupId"]

    def service(self, service_id: str) -> dict:
        return self.wedata.call_json("GetMLModelService", {"WorkspaceId": WORKSPACE, "ServiceId": service_id})[
            "Response"
        ]["Data"]

    def scale(self, service_id: str, replicas: int) -> None:
        self.wedata.call_json(
            "UpdateMLModelService",
            {"WorkspaceId": WORKSPACE, "ServiceId": service_id, "ServiceAction": "SCALE", "Replicas": replicas},
        )

    def ready_pods(self, service_id: str) -> dict[str, int]:
        """{pod name: restart count} of the service's ready pods."""
        ready = {}
        for pod in self.service(service_id).get("PodInfos") or []:
            container = (pod.get("ContainerInfos") or [{}])[0]
            if container.get("Ready"):
                ready[pod["Name"]] = container.get("RestartCount", 0)
        return ready

    def wait_pods(self, service_id: str, done: Callable[[dict[str, int]], bool], timeout_s: float) -> float:
        """Poll the service's pods until `done(ready pods)`; seconds waited."""
        started = time.monotonic()
        while not done(self.ready_pods(service_id)):
            if time.monotonic() - started > timeout_s:
                raise RuntimeError(
                    f"{service_id}: pods not as expected after {timeout_s:g} s: {self.ready_pods(service_id)}"
                )
            time.sleep(0.02)
        return time.monotonic() - started

    def auth_token(self, group_id: str) -> str:
        token = self._call_info(group_id).get("AuthToken")
        if not token:  # enabling auth at create time may not mint a token: ask for one
            self.tione.call_json("CreateModelServiceAuthToken", {"ServiceGroupId": group_id, "Name": "bench"})
            token = self._call_info(group_id).get("AuthToken")
        if not token:
            raise RuntimeError(f"group {group_id} has no auth token after CreateModelServiceAuthToken")
        return token

    def _call_info(self, group_id: str) -> dict:
        reply = self.tione.call_json("DescribeModelServiceCallInfo", {"ServiceGroupId": group_id})
        return reply["Response"]["ServiceCallInfoV2"]


def _more_replicas(api: ControlApi, target: Target, data_dir: Path, timeout_s: float) -> None:
    """After the load: the time to a second ready replica of the model, the memory it adds, and
    the time from a replica's SIGKILL to it being ready again."""
    service_id = target.notes["service_id"]
    one = tree_pss(target.pid)
    started = time.monotonic()
    api.scale(service_id, 2)
    target.startup_s["second_replica_s"] = round(
        time.monotonic() - started + api.wait_pods(service_id, lambda pods: len(pods) == 2, timeout_s), 2
    )
    time.sleep(1.0)  # let the new replica settle (its first probes, its batcher thread)
    target.notes["pss_one_replica_bytes"] = one
    target.notes["pss_two_replicas_bytes"] = two = tree_pss(target.pid)
    target.notes["pss_second_replica_bytes"] = two - one
    target.notes["pss_by_role_two_replicas"] = pss_by_role(target.pid)
    pods = api.ready_pods(service_id)
    victim = sorted(pods)[-1]
    pid = int((data_dir / "run" / f"{victim}.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    api.wait_pods(service_id, lambda now: now.get(victim, -1) > pods[victim], timeout_s)
    target.startup_s["sigkill_to_ready_s"] = round(time.monotonic() - killed, 2)


def wait_first_prediction(
    target: Target, proc: subprocess.Popen, launched: float, timeout_s: float, log_path: Path
) -> None:
    """Poll with a one-row body until the server answers it right: `launch_to_first_prediction`
    (from the launch), the moment a user could first use it. Also notes the tree's memory then."""
    body = request_body(synthetic_frame(1, 0)[0], 1, target.form)

    def answers() -> bool:
        try:
            check_replies(target, body, 1, auth_check=False)
        except (RuntimeError, httpx.HTTPError, ValueError):
            return False
        return True

    wait_until(answers, proc, max(1.0, timeout_s - (time.monotonic() - launched)), target.name, log_path)
    target.startup_s["launch_to_first_prediction"] = round(time.monotonic() - launched, 2)
    target.notes["ready_rss_bytes"] = target.memory.sample()
    target.notes["ready_pss_bytes"] = target.memory.sample_pss()
    target.notes["ready_rss_by_role"] = rss_by_role(target.pid)
    target.notes["ready_pss_by_role"] = pss_by_role(target.pid)


def check_replies(target: Target, body: bytes, rows: int, auth_check: bool = True) -> None:
    """One request by hand before the load: a 200 with `rows` predictions, and (with auth on) a
    401 without the token, so the load measures the real path and not a fast error."""
    headers = {"Content-Type": "application/json"}
    if target.authorization and auth_check:
        refused = httpx.post(target.predict_url, content=body, headers=headers, timeout=30)
        if refused.status_code != 401:
            raise RuntimeError(f"{target.name}: expected 401 without a token, got {refused.status_code}")
    if target.authorization:
        headers["Authorization"] = target.authorization
    reply = httpx.post(target.predict_url, content=body, headers=headers, timeout=30)
    if reply.status_code != 200:
        raise RuntimeError(f"{target.name}: {reply.status_code} on a {rows}-row body: {reply.text[:500]}")
    predictions = predictions_in(reply.json(), target.form)
    if not isinstance(predictions, list) or len(predictions) != rows:
        raise RuntimeError(f"{target.name}: expected {rows} predictions, got {reply.text[:300]}")
