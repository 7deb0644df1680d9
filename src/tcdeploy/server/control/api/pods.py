"""Pods (replicas): restart one, and a short-lived link to a small page about one."""

from __future__ import annotations

import html
import time
from typing import Any

from ..backend import LogLine, ReplicaState, new_id
from .context import Context
from .times import iso
from .views import pod_ip

POD_URL_TTL = 300  # seconds


async def rebuild_pod(ctx: Context, req: Any) -> dict:
    await ctx.backend.rebuild_pod(ctx.workspace, req.ServiceId, req.PodName)
    return {"Data": {"TiOneRebuildServiceRequestId": new_id("rebuild")}}


async def create_pod_url(ctx: Context, req: Any) -> dict:
    state = ctx.backend.pod(ctx.workspace, req.ServiceId, req.PodName)
    expires = int(time.time()) + POD_URL_TTL
    token = ctx.backend.secret.pod_token(state.pod_name, expires)
    url = f"{ctx.public_url}/pods/{state.pod_name}?token={token}"
    return {"Data": {"Url": url}}  # the schema's one member; the link's token says when it expires


def pod_page(state: ReplicaState, tail: list[LogLine]) -> str:
    """A small self-contained HTML page: the replica's state and its last log lines."""
    rows = "\n".join(
        f"<tr><td>{iso(line.ts)}</td><td>{html.escape(line.stream)}</td><td>{html.escape(line.msg)}</td></tr>"
        for line in tail
    )
    facts = {
        "Service": state.service_id,
        "Phase": state.phase,
        "Ready": state.ready,
        "Restarts": state.restart_count,
        "Started": iso(state.start_time),
        "Reason": state.reason or "-",
        "PID": state.pid or "-",
        "Node": f"{state.node} ({pod_ip(state)})" if state.node else "this machine",
    }
    dl = "".join(f"<dt>{k}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts.items())
    name = html.escape(state.pod_name)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{name}</title></head><body>"
        f"<h1>Replica {name}</h1><dl>{dl}</dl><h2>Last log lines</h2>"
        f"<table><tr><th>time</th><th>stream</th><th>line</th></tr>{rows}</table></body></html>"
    )
