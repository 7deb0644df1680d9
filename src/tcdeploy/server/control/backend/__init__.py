"""State and rules of the model service, framework-free: services, groups, weights, tokens, the
reconciler that turns the store's desired state into replicas, instance types, the model registry."""

from ...runtime import LogLine, ReplicaState
from ...store import GroupRecord
from .backend import MAX_SERVICES_PER_GROUP, Backend, GroupSnapshot, ServiceSnapshot
from .ids import new_id, new_pod_name, pod_prefix
from .instance_types import INSTANCE_TYPES, InstanceType, instance_type, sized
from .monitor_history import MonitorHistory
from .observing import FoldedEvent, ReplicaUsage, ServiceEvent
from .reconciler import Reconciler
from .registry import ModelRef, ModelRegistry
from .scaling import ScalingControl, ScalingSettings
from .secrets import ServerSecret
from .tokens import TokenView

__all__ = [
    "INSTANCE_TYPES",
    "LogLine",
    "ReplicaState",
    "MAX_SERVICES_PER_GROUP",
    "Backend",
    "FoldedEvent",
    "GroupRecord",
    "GroupSnapshot",
    "ReplicaUsage",
    "ServiceEvent",
    "InstanceType",
    "ModelRef",
    "MonitorHistory",
    "ModelRegistry",
    "Reconciler",
    "ScalingControl",
    "ScalingSettings",
    "ServerSecret",
    "ServiceSnapshot",
    "pod_prefix",
    "sized",
    "TokenView",
    "instance_type",
    "new_id",
    "new_pod_name",
]
