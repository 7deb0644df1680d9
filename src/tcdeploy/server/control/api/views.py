"""Reply shapes: a service or a group as wedata's `Data` and as TI-ONE's SDK models read them."""

from __future__ import annotations

from tcdeploy.protocol.apis import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_BATCH_WAIT_MS
from tcdeploy.protocol.chat import MACHINE_LEARNING
from tcdeploy.protocol.replica_hop import TCP_PREFIX, split_tcp_address
from tcdeploy.protocol.states import GroupStatus, ServiceStatus, tione_word, wedata_word

from ..backend import GroupSnapshot, ReplicaState, ServiceSnapshot, sized
from .auth import ml_auth_tokens
from .context import Context
from .times import wedata_time

# The server's own replicas listen on this port inside their pod, as TI-ONE's model images do.
SERVICE_PORT = 8501


def pod_ip(state: ReplicaState) -> str:
    """Where the replica serves: its node's address on a cluster (Ray), else this machine."""
    if state.address and state.address.startswith(TCP_PREFIX):
        return split_tcp_address(state.address)[0]
    return "127.0.0.1"


def wedata_pod(state: ReplicaState) -> dict:
    """A replica as the schema's `Pod`, its one container as `ContainerInfo`."""
    return {
        "Name": state.pod_name,
        "Uid": state.pod_name,
        "Ip": pod_ip(state),
        "Phase": str(state.phase),
        "Status": str(state.phase),
        "CreateTime": wedata_time(state.start_time),
        "ChargeType": "POSTPAID_BY_HOUR",
        "ContainerInfos": [
            {
                "Name": "model",
                "ContainerId": str(state.pid or ""),
                "State": str(state.phase),
                "Ready": state.ready,
                "RestartCount": state.restart_count,
                "Reason": state.reason,
                "Message": "" if state.ready else state.message,
            }
        ],
    }


def workload_status(snap: ServiceSnapshot) -> dict:
    """The replicas' sum, as the schema's `WorkloadStatus` (its Status in TI-ONE's words)."""
    service, pods = snap.service, snap.pods
    ready = snap.ready_replicas
    return {
        "Replicas": 0 if service.stopped else service.replicas,
        "ReadyReplicas": ready,
        "AvailableReplicas": ready,
        "UnavailableReplicas": len(pods) - ready,
        "UpdatedReplicas": ready,
        "Status": tione_word(service.status),
        "Reason": service.reason or _scaled_to_zero(service),
        "Conditions": [],
        "StatefulSetCondition": [],
    }


def _scaled_to_zero(service) -> str:
    """Why a running service has no replica: it idled to zero (it is still Normal)."""
    if service.spec.get("_ScaledToZero") and service.replicas == 0:
        return "ScaledToZero: no request for a while; the next request wakes a replica"
    return ""


