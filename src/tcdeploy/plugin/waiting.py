"""Blocking until a service reaches a state, with progress on stderr and a useful failure."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from mlflow.exceptions import MlflowException

from tcdeploy.plugin.cloudapi import mlflow_code

RUNNING, STOPPED = "Running", "Stopped"
FAILED_STATES = ("CreateFailed", "Abnormal")
POLL_INTERVAL = 0.5


def reached(detail: dict[str, Any], goal: str) -> bool:
    """A running service is only "there" when every replica it asked for is ready."""
    if detail.get("Status") != goal:
        return False
    if goal == RUNNING:
        return int(detail.get("ReadyReplicas") or 0) >= int(detail.get("Replicas") or 0)
    return True


def describe(detail: dict[str, Any]) -> str:
    name, service_id = detail.get("ServiceName"), detail.get("ServiceId")
    text = (
        f"{name} ({service_id}): {detail.get('Status')}, "
        f"{detail.get('ReadyReplicas') or 0}/{detail.get('Replicas') or 0} replicas ready"
    )
    reason = (detail.get("Reason") or "").strip().splitlines()
    return f"{text} - {reason[0]}" if reason and detail.get("Status") != RUNNING else text


def failure_error(detail: dict[str, Any], log_lines: list[str]) -> MlflowException:
    lines = [
        f"deployment {detail.get('ServiceName')!r} ({detail.get('ServiceId')}) is "
        f"{detail.get('Status')}: {detail.get('Reason') or 'no reason given'}"
    ]
    for pod in detail.get("Pods") or []:
        if pod.get("Reason") or pod.get("Message"):
            lines.append(
                f"  pod {pod.get('PodName')}: {pod.get('Phase')} "
                f"{pod.get('Reason') or ''} {pod.get('Message') or ''}".rstrip()
            )
    # The server's reason may quote the same lines already; add only what it does not say.
    reason = detail.get("Reason") or ""
    unseen = [line for line in log_lines if line.split(": ", 1)[-1] not in reason]
    if unseen:
        lines.append("last log lines:" if len(unseen) == len(log_lines) else "more log lines:")
        lines.extend(f"  {line}" for line in unseen)
    return MlflowException("\n".join(lines), error_code=mlflow_code("INVALID_STATE"))


def wait_for_service(
    fetch: Callable[[], dict[str, Any]],
    goal: str,
    timeout: float,
    last_logs: Callable[[], list[str]],
    out: TextIO | None = None,
    interval: float = POLL_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll ``fetch()`` (a ``ServiceDetail``) until it reaches ``goal``; print each change.

    Raises when the service fails (``CreateFailed``/``Abnormal``: the server's reason and the last
    log lines), is stopped while we wait for it to run, or the deadline passes.
    """
    stream = out if out is not None else sys.stderr
    deadline = clock() + timeout
    shown = None
    while True:
        detail = fetch()
        line = describe(detail)
        if line != shown:
            print(f"[tcdeploy] {line}", file=stream, flush=True)
            shown = line
        if reached(detail, goal):
            return detail
        status = detail.get("Status")
        if status in FAILED_STATES or (goal == RUNNING and status == STOPPED):
            raise failure_error(detail, last_logs())
        remaining = deadline - clock()
        if remaining <= 0:
            raise MlflowException(
                f"deployment {detail.get('ServiceName')!r} ({detail.get('ServiceId')}) did not "
                f"reach {goal} within {timeout:g}s (now {line}); it may still get there: check "
                "with get_deployment, or pass a larger config 'timeout'",
                error_code=mlflow_code("DEADLINE_EXCEEDED"),
            )
        sleep(min(interval, remaining))
