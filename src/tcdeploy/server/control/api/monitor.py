"""A service's monitor data (`GetModelServiceMonitorData`) and a group's monitor settings
(`Get`/`UpdateServiceGroupMonitorConfig`).

The schema names no metric; these are the ones the server can back (docs/wire.md lists them):
the per-step figures of the requests routed to the service (dimension `ServiceId`), its instance
and ready counts, and each replica's CPU and memory (dimension `PodName`: its history, then a
point sampled now). Steps of whole minutes come from the monitoring history (per-minute rollups
kept for days, see `gateway/history.py`), shorter ones from the last hour in memory.
`Instances` picks series by their dimensions.
"""

from __future__ import annotations

import time
from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue

from ..backend import GroupRecord
from .context import Context, required
from .times import parse_time, wedata_time

# Metric name → the gateway's figure for a step (requests, latencies in ms, the most in flight).
GATEWAY_METRICS = {
    "Requests": "requests",
    "Errors": "errors",
    "Limited": "limited",
    "LatencyP50": "p50_latency_ms",
    "LatencyP99": "p99_latency_ms",
    "Inflight": "inflight",
    "BytesIn": "bytes_in",
    "BytesOut": "bytes_out",
}
# Metric name → the service's instance counts, per step.
COUNT_METRICS = {"Replicas": "replicas", "ReadyReplicas": "ready_replicas"}
# Metric name → the replica's figure, percent of its instance type (the names TI-ONE uses for these).
REPLICA_METRICS = {"InstanceCpuUtil": "cpu_percent", "InstanceMemUtil": "memory_percent"}
METRICS = (*GATEWAY_METRICS, *COUNT_METRICS, *REPLICA_METRICS)
DIMENSIONS = ("ServiceId", "PodName")  # of the gateway's series, and of a replica's
DEFAULT_PERIOD = 60
DEFAULT_WINDOW = 3600


async def monitor_data(ctx: Context, req: Any) -> dict:
    metric = req.MetricName
    if metric not in METRICS:
        raise InvalidParameterValue("MetricName", f"unknown metric {metric!r}; known: {', '.join(METRICS)}")
    period = req.Period or DEFAULT_PERIOD
    end = parse_time(req.EndTime, "EndTime") or time.time()
    start = parse_time(req.StartTime, "StartTime") or end - DEFAULT_WINDOW
    if end <= start:
        raise InvalidParameterValue("EndTime", "must be after StartTime")
    wanted = _instances(req.Instances)
    service = ctx.backend.service(ctx.workspace, req.ServiceId)
    dimensions = [{"Name": "ServiceId", "Value": service.id}]
    if metric in GATEWAY_METRICS:
        steps = ctx.backend.service_monitor(ctx.workspace, service.id, start, end, float(period))
        points = [_series(steps, GATEWAY_METRICS[metric], dimensions)]
    elif metric in COUNT_METRICS:
        counts, _ = ctx.backend.replica_history(ctx.workspace, service.id, start, end, float(period))
        points = [_series(counts, COUNT_METRICS[metric], dimensions)]
    else:
        points = _replica_points(ctx, service.id, REPLICA_METRICS[metric], (start, end, float(period)))
    if wanted:
        points = [p for p in points if any(w <= {(d["Name"], d["Value"]) for d in p["Dimensions"]} for w in wanted)]
    return {
        "Data": {
            "MetricName": metric,
            "Period": period,
            "StartTime": wedata_time(start),
            "EndTime": wedata_time(end),
            "Msg": "",
            "DataPoints": points,
        }
    }


