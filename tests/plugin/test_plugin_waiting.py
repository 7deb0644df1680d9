"""Blocking on a service's state: progress lines, failures, deadlines (scripted ServiceDetails)."""

from __future__ import annotations

import io

import pytest
from mlflow.exceptions import MlflowException

from tcdeploy.plugin.waiting import describe, reached, wait_for_service


def detail(status, ready=0, replicas=1, reason="", pods=()):
    return {
        "ServiceName": "iris",
        "ServiceId": "svc-1",
        "Status": status,
        "ReadyReplicas": ready,
        "Replicas": replicas,
        "Reason": reason,
        "Pods": list(pods),
    }


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def run(states, goal="Running", timeout=60.0, logs=()):
    replies = iter(states)
    out, clock = io.StringIO(), Clock()
    result = wait_for_service(
        lambda: next(replies), goal, timeout, lambda: list(logs), out=out, clock=clock, sleep=clock.sleep
    )
    return result, out.getvalue(), clock.now


def test_prints_each_change_once_and_returns_when_all_replicas_are_ready():
    states = [
        detail("Creating"),
        detail("Creating"),
        detail("Creating", 1, 2),
        detail("Running", 1, 2),
        detail("Running", 2, 2),
    ]
    result, out, waited = run(states)
    assert result["ReadyReplicas"] == 2
    assert out.splitlines() == [
        "[tcdeploy] iris (svc-1): Creating, 0/1 replicas ready",
        "[tcdeploy] iris (svc-1): Creating, 1/2 replicas ready",
        "[tcdeploy] iris (svc-1): Running, 1/2 replicas ready",
        "[tcdeploy] iris (svc-1): Running, 2/2 replicas ready",
    ]
    assert waited == pytest.approx(2.0)  # four polls after the first, 0.5 s apart


def test_failure_carries_reason_pods_and_only_new_log_lines():
    failed = detail(
        "CreateFailed",
        reason="LoadFailed: cannot load\nboom: no module x",
        pods=[{"PodName": "ms-1-a", "Phase": "Failed", "Reason": "Error", "Message": "exit 3"}],
    )
    logs = ["t1 ms-1-a: boom: no module x", "t2 ms-1-a: stopped"]
    with pytest.raises(MlflowException) as info:
        run([detail("Creating"), failed], logs=logs)
    message = str(info.value)
    assert info.value.error_code == "INVALID_STATE"
    assert "'iris' (svc-1) is CreateFailed: LoadFailed: cannot load" in message
    assert "pod ms-1-a: Failed Error exit 3" in message
    assert "more log lines:\n  t2 ms-1-a: stopped" in message and "t1 ms-1-a" not in message


def test_progress_line_shows_only_the_first_line_of_a_reason():
    assert describe(detail("Abnormal", reason="CrashLoop: replica exits\nlog...")).endswith(
        "- CrashLoop: replica exits"
    )


def test_abnormal_and_stopped_while_waiting_to_run_fail():
    with pytest.raises(MlflowException, match="is Abnormal: crash loop"):
        run([detail("Abnormal", reason="crash loop")])
    with pytest.raises(MlflowException, match="is Stopped"):
        run([detail("Stopped")])


def test_waiting_for_stopped():
    result, _, _ = run([detail("Stopping", 1), detail("Stopped", 0)], goal="Stopped")
    assert result["Status"] == "Stopped"


def test_deadline_is_monotonic_and_says_what_to_do():
    with pytest.raises(MlflowException) as info:
        run([detail("Creating")] * 100, timeout=2)
    message = str(info.value)
    assert info.value.error_code == "DEADLINE_EXCEEDED"
    assert "did not reach Running within 2s" in message and "timeout" in message


def test_reached():
    assert reached(detail("Running", 1, 1), "Running")
    assert not reached(detail("Running", 0, 1), "Running")
    assert reached(detail("Running", 0, 0), "Running")
    assert not reached(detail("Updating", 1, 1), "Running")
