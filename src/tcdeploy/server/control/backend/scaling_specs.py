"""What a service's scaling settings may be, whatever API asked: `ScaleMode`, `ScaleStrategy`,
`HorizontalPodAutoscaler`, `CronScaleJobs`, `ScheduledAction` and `ServiceLimit`, checked before
anything is written, each refusal naming the member.

The metric names and ranges are TI-ONE's (`tencentcloud-sdk-python-tione`'s
`HorizontalPodAutoscaler.HpaMetrics`): `cpu-util` and `memory-util` in percent of the instance
type's CPU and memory (10–100), `service-qps` per replica (1–5000), `concurrency-util` requests in
flight per replica (1–100000). `gpu-util` is TI-ONE's too, and refused: no instance type here has
a GPU.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue, MissingParameter

from .schedules import check_cron
from .service_specs import MAX_REPLICAS
from .service_specs import member as _at

METRIC_RANGES: dict[str, tuple[int, int]] = {
    "cpu-util": (10, 100),
    "memory-util": (10, 100),
    "service-qps": (1, 5000),
    "concurrency-util": (1, 100_000),
}
NO_GPU = "gpu-util"
MAX_WINDOW_SECONDS = 3600
MAX_EXCLUDE_DATES = 3  # as TI-ONE's CronScaleJob.ExcludeDates says
STRATEGIES = ("HPA", "CRON")


def with_scaling(spec: dict[str, Any], field: str, *, given: set[str], now: float) -> dict[str, Any]:
    """`spec` once its scaling settings are checked; cron jobs a request sets look ahead from
    now (a job's run already past when it was set is not applied)."""
    check_scaling(spec, field, given=given, now=now, max_replicas=MAX_REPLICAS)
    if "CronScaleJobs" in given:
        spec = {**spec, "_CronAfter": now}
    return spec


def check_scaling(spec: dict[str, Any], field: str, *, given: set[str], now: float, max_replicas: int) -> None:
    """Refuse scaling settings the server cannot act on. `given` names the members this request
    sets: a stop time already past is refused only when the request sets it (a stored one that
    has fired must not block later updates)."""
    mode = spec.get("ScaleMode") or "MANUAL"
    if mode not in ("MANUAL", "AUTO"):
        raise InvalidParameterValue(_at(field, "ScaleMode"), "must be MANUAL or AUTO")
    strategy = spec.get("ScaleStrategy") or "HPA"
    if mode == "AUTO" and strategy not in STRATEGIES:
        raise InvalidParameterValue(_at(field, "ScaleStrategy"), "must be HPA or CRON with ScaleMode AUTO")
    # Kept and checked whatever the mode (a client switching to MANUAL sends them back); they
    # act under AUTO, the autoscaler with metrics, the jobs with ScaleStrategy CRON.
    hpa = spec.get("HorizontalPodAutoscaler")
    if hpa:
        check_autoscaler(hpa, _at(field, "HorizontalPodAutoscaler"), max_replicas, needs_metrics=mode == "AUTO")
    jobs = spec.get("CronScaleJobs") or []
    for i, job in enumerate(jobs):
        check_cron_job(job, _at(field, f"CronScaleJobs.{i}"), max_replicas)
    if mode == "AUTO" and strategy == "HPA" and not hpa:
        raise MissingParameter(
            _at(field, "HorizontalPodAutoscaler"),
            "is required with ScaleMode AUTO (wedata's CreateMLModelService has no such member: create with "
            "CreateMLModelServices, or set it with UpdateMLModelService)",
        )
    if mode == "AUTO" and strategy == "CRON" and not jobs:
        raise MissingParameter(_at(field, "CronScaleJobs"), "is required with ScaleStrategy CRON")
    check_scheduled_stop(
        spec.get("ScheduledAction") or {}, _at(field, "ScheduledAction"), now, "ScheduledAction" in given
    )
    check_limit(spec.get("ServiceLimit") or {}, _at(field, "ServiceLimit"))


def check_autoscaler(hpa: dict[str, Any], field: str, max_replicas: int, *, needs_metrics: bool = True) -> None:
    """`needs_metrics`: under AUTO the autoscaler needs something to follow; kept under MANUAL,
    it may have none yet (wedata's struct has no `HpaMetrics`: they are our extension)."""
    low, high = hpa.get("MinReplicas"), hpa.get("MaxReplicas")
    for name, value in (("MinReplicas", low), ("MaxReplicas", high)):
        if value is None:
            raise MissingParameter(f"{field}.{name}")
        _integer(value, f"{field}.{name}", 0, max_replicas)
    if high < max(low, 1):
        raise InvalidParameterValue(f"{field}.MaxReplicas", f"must be at least MinReplicas ({low}) and at least 1")
    for name in ("ScaleUpStabilizationWindowSeconds", "ScaleDownStabilizationWindowSeconds"):
        if hpa.get(name) is not None:
            _integer(hpa[name], f"{field}.{name}", 0, MAX_WINDOW_SECONDS)
    metrics = hpa.get("HpaMetrics") or []
    if not metrics and needs_metrics:
        raise MissingParameter(f"{field}.HpaMetrics", f"needs at least one of {', '.join(METRIC_RANGES)}")
    seen = set()
    for i, metric in enumerate(metrics):
        name, value = metric.get("Name"), metric.get("Value")
        at = f"{field}.HpaMetrics.{i}"
        if name == NO_GPU:
            raise InvalidParameterValue(f"{at}.Name", "gpu-util needs a GPU, and no instance type here has one")
        if name not in METRIC_RANGES:
            raise InvalidParameterValue(f"{at}.Name", f"must be one of {', '.join(METRIC_RANGES)}")
        if name in seen:
            raise InvalidParameterValue(f"{at}.Name", f"{name} is given twice")
        seen.add(name)
        if value is None:
            raise MissingParameter(f"{at}.Value")
        _integer(value, f"{at}.Value", *METRIC_RANGES[name])


def check_cron_job(job: dict[str, Any], field: str, max_replicas: int) -> None:
    if not job.get("Schedule"):
        raise MissingParameter(f"{field}.Schedule")
    check_cron(job["Schedule"], f"{field}.Schedule")
    for name in ("TargetReplicas", "MinReplicas", "MaxReplicas"):
        if job.get(name) is not None:
            _integer(job[name], f"{field}.{name}", 0, max_replicas)
    if all(job.get(name) is None for name in ("TargetReplicas", "MinReplicas", "MaxReplicas")):
        raise MissingParameter(f"{field}.TargetReplicas", "or MinReplicas/MaxReplicas: the job must change something")
    low, high = job.get("MinReplicas"), job.get("MaxReplicas")
    if low is not None and high is not None and high < low:
        raise InvalidParameterValue(f"{field}.MaxReplicas", f"must be at least MinReplicas ({low})")
    excludes = job.get("ExcludeDates") or []
    if len(excludes) > MAX_EXCLUDE_DATES:
        raise InvalidParameterValue(f"{field}.ExcludeDates", f"at most {MAX_EXCLUDE_DATES} are allowed")
    for i, exclude in enumerate(excludes):
        check_cron(exclude, f"{field}.ExcludeDates.{i}", dates=True)


def check_scheduled_stop(action: dict[str, Any], field: str, now: float, given: bool) -> None:
    if not action.get("ScheduleStop"):
        return
    text = action.get("ScheduleStopTime")
    if not text:
        raise MissingParameter(f"{field}.ScheduleStopTime", "is required when ScheduleStop is true")
    when = stop_time(text, f"{field}.ScheduleStopTime")
    if given and when <= now:
        raise InvalidParameterValue(f"{field}.ScheduleStopTime", f"{text} is in the past")


def stop_time(text: str, field: str = "ScheduledAction.ScheduleStopTime") -> float:
    """A stop time in epoch seconds; a time with no offset is the server's local time."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (parsed if parsed.tzinfo else parsed.astimezone()).timestamp()
    except (ValueError, OverflowError, OSError):
        raise InvalidParameterValue(field, "is not an ISO-8601 time like 2026-01-26T19:46:22+08:00") from None


def check_limit(limit: dict[str, Any], field: str) -> None:
    if limit.get("EnableInstanceReqLimit") and not limit.get("InstanceReqLimit"):
        raise MissingParameter(f"{field}.InstanceReqLimit", "must be 1 or more when EnableInstanceReqLimit is true")


def _integer(value: Any, field: str, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameterValue(field, f"must be an integer from {low} to {high}")
