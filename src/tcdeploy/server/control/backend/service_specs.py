"""What a service's settings may be, whatever API asked: the one check before anything is written."""

from __future__ import annotations

from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue

from .environment import service_env
from .instance_types import instance_type
from .probes import check_health_probe

MAX_REPLICAS = 16


def check_spec(spec: dict[str, Any], field: str = "") -> dict[str, Any]:
    """Whatever API asked: a service's settings the replicas can run with, else refused naming
    the member (under `field` when the request nests them). The instance type is kept as the
    server spells it."""
    spec = {**spec, "InstanceType": instance_type(spec["InstanceType"], member(field, "InstanceType")).name}
    replicas = spec.get("Replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 0 <= replicas <= MAX_REPLICAS:
        raise InvalidParameterValue(member(field, "Replicas"), f"must be an integer from 0 to {MAX_REPLICAS}")
    service_env(spec, member(field, "Env"))
    check_health_probe(spec.get("HealthProbe"), member(field, "HealthProbe"))
    for name in ("Resources", "TioneResourceInfo"):
        check_resources(spec.get(name) or {}, member(field, name))
    return spec


# A replica's size when a service sets its own: CPU in millicores, memory in MB.
CPU_RANGE, MEMORY_RANGE = (100, 64_000), (128, 262_144)


def check_resources(resources: dict[str, Any], field: str) -> None:
    for member, (low, high) in (("Cpu", CPU_RANGE), ("Memory", MEMORY_RANGE)):
        value = resources.get(member)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidParameterValue(f"{field}.{member}", f"must be an integer from {low} to {high}")


def member(path: str, name: str) -> str:
    """A member's name in a refusal: under `path` (`Services.0`) when the request nests it."""
    return f"{path}.{name}" if path else name
