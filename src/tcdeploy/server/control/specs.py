"""Instance types of the local service (`DescribeInferenceSpecs`): CPU and memory per replica."""
from __future__ import annotations

from dataclasses import dataclass

import psutil

from ...protocol.actions import DescribeInferenceSpecs
from ...protocol.errors import invalid_value
from .actions import Context, action


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    alias: str
    cpu_millicores: int
    memory_mb: int  # enforced on the replica: over it, the replica is killed as OOMKilled


SPECS = (
    InstanceSpec("TI.S.MICRO.POST", "1C1G", 1000, 1024),
    InstanceSpec("TI.S.SMALL.POST", "1C2G", 1000, 2048),
    InstanceSpec("TI.S.MEDIUM.POST", "2C4G", 2000, 4096),
    InstanceSpec("TI.S.LARGE.POST", "4C8G", 4000, 8192),
    InstanceSpec("TI.S.XLARGE.POST", "8C16G", 8000, 16384),
)
_BY_NAME = {spec.name: spec for spec in SPECS}


def instance_spec(name: str, field: str = "InstanceType") -> InstanceSpec:
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise invalid_value(field, f"unknown instance type {name!r}; known: {known}") from None


@action("tione", DescribeInferenceSpecs)
async def describe_inference_specs(ctx: Context, req: DescribeInferenceSpecs) -> dict:
    machine_mb = psutil.virtual_memory().total // 2**20
    infos = [
        {
            "SpecName": spec.name,
            "SpecAlias": spec.alias,
            "SpecType": "CPU",
            "Available": spec.memory_mb <= machine_mb,
            "AvailableRegion": [ctx.region or "local"],
            "GpuType": "",
            "Cpu": spec.cpu_millicores,
            "Memory": spec.memory_mb,
            "Gpu": 0,
        }
        for spec in SPECS
        if req.SpecType in (None, "CPU")
    ]
    return {"SpecInfos": infos}
