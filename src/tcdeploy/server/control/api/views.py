"""Reply shapes: a service or a group as wedata's `Data` and as TI-ONE's SDK models read them."""

from __future__ import annotations

from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_WAIT_MS
from tcdeploy.protocol.states import GroupStatus, ServiceStatus

from ..backend import GroupSnapshot, ReplicaState, ServiceSnapshot, instance_type
from .context import Context
from .times import iso


def pod_view(state: ReplicaState) -> dict:
    return {
        "PodName": state.pod_name,
        "Phase": state.phase,
        "Ready": state.ready,
        "RestartCount": state.restart_count,
        "StartTime": iso(state.start_time),
        "Reason": state.reason,
        "Message": state.message if not state.ready else "",
    }


def service_detail(ctx: Context, snap: ServiceSnapshot) -> dict:
    service, group, pods = snap.service, snap.group, snap.pods
    spec = service.spec
    size = instance_type(spec["InstanceType"])
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
        "ReadyReplicas": snap.ready_replicas,
        "ChargeType": spec.get("ChargeType", "POSTPAID_BY_HOUR"),
        "ScaleMode": spec.get("ScaleMode", "MANUAL"),
        "ServiceLimit": spec.get("ServiceLimit"),
        "ScheduledAction": spec.get("ScheduledAction"),
        "BatchConfig": spec.get("BatchConfig")
        or {"MaxBatchSize": DEFAULT_MAX_BATCH_ROWS, "MaxBatchWaitMs": DEFAULT_MAX_BATCH_WAIT_MS},
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
        "Url": ctx.service_url(service.id),
        "GroupUrl": ctx.group_url(group.id),
        "CreateTime": iso(service.created),
        "UpdateTime": iso(service.updated),
        "Pods": [pod_view(p) for p in pods],
    }
    if snap.events is not None:
        detail["Events"] = [
            {"Time": iso(e.time), "Type": e.type, "Reason": e.reason, "Message": e.message} for e in snap.events
        ]
    return detail


def group_status(snap: GroupSnapshot) -> GroupStatus | ServiceStatus:
    return GroupStatus.of([s.service.status for s in snap.services])


def wedata_group(ctx: Context, snap: GroupSnapshot) -> dict:
    group = snap.group
    return {
        "ServiceGroupId": group.id,
        "ServiceGroupName": group.name,
        "WorkspaceId": group.workspace,
        "AuthorizationEnable": group.auth_enabled,
        "Url": ctx.group_url(group.id),
        "Status": group_status(snap),
        "CreateTime": iso(group.created),
        "UpdateTime": iso(group.updated),
        "Services": [service_detail(ctx, s) for s in snap.services],
    }


def sdk_service(snap: ServiceSnapshot, latest: int) -> dict:
    """A service as `tencentcloud.tione.v20211111.models.Service`."""
    service, group, pods = snap.service, snap.group, snap.pods
    spec = service.spec
    size = instance_type(spec["InstanceType"])
    ready = snap.ready_replicas
    model = spec.get("MlModelInfo") or {}
    return {
        "ServiceGroupId": group.id,
        "ServiceId": service.id,
        "ServiceGroupName": group.name,
        "ServiceDescription": spec.get("ServiceDescription") or "",
        "Status": service.status,
        "CreateFailedReason": service.reason if service.status is ServiceStatus.CREATE_FAILED else "CREATE_SUCCEED",
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
                    "ContainerInfos": [
                        {
                            "Name": "model",
                            "Status": {
                                "RestartCount": p.restart_count,
                                "State": p.phase,
                                "Ready": p.ready,
                                "Reason": p.reason,
                                "Message": "",
                            },
                        }
                    ],
                }
                for p in pods
            ],
        },
    }


def sdk_group(snap: GroupSnapshot) -> dict:
    """A group as `tencentcloud.tione.v20211111.models.ServiceGroup`."""
    group = snap.group
    services = [s.service for s in snap.services]
    latest = max((s.version for s in services), default=0)
    all_pods = [p for s in snap.services for p in s.pods]
    return {
        "ServiceGroupId": group.id,
        "ServiceGroupName": group.name,
        "CreateTime": iso(group.created),
        "UpdateTime": iso(group.updated),
        "ServiceCount": len(services),
        "RunningServiceCount": sum(1 for s in services if s.status is ServiceStatus.RUNNING),
        "Status": group_status(snap),
        "LatestVersion": str(latest),
        "ReplicasCount": sum(1 for p in all_pods if p.ready),
        "AvailableReplicasCount": sum(0 if s.stopped else s.replicas for s in services),
        "AuthorizationEnable": group.auth_enabled,
        "WeightUpdateStatus": "UPDATED",
        "Services": [sdk_service(s, latest) for s in snap.services],
    }
