"""Reply shapes: a service or a group as wedata's `Data` and as TI-ONE's SDK models read them."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ...protocol.actions import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_WAIT_MS
from ..store import GroupRecord, ServiceRecord
from .specs import instance_spec

if TYPE_CHECKING:
    from ..runtime import ReplicaState
    from .core import Core


def iso(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def service_url(core: "Core", service_id: str) -> str:
    return f"{core.settings.public_url}/services/{service_id}/predict"


def group_url(core: "Core", group_id: str) -> str:
    return f"{core.settings.public_url}/groups/{group_id}/predict"


def pod_view(state: "ReplicaState") -> dict:
    return {
        "PodName": state.pod_name,
        "Phase": state.phase,
        "Ready": state.ready,
        "RestartCount": state.restart_count,
        "StartTime": iso(state.start_time),
        "Reason": state.reason,
        "Message": state.message if not state.ready else "",
    }


def service_detail(core: "Core", service: ServiceRecord, group: GroupRecord, events: bool = True) -> dict:
    spec = service.spec
    size = instance_spec(spec["InstanceType"])
    pods = core.runtime.states(service.id)
    detail = {
        "ServiceId": service.id,
        "ServiceName": service.name,
        "ServiceGroupId": group.id,
        "ServiceGroupName": group.name,
        "WorkspaceId": service.workspace,
        "Status": service.status,
        "Reason": service.reason,
        "ServiceDescription": spec.get("ServiceDescription") or "",
        "InstanceType": spec["InstanceType"],
        "Cpu": size.cpu_millicores,
        "Memory": size.memory_mb,
        "Replicas": service.replicas,
        "ReadyReplicas": sum(1 for p in pods if p.ready),
        "ChargeType": spec.get("ChargeType", "POSTPAID_BY_HOUR"),
        "ScaleMode": spec.get("ScaleMode", "MANUAL"),
        "ServiceLimit": spec.get("ServiceLimit"),
        "ScheduledAction": spec.get("ScheduledAction"),
        "BatchConfig": spec.get("BatchConfig") or {
            "MaxBatchSize": DEFAULT_MAX_BATCH_ROWS, "MaxBatchWaitMs": DEFAULT_MAX_BATCH_WAIT_MS},
        "Weight": service.weight,
        "Version": str(service.version),
        "MlModelInfo": spec.get("MlModelInfo") or {},
        "ModelUri": spec["ModelUri"],
        "CatalogName": spec.get("CatalogName"),
        "SchemaName": spec.get("SchemaName"),
        "AuthorizationEnable": group.auth_enabled,
        "LogEnable": bool(spec.get("LogEnable")),
        "LogConfig": spec.get("LogConfig"),
        "InferenceTablePushEnable": bool(spec.get("InferenceTablePushEnable")),
        "Url": service_url(core, service.id),
        "GroupUrl": group_url(core, group.id),
        "CreateTime": iso(service.created),
        "UpdateTime": iso(service.updated),
        "Pods": [pod_view(p) for p in pods],
    }
    if events:
        detail["Events"] = [
            {"Time": iso(e.time), "Type": e.type, "Reason": e.reason, "Message": e.message}
            for e in core.store.events(service.id)
        ]
    return detail


def group_status(services: list[ServiceRecord]) -> str:
    if not services:
        return "Stopped"
    statuses = {s.status for s in services}
    for status in ("Creating", "Updating", "Abnormal", "Running"):
        if status in statuses:
            return "Normal" if status == "Running" else status
    return next(iter(statuses))


def wedata_group(core: "Core", group: GroupRecord) -> dict:
    services = core.store.services(group.id)
    return {
        "ServiceGroupId": group.id,
        "ServiceGroupName": group.name,
        "WorkspaceId": group.workspace,
        "AuthorizationEnable": group.auth_enabled,
        "Url": group_url(core, group.id),
        "Status": group_status(services),
        "CreateTime": iso(group.created),
        "UpdateTime": iso(group.updated),
        "Services": [service_detail(core, s, group, events=False) for s in services],
    }


def sdk_service(core: "Core", service: ServiceRecord, group: GroupRecord, latest: int) -> dict:
    """A service as `tencentcloud.tione.v20211111.models.Service`."""
    spec = service.spec
    size = instance_spec(spec["InstanceType"])
    pods = core.runtime.states(service.id)
    ready = sum(1 for p in pods if p.ready)
    model = spec.get("MlModelInfo") or {}
    return {
        "ServiceGroupId": group.id,
        "ServiceId": service.id,
        "ServiceGroupName": group.name,
        "ServiceDescription": spec.get("ServiceDescription") or "",
        "Status": service.status,
        "CreateFailedReason": service.reason if service.status == "CreateFailed" else "CREATE_SUCCEED",
        "Weight": service.weight,
        "Version": str(service.version),
        "LatestVersion": str(latest),
        "ChargeType": spec.get("ChargeType", "POSTPAID_BY_HOUR"),
        "CreateTime": iso(service.created),
        "UpdateTime": iso(service.updated),
        "ProjectId": service.workspace,
        "Region": "local",
        "ServiceInfo": {
            "Replicas": 0 if service.stopped else service.replicas,
            "InstanceType": spec["InstanceType"],
            "ScaleMode": spec.get("ScaleMode", "MANUAL"),
            "Weight": service.weight,
            "LogEnable": bool(spec.get("LogEnable")),
            "AuthorizationEnable": group.auth_enabled,
            "ServiceLimit": spec.get("ServiceLimit"),
            "ModelInfo": {
                "ModelId": model.get("Id") or "",
                "ModelName": model.get("Name") or "",
                "ModelVersion": model.get("Version") or "",
                "ModelSource": spec.get("ModelSource", "MODEL"),
            },
            "Resources": {"Cpu": size.cpu_millicores, "Memory": size.memory_mb},
            "Status": {
                "Replicas": len(pods),
                "ReadyReplicas": ready,
                "AvailableReplicas": ready,
                "UnavailableReplicas": len(pods) - ready,
                "Status": service.status,
                "Reason": service.reason,
            },
            "PodInfos": [
                {
                    "Name": p.pod_name,
                    "Phase": p.phase,
                    "CreateTime": iso(p.start_time),
                    "Status": p.phase,
                    "Message": p.message if not p.ready else "",
                    "ContainerInfos": [{
                        "Name": "model",
                        "Status": {
                            "RestartCount": p.restart_count,
                            "State": p.phase,
                            "Ready": p.ready,
                            "Reason": p.reason,
                            "Message": "",
                        },
                    }],
                }
                for p in pods
            ],
        },
    }


def sdk_group(core: "Core", group: GroupRecord) -> dict:
    """A group as `tencentcloud.tione.v20211111.models.ServiceGroup`."""
    services = core.store.services(group.id)
    latest = max((s.version for s in services), default=0)
    all_pods = [p for s in services for p in core.runtime.states(s.id)]
    return {
        "ServiceGroupId": group.id,
        "ServiceGroupName": group.name,
        "CreateTime": iso(group.created),
        "UpdateTime": iso(group.updated),
        "ServiceCount": len(services),
        "RunningServiceCount": sum(1 for s in services if s.status == "Running"),
        "Status": group_status(services),
        "LatestVersion": str(latest),
        "ReplicasCount": sum(1 for p in all_pods if p.ready),
        "AvailableReplicasCount": sum(0 if s.stopped else s.replicas for s in services),
        "AuthorizationEnable": group.auth_enabled,
        "WeightUpdateStatus": "UPDATED",
        "Services": [sdk_service(core, s, group, latest) for s in services],
    }
