"""Replicas: start, watch, restart and stop the processes that serve a model.

`LocalRuntime` runs them as local processes; `Fleet` keeps a service's replicas at a template and a
count, rolling them one at a time. This package reports through callbacks and never reaches into
the store, the control plane or the gateway.
"""

from tcdeploy.server.runtime.fleet import Fleet, FleetResult, ReplicaTemplate
from tcdeploy.server.runtime.local import LocalRuntime
from tcdeploy.server.runtime.logs import LogLine, pod_log_names, read_logs, tail_logs
from tcdeploy.server.runtime.paths import reap_orphans
from tcdeploy.server.runtime.spec import LIVENESS_FAILED, NOT_READY, HealthProbes, Probe, ReplicaSpec, ReplicaState

__all__ = [
    "LIVENESS_FAILED",
    "NOT_READY",
    "Fleet",
    "FleetResult",
    "HealthProbes",
    "LocalRuntime",
    "LogLine",
    "Probe",
    "ReplicaSpec",
    "ReplicaState",
    "ReplicaTemplate",
    "pod_log_names",
    "read_logs",
    "reap_orphans",
    "tail_logs",
]
