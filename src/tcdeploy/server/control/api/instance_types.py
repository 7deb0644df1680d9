"""Instance types of the local service on the wire (`DescribeInferenceSpecs`, `DescribeBillingSpecs`)."""

from __future__ import annotations

from typing import Any

from tcdeploy.protocol.tione import DescribeInferenceSpecs

from ..backend import INSTANCE_TYPES
from . import billing
from .context import Context


async def describe_inference_specs(ctx: Context, req: DescribeInferenceSpecs) -> dict:
    infos = [
        {
            "SpecName": spec.name,
            "SpecAlias": spec.alias,
            "SpecType": "CPU",
            "Available": ctx.backend.placement_problem(spec) is None,
            "AvailableRegion": [ctx.region or "local"],
            "GpuType": "",
            "Cpu": spec.cpu_millicores,
            "Memory": spec.memory_mb,
            "Gpu": 0,
        }
        for spec in INSTANCE_TYPES
        if req.SpecType in (None, "CPU")
    ]
    return {"SpecInfos": infos}


async def describe_billing_specs(ctx: Context, req: Any) -> dict:
    """TI-ONE's `DescribeBillingSpecs`: the specs wedata's `GetBillingSpecs` lists (TI-ONE's
    `Spec` and wedata's `MLSpec` have the same members), on the same rules."""
    reply = await billing.billing_specs(ctx, req)
    return {"Specs": reply["Data"]["SpecInfos"]}