def wedata_service(ctx: Context, snap: ServiceSnapshot) -> dict:
    """A service as the schema's `MLModelService` (plus our `BatchConfig`, see docs/wire.md)."""
    service, group = snap.service, snap.group
    spec = service.spec
    size = sized(spec)
    return {
        "ServiceId": service.id,
        "ServiceName": service.name,
        "ServiceGroupId": group.id,
        "WorkspaceId": service.workspace,
        "Description": spec.get("ServiceDescription") or "",
        "Status": wedata_word(service.status),
        "ServiceType": spec.get("ServiceType", MACHINE_LEARNING),
        "InstanceType": spec["InstanceType"],
        "Resources": {
            "Cpu": size.cpu_millicores,
            "Memory": size.memory_mb,
            "Gpu": 0,
            "GpuType": "",
            "RealGpu": 0,
            "RealGpuDetailSet": [],
            "EnableRDMA": False,
        },  # fmt: skip
        "Replicas": service.replicas,
        "InstancePerReplicas": 1,
        "WorkloadStatus": workload_status(snap),
        "PodInfos": [wedata_pod(p) for p in snap.pods],
        "ChargeType": spec.get("ChargeType") or "POSTPAID_BY_HOUR",
        "ScaleMode": spec.get("ScaleMode") or "MANUAL",
        "ScaleStrategy": spec.get("ScaleStrategy") or "FIXED",
        "ServiceLimit": spec.get("ServiceLimit"),
        "ScheduledAction": spec.get("ScheduledAction"),
        "MlModelInfo": {"Id": "", **(spec.get("MlModelInfo") or {}), "ModelPath": spec["ModelUri"]},
        "ModelSource": spec.get("ModelSource") or "MODEL",
        "CatalogName": spec.get("CatalogName"),
        "SchemaName": spec.get("SchemaName"),
        "CatalogPath": spec.get("CatalogPath"),
        "SchemaPath": spec.get("SchemaPath"),
        "PayloadPath": spec.get("PayloadPath"),
        "ServicePort": spec.get("ServicePort") or SERVICE_PORT,
        "Command": spec.get("Command"),
        "Env": spec.get("Env") or [],
        "ImageInfo": spec.get("ImageInfo"),
        "AuthorizationEnable": group.auth_enabled,
        "LogEnable": bool(spec.get("LogEnable")),
        "LogConfig": spec.get("LogConfig"),
        "LogStatus": "RUNNING" if spec.get("LogEnable") else "",
        "InferenceTablePushEnable": bool(spec.get("InferenceTablePushEnable")),
        "Weight": service.weight,
        "Version": service.version,
        "CreateBy": "",
        "CreateTime": wedata_time(service.created),
        "UpdateTime": wedata_time(service.updated),
        "Region": ctx.region,
        "BillingStatus": "",
        "BillingInfo": "",
        "BillingUnits": [],
        # A twin has no TI-ONE beneath it: the ids it would name are the service's own.
        "TiOneServiceId": service.id,
        "TiOneServiceGroupId": group.id,
        "ResourceGroupId": spec.get("ResourceGroupId") or "",
        "ResourceGroupName": "",
        "ServiceEIPInfo": spec.get("ServiceEIPInfo"),
        "InferenceTableCosBucket": spec.get("InferenceTableCosBucket") or "",
        "HorizontalPodAutoscaler": spec.get("HorizontalPodAutoscaler"),
        "CronScaleJobs": spec.get("CronScaleJobs") or [],
        "RollingUpdate": spec.get("RollingUpdate"),
        "ModelHotUpdateEnable": bool(spec.get("ModelHotUpdateEnable")),
        "MaxRetryTimes": spec.get("MaxRetryTimes") or 0,
        "SchedulingStrategy": spec.get("SchedulingStrategy") or "",
        "TerminationGracePeriodSeconds": spec.get("TerminationGracePeriodSeconds") or 30,
        "BatchConfig": spec.get("BatchConfig")
        or {"MaxBatchSize": DEFAULT_MAX_BATCH_ROWS, "MaxBatchWaitMs": DEFAULT_MAX_BATCH_WAIT_MS},
        "RequestTimeoutSeconds": spec.get("RequestTimeoutSeconds"),  # null: the server's default
    }


def group_status(snap: GroupSnapshot) -> GroupStatus | ServiceStatus:
    return GroupStatus.of([s.service.status for s in snap.services])


def wedata_group(ctx: Context, snap: GroupSnapshot) -> dict:
    """A group as the schema's `MLModelServiceGroup`, its services in full."""
    group = snap.group
    services = [s.service for s in snap.services]
    spec = group.spec
    return {
        "ServiceGroupId": group.id,
        "ServiceGroupName": group.name,
        "WorkspaceId": group.workspace,
        "Description": spec.get("Description") or "",
        "Status": wedata_word(group_status(snap)),
        "ServiceType": services[0].spec.get("ServiceType", MACHINE_LEARNING) if services else MACHINE_LEARNING,
        "ServiceCount": len(services),
        "RunningServiceCount": sum(1 for s in services if s.status is ServiceStatus.RUNNING),
        "LatestVersion": str(max((s.version for s in services), default=0)),
        "WeightUpdateStatus": "UPDATED",
        "AuthorizationEnable": group.auth_enabled,
        "AuthTokens": ml_auth_tokens(ctx, group),
        "LogEnable": any(s.spec.get("LogEnable") for s in services),
        "InferenceTablePushEnable": any(s.spec.get("InferenceTablePushEnable") for s in services),
        "InferenceTableCosBucket": "",
        "LogConfig": (group.spec.get("MonitorConfig") or {}).get("LogConfig"),
        "CreateBy": "",
        "CreateTime": wedata_time(group.created),
        "UpdateTime": wedata_time(group.updated),
        "Services": [wedata_service(ctx, s) for s in snap.services],
    }
