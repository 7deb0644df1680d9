"""Blocking until a service reaches a state, with progress on stderr and a useful failure.

The state is a wedata ``MLModelService``: ``Status`` (``NEW`` while creating, ``RUNNING`` when up,
``UPDATING``, ``ABNORMAL``, ``CREATE_FAILED``, ``STOPPING``, ``STOPPED``) with
``WorkloadStatus{Replicas, ReadyReplicas, Status, Reason}`` and ``PodInfos[]``. The real cloud does
not document its words, and TI-ONE underneath says ``Normal``/``Abnormal``/``CREATE_FAILED``/
``Stopped``, so words are compared without case and both spellings are understood.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from mlflow.exceptions import MlflowException

from tcdeploy.plugin.cloudapi import mlflow_code

RUNNING, STOPPED = "RUNNING", "STOPPED"  # the goals, as wedata says them
# Every word that means the goal, or a failure while waiting for RUNNING; upper case.
_GOAL_WORDS = {RUNNING: frozenset({"RUNNING", "NORMAL"}), STOPPED: frozenset({"STOPPED"})}
_FAILED_WORDS = frozenset({"CREATE_FAILED", "CREATEFAILED", "ABNORMAL", "FAILED"})
POLL_INTERVAL = 0.5


def word(detail: dict[str, Any]) -> str:
    """The service's status word in upper case (``""`` when it has none)."""
    return str(detail.get("Status") or "").upper()


def _workload(detail: dict[str, Any]) -> dict[str, Any]:
    workload = detail.get("WorkloadStatus")
    return workload if isinstance(workload, dict) else {}


def pods(detail: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in detail.get("PodInfos") or [] if isinstance(p, dict)]


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in pod.get("ContainerInfos") or [] if isinstance(c, dict)]


def pod_ready(pod: dict[str, Any]) -> bool:
    """Running with every container ready (a pod that lists no containers: by its phase)."""
    running = str(pod.get("Phase") or pod.get("Status") or "").upper() == "RUNNING"
    return running and all(bool(c.get("Ready")) for c in containers(pod))


def replica_counts(detail: dict[str, Any]) -> tuple[int | None, int]:
    """(ready, wanted) replicas: ``WorkloadStatus`` when the reply has it, else counted from
    ``PodInfos``; ``wanted`` from ``WorkloadStatus.Replicas``, else the service's ``Replicas``.
    ``ready`` is ``None`` when the reply says nothing about replicas at all."""
    workload = _workload(detail)
    wanted = workload.get("Replicas")
    wanted = int(detail.get("Replicas") or 0) if wanted is None else int(wanted)
    if workload.get("ReadyReplicas") is not None:
        return int(workload["ReadyReplicas"]), wanted
    if detail.get("PodInfos") is not None:
        return sum(pod_ready(p) for p in pods(detail)), wanted
    return None, wanted


def reached(detail: dict[str, Any], goal: str) -> bool:
    """A running service is only "there" when every replica it asked for is ready."""
    if word(detail) not in _GOAL_WORDS[goal]:
        return False
    if goal == RUNNING:
        ready, wanted = replica_counts(detail)
        # A reply without workload or pods gives nothing more to wait for than its word.
        return ready is None or ready >= wanted
    return True


def failed(detail: dict[str, Any], goal: str) -> bool:
    """Given up on: a failed create, an abnormal service, or one stopped while we wait for it to run."""
    status = word(detail)
    return status in _FAILED_WORDS or (goal == RUNNING and status in _GOAL_WORDS[STOPPED])


def reason(detail: dict[str, Any]) -> str:
    """Why the service is as it is: ``WorkloadStatus.Reason`` (the server's own ``Reason`` if any)."""
    return str(_workload(detail).get("Reason") or detail.get("Reason") or "").strip()


def describe(detail: dict[str, Any]) -> str:
    name, service_id = detail.get("ServiceName"), detail.get("ServiceId")
    ready, wanted = replica_counts(detail)
    text = f"{name} ({service_id}): {detail.get('Status')}, {ready or 0}/{wanted or 0} replicas ready"
    first = reason(detail).splitlines()
    return f"{text} - {first[0]}" if first and word(detail) not in _GOAL_WORDS[RUNNING] else text


def _pod_lines(detail: dict[str, Any]) -> list[str]:
    """A line for each container that says what is wrong with it (state, reason, message, restarts)."""
    lines = []
    for pod in pods(detail):
        for container in containers(pod):
            said = [str(container.get(k)) for k in ("State", "Reason", "Message") if container.get(k)]
            restarts = int(container.get("RestartCount") or 0)
            if container.get("Ready") and not restarts:
                continue
            if restarts:
                said.append(f"({restarts} restarts)")
            phase = pod.get("Phase") or pod.get("Status")
            what = " ".join(said) or "not ready"
            lines.append(f"  pod {pod.get('Name')} ({phase}) container {container.get('Name')}: {what}")
    return lines


def failure_error(detail: dict[str, Any], log_lines: list[str]) -> MlflowException:
    why = reason(detail)
    lines = [
        f"deployment {detail.get('ServiceName')!r} ({detail.get('ServiceId')}) is "
        f"{detail.get('Status')}: {why or 'no reason given'}"
    ]
    lines.extend(_pod_lines(detail))
    # The server's reason may quote the same lines already; add only what it does not say.
    unseen = [line for line in log_lines if line.split(": ", 1)[-1] not in why]
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
    """Poll ``fetch()`` (an ``MLModelService``) until it reaches ``goal``; print each change.

    Raises when the service fails (``CREATE_FAILED``/``ABNORMAL``: the workload's reason, the
    containers' states and the last log lines), is stopped while we wait for it to run, or the
    deadline passes.
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
        if failed(detail, goal):
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
