"""Instance types of the local service: CPU and memory per replica, as data."""

from __future__ import annotations

from dataclasses import dataclass

from tcdeploy.protocol.errors import InvalidParameterValue


@dataclass(frozen=True)
class InstanceType:
    name: str
    alias: str
    cpu_millicores: int
    memory_mb: int  # enforced on the replica: over it, the replica is killed as OOMKilled


INSTANCE_TYPES = (
    InstanceType("TI.S.MICRO.POST", "1C1G", 1000, 1024),
    InstanceType("TI.S.SMALL.POST", "1C2G", 1000, 2048),
    InstanceType("TI.S.MEDIUM.POST", "2C4G", 2000, 4096),
    InstanceType("TI.S.LARGE.POST", "4C8G", 4000, 8192),
    InstanceType("TI.S.XLARGE.POST", "8C16G", 8000, 16384),
)
_BY_NAME = {spec.name: spec for spec in INSTANCE_TYPES}
_BY_UPPER_NAME = {spec.name.upper(): spec for spec in INSTANCE_TYPES}


def sized(spec: dict) -> InstanceType:
    """The size a service's replicas get: its instance type, with `Resources.Cpu` (millicores)
    and `Resources.Memory` (MB) in place of the type's when the service sets them."""
    size = instance_type(spec["InstanceType"])
    resources = spec.get("Resources") or spec.get("TioneResourceInfo") or {}
    return InstanceType(
        size.name,
        size.alias,
        int(resources.get("Cpu") or size.cpu_millicores),
        int(resources.get("Memory") or size.memory_mb),
    )


def instance_type(name: str, field: str = "InstanceType") -> InstanceType:
    """The instance type called `name`, in any case (`ti.s.small.post` is `TI.S.SMALL.POST`, as a
    person types it); refused naming `field` and the known types."""
    found = _BY_NAME.get(name) or (_BY_UPPER_NAME.get(name.upper()) if isinstance(name, str) else None)
    if found is None:
        known = ", ".join(_BY_NAME)
        raise InvalidParameterValue(field, f"unknown instance type {name!r}; known: {known}")
    return found
