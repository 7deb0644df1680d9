"""`GetBillingSpecs`: the instance types a service may use, as wedata's billing specs (`MLSpec`)."""

from __future__ import annotations

from typing import Any

from tcdeploy.protocol.errors import InvalidParameterValue

from ..backend import INSTANCE_TYPES
from .context import Context

# Inference is all this server bills (for nothing): other charge types have no specs here.
CHARGE_TYPES = ("INFERENCE", "POSTPAID_BY_HOUR")


async def billing_specs(ctx: Context, req: Any) -> dict:
    # The schema's examples swap ChargeType and TaskType (INFERENCE / POSTPAID_BY_HOUR): take either.
    if req.ChargeType not in CHARGE_TYPES:
        raise InvalidParameterValue("ChargeType", f"must be one of {', '.join(CHARGE_TYPES)}")
    specs = [
        {
            "SpecId": spec.name,
            "SpecName": spec.name,
            "SpecAlias": spec.alias,
            # "Available": whether the runtime can place the type (this machine's memory, or a
            # node of the Ray cluster that can hold it).
            "Available": ctx.backend.placement_problem(spec) is None,
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
