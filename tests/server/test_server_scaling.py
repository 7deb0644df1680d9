"""Scaling with real replicas, through the API: concurrency drives 1 → 2 → 1 replicas with no
failed request; a `service-qps` trigger stays within `MaxReplicas`; a scheduled stop stops; the
per-replica concurrency limit answers 429 with Retry-After and X-RateLimit-* headers; a service
idled to zero answers its next request; a cron job due every minute fires (made first, checked
last, so its minute passes while the rest run), and the run due while the server was stopped is
applied once at start. Cron's rules in detail (a stated timezone, one run, only the latest missed
run) are tested in-process with a clock the test moves: tests/server/control/test_scaling_control.py.

One server for the module, idling services to zero after 3 s and ticking every 0.3 s; short
stabilization windows. Nothing here is timed: waits have generous deadlines."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from tencentcloud.tione.v20211111 import models

from tests.support.cloudapi import call, common_client, error_of, events_of, tione_client, wait_for_status
from tests.support.server import start_server
from tests.support.slow_model import create_slow_service, save_slow_model, slow_body

WS = "default"
IDLE_S = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("scaling") / "data"
    env = {"TCDEPLOY_SCALE_TO_ZERO_AFTER": str(IDLE_S), "TCDEPLOY_SCALE_INTERVAL": "0.3"}
    server = start_server(data, extra_env=env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def wedata(server):
    return common_client(server, "wedata")


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    return save_slow_model(tmp_path_factory.mktemp("slow") / "model", delay_s=0.2)


def make(wedata, name: str, model, **service) -> dict:
    return create_slow_service(wedata, name, model, WS, **service)


@pytest.fixture(scope="module", autouse=True)
def every_minute(wedata, slow_model):
    """A CRON service whose job (every minute: 2 replicas) is due within a minute of its making."""
    job = {"Name": "each-minute", "Schedule": "* * * * *", "TargetReplicas": 2}
    return make(wedata, "cron", slow_model, Replicas=1, ScaleMode="AUTO", ScaleStrategy="CRON", CronScaleJobs=[job])


def detail(wedata, service_id: str) -> dict:
    return call(wedata, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": service_id})["Data"]


def wait_until(check, what: str, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def autoscaler(low: int, high: int, metric: str, value: int, down: int = 3) -> dict:
    return {
        "ScaleMode": "AUTO",
        "ScaleStrategy": "HPA",
        "HorizontalPodAutoscaler": {
            "MinReplicas": low,
            "MaxReplicas": high,
            "HpaMetrics": [{"Name": metric, "Value": value}],
            "ScaleUpStabilizationWindowSeconds": 0,
            "ScaleDownStabilizationWindowSeconds": down,
        },
    }


class Load:
    """`clients` threads posting until stopped; every status kept."""

    def __init__(self, url: str, clients: int) -> None:
        self.url, self.statuses, self._stop = url, [], threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self._stop.is_set():
                self.statuses.append(client.post(self.url, json=slow_body()).status_code)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def reasons(wedata, service_id: str) -> dict[str, str]:
    """The latest message of each event reason (wedata's Message is "<reason>: <message>")."""
    return dict(e["Message"].split(": ", 1) for e in events_of(wedata, service_id) if ": " in e["Message"])


def test_concurrency_scales_up_and_back_down_with_no_failed_request(server, wedata, slow_model):
    created = make(wedata, "tidal", slow_model, Replicas=1, **autoscaler(1, 2, "concurrency-util", 2))
    sid, url = created["ServiceId"], f"{server.url}/groups/{created['ServiceGroupId']}/predict"
    with Load(url, clients=6) as load:
        wait_until(lambda: detail(wedata, sid)["WorkloadStatus"]["ReadyReplicas"] == 2, "a second ready replica")
        time.sleep(1.0)  # traffic on both replicas
    shown = detail(wedata, sid)
    assert shown["Replicas"] == 2 and shown["WorkloadStatus"]["Replicas"] == 2
    wait_until(lambda: detail(wedata, sid)["WorkloadStatus"]["Replicas"] == 1, "back to one replica")
    assert load.statuses and set(load.statuses) == {200}
    events = reasons(wedata, sid)
    assert "concurrency" in events["ScaledUp"] and events["ScaledUp"].endswith("1 → 2")
    assert events["ScaledDown"].endswith("2 → 1")
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert f'tcdeploy_service_replicas{{service="{sid}",state="desired"}} 1.0' in metrics
    request = models.DescribeModelServiceRequest()
    request.ServiceId = sid
    info = tione_client(server).DescribeModelService(request).Service.ServiceInfo
    assert info.Replicas == 1 and info.Status.Replicas == 1 and info.Status.ReadyReplicas == 1
    assert info.ScaleMode == "AUTO" and info.HorizontalPodAutoscaler.HpaMetrics[0].Name == "concurrency-util"


def test_a_qps_trigger_scales_within_max_replicas(server, wedata, tmp_path):
    fast = save_slow_model(tmp_path / "fast", delay_s=0.0)
    created = make(wedata, "qps", fast, Replicas=1, **autoscaler(1, 2, "service-qps", 5, down=60))
    sid, url = created["ServiceId"], f"{server.url}/groups/{created['ServiceGroupId']}/predict"
    with Load(url, clients=2) as load:
        wait_until(lambda: detail(wedata, sid)["WorkloadStatus"]["ReadyReplicas"] == 2, "a second replica")
        time.sleep(1.5)
    assert set(load.statuses) == {200}
    assert detail(wedata, sid)["Replicas"] == 2  # far above 5 qps a replica, but MaxReplicas is 2
    assert reasons(wedata, sid)["ScaledUp"].startswith("qps ")
    call(wedata, "DeleteMLModelService", {"WorkspaceId": WS, "ServiceId": sid})


def test_a_scheduled_stop_stops_the_service_and_a_past_time_is_refused(server, wedata, slow_model):
    past = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat(timespec="seconds")
    refused = error_of(
        wedata,
        "CreateMLModelServices",
        {
            "WorkspaceId": WS,
            "ServiceName": "late",
            "Services": [
                {
                    "InstanceType": "TI.S.SMALL.POST",
                    "MlModelInfo": {"ModelPath": str(slow_model)},
                    "ScheduledAction": {"ScheduleStop": True, "ScheduleStopTime": past},
                }
            ],
        },
    )
    assert refused.code == "InvalidParameterValue" and "Services.0.ScheduledAction.ScheduleStopTime" in refused.message
    soon = (datetime.now(timezone.utc) + timedelta(seconds=8)).isoformat(timespec="seconds")
    created = make(wedata, "until", slow_model, ScheduledAction={"ScheduleStop": True, "ScheduleStopTime": soon})
    stopped = wait_for_status(wedata, created["ServiceId"], {"STOPPED"}, timeout=90)
    assert stopped["WorkloadStatus"]["ReadyReplicas"] == 0
    assert soon in reasons(wedata, created["ServiceId"])["ScheduledStop"]
    call(wedata, "DeleteMLModelService", {"WorkspaceId": WS, "ServiceId": created["ServiceId"]})


def test_the_concurrency_limit_answers_429_with_retry_after_and_rate_limit_headers(server, wedata, slow_model):
    limit = {
        "EnableInstanceRpsLimit": False,
        "InstanceRpsLimit": 0,
        "EnableInstanceReqLimit": True,
        "InstanceReqLimit": 2,
    }
    created = make(wedata, "bounded", slow_model, ServiceLimit=limit)
    url = f"{server.url}/groups/{created['ServiceGroupId']}/predict"
    replies: list[httpx.Response] = []

    def post() -> None:
        with httpx.Client(timeout=60) as client:
            replies.append(client.post(url, json=slow_body()))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    statuses = sorted(r.status_code for r in replies)
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1 and set(statuses) <= {200, 429}
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["x-ratelimit-limit"] == "2" and refused.headers["x-ratelimit-remaining"] == "0"
    answered = next(r for r in replies if r.status_code == 200)
    assert answered.headers["x-ratelimit-limit"] == "2" and int(answered.headers["x-ratelimit-remaining"]) in (0, 1)
    call(wedata, "DeleteMLModelService", {"WorkspaceId": WS, "ServiceId": created["ServiceId"]})


def test_a_service_idle_at_zero_answers_its_next_request(server, wedata, slow_model):
    created = make(wedata, "sleeper", slow_model, Replicas=1, **autoscaler(0, 1, "concurrency-util", 4))
    sid = created["ServiceId"]
    zero = wait_until(
        lambda: (d := detail(wedata, sid))["WorkloadStatus"]["Replicas"] == 0 and not d["PodInfos"] and d,
        "scaled to zero",
    )
    assert zero["Status"] == "RUNNING" and "ScaledToZero" in zero["WorkloadStatus"]["Reason"]
    reply = httpx.post(f"{server.url}/groups/{created['ServiceGroupId']}/predict", json=slow_body(), timeout=60)
    assert reply.status_code == 200 and reply.json()["predictions"] == [1.0]
    events = reasons(wedata, sid)
    assert "ScaledToZero" in events and "cold start" in events["Woken"]
    assert detail(wedata, sid)["WorkloadStatus"]["ReadyReplicas"] == 1


def test_a_cron_job_fires_in_the_servers_timezone(wedata, every_minute):
    sid = every_minute["ServiceId"]
    wait_until(lambda: detail(wedata, sid)["WorkloadStatus"]["ReadyReplicas"] == 2, "the cron job's 2 replicas", 120)
    fired = reasons(wedata, sid)["CronScaled"]
    assert fired.startswith("cron job each-minute (* * * * *, UTC) at ") and fired.endswith(": 1 → 2")
    assert detail(wedata, sid)["ScaleStrategy"] == "CRON"


def test_a_run_missed_while_the_server_was_down_is_applied_once_at_start(server, wedata, every_minute):
    sid = every_minute["ServiceId"]
    while not 1 <= datetime.now(timezone.utc).second <= 20:  # room to scale and stop within this minute
        time.sleep(0.5)
    call(wedata, "UpdateMLModelService", {"WorkspaceId": WS, "ServiceId": sid, "ServiceAction": "SCALE", "Replicas": 1})
    wait_until(lambda: detail(wedata, sid)["Replicas"] == 1, "scaled to 1 by hand", 10)
    server.stop()
    stopped = datetime.now(timezone.utc)
    assert stopped.second < 58, "the stop took too long to leave a minute of downtime to test"
    missed = (stopped + timedelta(minutes=1)).replace(second=0, microsecond=0)
    time.sleep((missed - datetime.now(timezone.utc)).total_seconds() + 1.5)
    server.start()
    wait_until(lambda: detail(wedata, sid)["WorkloadStatus"]["ReadyReplicas"] == 2, "the missed run's 2 replicas")
    at = missed.strftime("%Y-%m-%d %H:%M UTC")
    runs = [e["Message"] for e in events_of(wedata, sid) if e["Message"].startswith("CronScaled:")]
    assert sum(at in m for m in runs) == 1 and any(at in m and m.endswith("1 → 2") for m in runs), runs
