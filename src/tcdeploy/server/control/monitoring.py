"""`DescribeModelServiceMonitoring`: a group's request figures over a time window."""
from __future__ import annotations

import time

from ...protocol.actions import DescribeModelServiceMonitoring
from ...protocol.errors import invalid_value
from .actions import Context, action
from .logs import parse_time


@action("tione", DescribeModelServiceMonitoring)
async def describe_monitoring(ctx: Context, req: DescribeModelServiceMonitoring) -> dict:
    group = ctx.core.group_in(ctx.workspace, req.ServiceGroupId)
    end = parse_time(req.EndTime, "EndTime") or time.time()
    start = parse_time(req.StartTime, "StartTime") or end - 3600
    if end <= start:
        raise invalid_value("EndTime", "must be after StartTime")
    try:
        points = ctx.core.gateway.monitor(group.id, start, end, float(req.Step))
    except ValueError as exc:
        raise invalid_value("Step", str(exc)) from None
    return {"ServiceGroupId": group.id, "Step": req.Step, "Points": points}
