"""Reply shapes for tione: a service, a group, a pod, an event as the TI-ONE SDK's models read them.

Every member the SDK's model declares and the server knows is filled; members the server keeps as
they were given (a service's `HealthProbe`, `Env`, …, stored under the names wedata shares) are
shown back through `fit`, which keeps exactly the members the SDK's struct declares, so a value a
wedata request stored reads cleanly as TI-ONE's struct.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tcdeploy.protocol.states import ServiceStatus, tione_word
from tcdeploy.protocol.tione import fit

from ..backend import GroupSnapshot, ReplicaState, ServiceSnapshot, TokenView, instance_type, sized
from .context import Context
from .views import SERVICE_PORT, group_status, pod_ip, workload_status

# A service's members kept as given and shown back in `Service.ServiceInfo`: (TI-ONE's member,
# the struct it is read as or None for a scalar, the name it is stored under — wedata's where the
# two APIs share one).
SERVICE_INFO_ECHO: tuple[tuple[str, str | None, str], ...] = (
    ("ImageInfo", "ImageInfo", "ImageInfo"),
    ("LogConfig", "LogConfig", "LogConfig"),
    ("HorizontalPodAutoscaler", "HorizontalPodAutoscaler", "HorizontalPodAutoscaler"),
    ("HybridBillingPrepaidReplicas", None, "HybridBillingPrepaidReplicas"),
    ("ScaleStrategy", None, "ScaleStrategy"),
    ("ScheduledAction", "ScheduledAction", "ScheduledAction"),
    ("ServiceLimit", "ServiceLimit", "ServiceLimit"),
    ("ModelTurboEnable", None, "ModelTurboEnable"),
    ("VolumeMount", "VolumeMount", "VolumeMount"),
    ("Command", None, "Command"),
    ("ServiceEIP", "ServiceEIP", "ServiceEIPInfo"),
    ("TerminationGracePeriodSeconds", None, "TerminationGracePeriodSeconds"),
    ("PreStopCommand", None, "PreStopCommand"),
    ("GrpcEnable", None, "GrpcEnable"),
    ("HealthProbe", "HealthProbe", "HealthProbe"),
    ("RollingUpdate", "RollingUpdate", "RollingUpdate"),
    ("SchedulingStrategy", None, "SchedulingStrategy"),
    ("InferTemplateId", None, "InferTemplateId"),
)
# The same for members of `Service` itself.
SERVICE_ECHO: tuple[tuple[str, str | None, str], ...] = (
    ("ResourceGroupId", None, "ResourceGroupId"),
    ("ScheduledAction", "ScheduledAction", "ScheduledAction"),
    ("ServiceLimit", "ServiceLimit", "ServiceLimit"),
    ("CreateSource", None, "CreateSource"),
    ("ResourceSupplyAttribute", "ResourceSupplyAttribute", "ResourceSupplyAttribute"),
)
# TI-ONE's `ModelInfo` members that name the model; the rest are kept as given.
MODEL_IDENTITY = ("ModelName", "ModelVersion", "ModelId", "CosPathInfo")


def tione_time(ts: float | None) -> str:
    """RFC 3339 in UTC with `Z` to the second, as TI-ONE writes a resource's times."""
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _echo(spec: dict[str, Any], table: tuple[tuple[str, str | None, str], ...]) -> dict[str, Any]:
    shown = {}
    for member, struct, stored in table:
        value = spec.get(stored)
        if value is not None:
            shown[member] = fit(struct, value) if struct else value
    return shown


def tione_pod(state: ReplicaState, cpu: int, memory: int) -> dict:
    """A replica as the SDK's `Pod`, its one container as `Container`."""
    container = {
        "Name": "model",
        "ContainerId": str(state.pid or ""),
        "Status": {
            "RestartCount": state.restart_count,
            "State": str(state.phase),
            "Ready": state.ready,
            "Reason": state.reason,
            "Message": "" if state.ready else state.message,
        },
    }
    return {
        "Name": state.pod_name,
        "Uid": state.pod_name,
        "ChargeType": "POSTPAID_BY_HOUR",
        "Phase": str(state.phase),
        "IP": pod_ip(state),
        "CreateTime": tione_time(state.start_time),
        "StartScheduleTime": tione_time(state.start_time),
        "Containers": container,
        "ContainerInfos": [container],
        "Status": str(state.phase),
        "Message": "" if state.ready else state.message,
        "NodeIP": pod_ip(state),
        "NodeId": state.node,  # the Ray node it runs on (empty on one machine)
        "ResourceInfo": {"Cpu": cpu, "Memory": memory, "Gpu": 0},
    }