def _replica_points(ctx: Context, service_id: str, key: str, window: tuple[float, float, float]) -> list[dict]:
    """One series per replica: its history over the window, then (if the window reaches now) a
    point sampled now, so a replica started a moment ago shows too."""
    start, end, step = window
    now = time.time()
    _, history = ctx.backend.replica_history(ctx.workspace, service_id, start, end, step)
    series = {pod: _series(steps, key, [{"Name": "PodName", "Value": pod}]) for pod, steps in history.items()}
    if end >= now - step:
        for usage in ctx.backend.replica_usage(ctx.workspace, service_id):
            point = series.setdefault(
                usage.pod_name,
                {"Timestamps": [], "Values": [], "Dimensions": [{"Name": "PodName", "Value": usage.pod_name}]},
            )
            point["Timestamps"].append(str(int(now)))
            point["Values"].append(round(getattr(usage, key), 3))
    return [p for p in series.values() if p["Values"]]


def _instances(instances: list | None) -> list[set[tuple[str, str]]]:
    """`Instances` as sets of (dimension, value): a series is shown when it has every dimension of
    one of them (none given: every series)."""
    wanted = []
    for i, instance in enumerate(instances or ()):
        dims = set()
        for j, dim in enumerate(instance.Dimensions or ()):
            if dim.Name not in DIMENSIONS:
                raise InvalidParameterValue(
                    f"Instances.{i}.Dimensions.{j}.Name",
                    f"{dim.Name!r} is not a dimension; use {' or '.join(DIMENSIONS)}",
                )
            dims.add((dim.Name, dim.Value or ""))
        wanted.append(dims)
    return wanted


def _series(steps: list[dict], key: str, dimensions: list[dict]) -> dict:
    # A step with no figure (no request reached a replica: no latency) has no point.
    kept = [s for s in steps if s[key] is not None]
    return {
        "Timestamps": [str(int(s["time"])) for s in kept],
        "Values": [round(float(s[key]), 3) for s in kept],
        "Dimensions": dimensions,
    }


# ---- monitor settings of a group ------------------------------------------------------------

# Codes of `ServiceGroupMonitorConfigRsp`: 0 not enabled, 1 enabling (on), 2 closed, 3 abnormal.
NOT_ENABLED, ENABLED, CLOSED = 0, 1, 2
CONFIG_MEMBERS = ("ClsDeliveryEnabled", "InferenceTableCollectionEnabled", "CatalogPath", "SchemaPath", "PayloadPath")


async def get_monitor_config(ctx: Context, req: Any) -> dict:
    group = ctx.backend.group(ctx.workspace, required(req.ServiceGroupId, "ServiceGroupId"))
    return {"Data": _config_view(ctx, group)}


async def update_monitor_config(ctx: Context, req: Any) -> dict:
    changes = req.model_dump(exclude_none=True, include=set(CONFIG_MEMBERS))
    if req.LogConfig is not None:
        changes["LogConfig"] = req.LogConfig.model_dump(exclude_none=True)
    ctx.backend.set_monitor_config(ctx.workspace, required(req.ServiceGroupId, "ServiceGroupId"), changes)
    return {"Data": {"Status": True}}


def _config_view(ctx: Context, group: GroupRecord) -> dict:
    config = group.spec.get("MonitorConfig", {})
    services = ctx.backend.services(group.id)
    # The inference table's state is what the services do, however it was switched.
    table_on = any(s.spec.get("InferenceTablePushEnable") for s in services)
    table = ENABLED if table_on else _code(config.get("InferenceTableCollectionEnabled"))
    return {
        "ServiceGroupId": group.id,
        "ClsDeliveryEnabled": _code(config.get("ClsDeliveryEnabled")),
        "InferenceTableCollectionEnabled": table,
        "CatalogPath": config.get("CatalogPath", ""),
        "SchemaPath": config.get("SchemaPath", ""),
        "PayloadPath": config.get("PayloadPath", ""),
        "CreateTime": _millis(config.get("CreateTime")),
        "UpdateTime": _millis(config.get("UpdateTime")),
        "TaskId": "",
        "ErrorMessage": "",
        "ClsConfig": config.get("LogConfig"),
    }


def _code(flag: bool | None) -> int:
    if flag is None:
        return NOT_ENABLED
    return ENABLED if flag else CLOSED


def _millis(ts: float | None) -> str:
    return str(int(ts * 1000)) if ts else ""
