"""`GetBillingSpecs`: the instance types a service may use, as wedata's billing specs (`MLSpec`)."""

from __future__ import annotations

from typing import Any

import psutil

from tcdeploy.protocol.errors import InvalidParameterValue

from ..backend import INSTANCE_TYPES
from .context import Context

# Inference is all this server bills (for nothing): other charge types have no specs here.
CHARGE_TYPES = ("INFERENCE", "POSTPAID_BY_HOUR")


async def billing_specs(ctx: Context, req: Any) -> dict:
    # The schema's examples swap ChargeType and TaskType (INFERENCE / POSTPAID_BY_HOUR): take either.
    if req.ChargeType not in CHARGE_TYPES:
        raise InvalidParameterValue("ChargeType", f"must be one of {', '.join(CHARGE_TYPES)}")
    machine_mb = psutil.virtual_memory().total // 2**20
    specs = [
        {
            "SpecId": spec.name,
            "SpecName": spec.name,
            "SpecAlias": spec.alias,
            # "Available": whether this machine has the memory the type promises each replica.
            "Available": spec.memory_mb <= machine_mb,
            "AvailableRegion": [ctx.region or "local"],
            "SpecFeatures": [],
            "SpecType": "CPU",
            "GpuType": "",
            "CategoryId": "CPU",
        }
        for spec in INSTANCE_TYPES
        if req.ResourceType in (None, "", "CALC", "CPU")
    ]
    return {"Data": {"SpecInfos": specs}}