def model_info(spec: dict[str, Any]) -> dict[str, Any]:
    """The service's model as TI-ONE's `ModelInfo`: what it runs now (`MlModelInfo`, kept current
    by both APIs' updates), over what a TI-ONE request gave besides (`ModelType`, …)."""
    given = {k: v for k, v in (spec.get("ModelInfo") or {}).items() if k not in MODEL_IDENTITY}
    ml = spec.get("MlModelInfo") or {}
    running = {
        "ModelName": ml.get("Name") or "",
        "ModelVersion": ml.get("Version") or "",
        "ModelId": ml.get("Id") or "",
        "ModelSource": spec.get("ModelSource") or "MODEL",
        "CosPathInfo": {"Paths": [spec["ModelUri"]]},
    }
    return fit("ModelInfo", {**given, **running})


def tione_service(ctx: Context, snap: ServiceSnapshot, latest: int) -> dict:
    """A service as the SDK's `Service`."""
    service, group, pods = snap.service, snap.group, snap.pods
    spec = service.spec
    size = sized(spec)  # the instance type's, or `Resources` where the service sets them
    replicas = 0 if service.stopped else service.replicas
    resources = {"Cpu": size.cpu_millicores, "Memory": size.memory_mb, "Gpu": 0, "GpuType": "", "RealGpu": 0}
    failed = service.status is ServiceStatus.CREATE_FAILED
    info = {
        **_echo(spec, SERVICE_INFO_ECHO),
        "Replicas": replicas,
        "Env": fit("EnvVar", spec.get("Env") or []),
        "Resources": resources,
        "ResourceTotal": {**resources, "Cpu": size.cpu_millicores * replicas, "Memory": size.memory_mb * replicas},
        "InstanceType": spec["InstanceType"],
        "InstanceAlias": instance_type(spec["InstanceType"]).alias,
        "ModelInfo": model_info(spec),
        "LogEnable": bool(spec.get("LogEnable")),
        "AuthorizationEnable": group.auth_enabled,
        "Status": workload_status(snap),
        "Weight": service.weight,
        "ModelHotUpdateEnable": bool(spec.get("ModelHotUpdateEnable")),
        "ScaleMode": spec.get("ScaleMode") or "MANUAL",
        "CronScaleJobs": fit("CronScaleJob", spec.get("CronScaleJobs") or []),
        "PodList": [p.pod_name for p in pods],
        "PodInfos": [tione_pod(p, size.cpu_millicores, size.memory_mb) for p in pods],
        "ServicePort": spec.get("ServicePort") or SERVICE_PORT,
        "InstancePerReplicas": 1,
        "VolumeMounts": fit("VolumeMount", spec.get("VolumeMounts") or []),
    }
    return {
        **_echo(spec, SERVICE_ECHO),
        "ServiceGroupId": group.id,
        "ServiceId": service.id,
        "ServiceGroupName": group.name,
        "ServiceDescription": spec.get("ServiceDescription") or "",
        "ServiceInfo": info,
        "ClusterId": "local",
        "Region": ctx.region,
        "Namespace": service.workspace,
        "ChargeType": spec.get("ChargeType") or "POSTPAID_BY_HOUR",
        "Tags": fit("Tag", spec.get("Tags") or []),
        "CreateTime": tione_time(service.created),
        "UpdateTime": tione_time(service.updated),
        "BusinessStatus": "CREATE_FAILED" if failed else "CREATE_SUCCEED",
        "CreateFailedReason": service.reason if failed else "CREATE_SUCCEED",
        "Status": tione_word(service.status),
        "Weight": service.weight,
        "Version": str(service.version),
        "LatestVersion": str(latest),
        "DeployType": spec.get("DeployType") or "STANDARD",
        "InstancePerReplicas": "1",
        "ProjectId": service.workspace,
    }


def tione_token(token: TokenView) -> dict:
    """A group token as the SDK's `AuthToken`."""
    record = token.record
    return {
        "Base": {
            "Id": record.id,
            "Value": token.value,
            "Name": record.name,
            "Description": record.description,
            "CreateTime": tione_time(record.created),
            "Status": "Normal",
        },
        "Limits": [],
    }


def tione_group(ctx: Context, snap: GroupSnapshot) -> dict:
    """A group as the SDK's `ServiceGroup`, its services in full."""
    group = snap.group
    services = [s.service for s in snap.services]
    latest = max((s.version for s in services), default=0)
    return {
        "ServiceGroupId": group.id,
        "ServiceGroupName": group.name,
        "CreateTime": tione_time(group.created),
        "UpdateTime": tione_time(group.updated),
        "ServiceCount": len(services),
        "RunningServiceCount": sum(1 for s in services if s.status is ServiceStatus.RUNNING),
        "Services": [tione_service(ctx, s, latest) for s in snap.services],
        "Status": tione_word(group_status(snap)),
        "Tags": [],
        "LatestVersion": str(latest),
        "BusinessStatus": "CREATE_SUCCEED",
        "WeightUpdateStatus": "UPDATED",
        "ReplicasCount": sum(1 for s in snap.services for p in s.pods if p.ready),
        "AvailableReplicasCount": sum(0 if s.stopped else s.replicas for s in services),
        "AuthorizationEnable": group.auth_enabled,
        "AuthTokens": [tione_token(t) for t in ctx.backend.tokens(group.id)],
    }
