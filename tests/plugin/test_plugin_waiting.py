"""Blocking on a service's state: progress lines, failures, deadlines (scripted ``MLModelService``s
with wedata's words, and TI-ONE's where the cloud may say them)."""

from __future__ import annotations

import io

import pytest
from mlflow.exceptions import MlflowException

from tcdeploy.plugin.waiting import RUNNING, STOPPED, describe, reached, replica_counts, wait_for_service

SERVICE_ID = "ef16f77c-fd0b-48a9-bc77-da8714f0d31e-1"


def container(ready=True, restarts=0, state="running", reason="Started", message=""):
    return {
        "Name": "inference",
        "Ready": ready,
        "RestartCount": restarts,
        "State": state,
        "Reason": reason,
        "Message": message,
    }


def pod(name="ms-6mvp5w9v-1-6d49b68644-j8jjs", phase="Running", containers=(container(),)):
    return {"Name": name, "Phase": phase, "Status": phase, "ContainerInfos": list(containers)}


def detail(status, ready=0, replicas=1, reason="", pods=None, workload=True):
    service = {"ServiceName": "iris", "ServiceId": SERVICE_ID, "Status": status, "Replicas": replicas}
    if workload:
        service["WorkloadStatus"] = {"Replicas": replicas, "ReadyReplicas": ready, "Reason": reason, "Status": ""}
    service["PodInfos"] = pods
    return service


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def run(states, goal=RUNNING, timeout=60.0, logs=()):
    replies = iter(states)
    out, clock = io.StringIO(), Clock()
    result = wait_for_service(
        lambda: next(replies), goal, timeout, lambda: list(logs), out=out, clock=clock, sleep=clock.sleep
    )
    return result, out.getvalue(), clock.now


def test_prints_each_change_once_and_returns_when_all_replicas_are_ready():
    states = [
        detail("NEW", workload=False),
        detail("NEW", workload=False),
        detail("NEW", 1, 2),
        detail("RUNNING", 1, 2),
        detail("RUNNING", 2, 2),
    ]
    result, out, waited = run(states)
    assert result["WorkloadStatus"]["ReadyReplicas"] == 2
    assert out.splitlines() == [
        f"[tcdeploy] iris ({SERVICE_ID}): NEW, 0/1 replicas ready",
        f"[tcdeploy] iris ({SERVICE_ID}): NEW, 1/2 replicas ready",
        f"[tcdeploy] iris ({SERVICE_ID}): RUNNING, 1/2 replicas ready",
        f"[tcdeploy] iris ({SERVICE_ID}): RUNNING, 2/2 replicas ready",
    ]
    assert waited == pytest.approx(2.0)  # four polls after the first, 0.5 s apart


def test_failure_carries_workload_reason_containers_and_only_new_log_lines():
    failed = detail(
        "CREATE_FAILED",
        reason="LoadFailed: cannot load\nboom: no module x",
        pods=[pod(phase="Failed", containers=[container(False, 3, "terminated", "Error", "exit 3")])],
    )
    logs = ["t1 ms-1-a: boom: no module x", "t2 ms-1-a: stopped"]
    with pytest.raises(MlflowException) as info:
        run([detail("NEW"), failed], logs=logs)
    message = str(info.value)
    assert info.value.error_code == "INVALID_STATE"
    assert f"'iris' ({SERVICE_ID}) is CREATE_FAILED: LoadFailed: cannot load" in message
    assert "pod ms-6mvp5w9v-1-6d49b68644-j8jjs (Failed) container inference: terminated Error exit 3 (3 restarts)" in (
        message
    )
    assert "more log lines:\n  t2 ms-1-a: stopped" in message and "t1 ms-1-a" not in message


def test_progress_line_shows_only_the_first_line_of_a_reason():
    assert describe(detail("ABNORMAL", reason="CrashLoop: replica exits\nlog...")).endswith(
        "- CrashLoop: replica exits"
    )


@pytest.mark.parametrize("word", ["ABNORMAL", "Abnormal", "CREATE_FAILED"])
def test_failed_words_of_either_api_fail(word):
    with pytest.raises(MlflowException, match=f"is {word}: crash loop"):
        run([detail(word, reason="crash loop")])


@pytest.mark.parametrize("word", ["STOPPED", "Stopped"])
def test_stopped_while_waiting_to_run_fails(word):
    with pytest.raises(MlflowException, match=f"is {word}"):
        run([detail(word)])


def test_waiting_for_stopped():
    result, _, _ = run([detail("STOPPING", 1), detail("STOPPED", 0)], goal=STOPPED)
    assert result["Status"] == "STOPPED"


def test_deadline_is_monotonic_and_says_what_to_do():
    with pytest.raises(MlflowException) as info:
        run([detail("NEW")] * 100, timeout=2)
    message = str(info.value)
    assert info.value.error_code == "DEADLINE_EXCEEDED"
    assert "did not reach RUNNING within 2s" in message and "timeout" in message


def test_reached():
    assert reached(detail("RUNNING", 1, 1), RUNNING)
    assert reached(detail("Normal", 1, 1), RUNNING)  # TI-ONE's word
    assert not reached(detail("RUNNING", 0, 1), RUNNING)
    assert reached(detail("RUNNING", 0, 0), RUNNING)
    assert not reached(detail("UPDATING", 1, 1), RUNNING)
    assert not reached(detail("NEW", 1, 1), RUNNING)


def test_replicas_from_pods_when_the_workload_is_not_told():
    pods = [pod(), pod("b", containers=[container(ready=False)])]
    assert replica_counts(detail("RUNNING", replicas=2, pods=pods, workload=False)) == (1, 2)
    assert not reached(detail("RUNNING", replicas=2, pods=pods, workload=False), RUNNING)
    # Neither workload nor pods: the word is all the reply says.
    assert replica_counts(detail("RUNNING", replicas=2, workload=False)) == (None, 2)
    assert reached(detail("RUNNING", replicas=2, workload=False), RUNNING)
