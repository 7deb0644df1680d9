"""`DescribeModelServiceMonitoring`: a group's request figures over a time window."""

from __future__ import annotations

import time

from tcdeploy.protocol.errors import InvalidParameterValue
from tcdeploy.protocol.tione import DescribeModelServiceMonitoring

from .context import Context
from .times import parse_time


async def describe_monitoring(ctx: Context, req: DescribeModelServiceMonitoring) -> dict:
    group = ctx.backend.group(ctx.workspace, req.ServiceGroupId)
    end = parse_time(req.EndTime, "EndTime") or time.time()
    start = parse_time(req.StartTime, "StartTime") or end - 3600
    if end <= start:
        raise InvalidParameterValue("EndTime", "must be after StartTime")
    points = ctx.backend.monitor(ctx.workspace, group.id, start, end, float(req.Step))
    return {"ServiceGroupId": group.id, "Step": req.Step, "Points": points}
