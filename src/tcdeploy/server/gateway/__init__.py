"""The data plane: each group's and service's `/predict`, routed by weight to ready replicas, with
API keys, rate limits, an inference table, metrics and their history.

The control plane feeds it state through `RouteTable`; it never imports the store, the control
plane, the runtime or the replica.
"""

from .dataplane import Gateway
from .history import MetricsHistory, Rollup
from .http import gateway_routes
from .inference_table import TroubleListener, latest_inference_rows, read_inference_table
from .replies import GatewayError, GatewayReply
from .routes import Group, Replica, RouteTable, Version
from .transport import ReplicaConnectionError, ReplicaLost, ReplicaTransport, UnixHttpTransport

__all__ = [
    "Gateway",
    "GatewayError",
    "GatewayReply",
    "MetricsHistory",
    "Group",
    "Replica",
    "ReplicaConnectionError",
    "ReplicaLost",
    "ReplicaTransport",
    "Rollup",
    "RouteTable",
    "TroubleListener",
    "UnixHttpTransport",
    "Version",
    "gateway_routes",
    "latest_inference_rows",
    "read_inference_table",
]
