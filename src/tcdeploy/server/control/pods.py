"""Pods (replicas): restart one, and a short-lived link to a page about one."""
from __future__ import annotations

import hashlib
import hmac
import html
import time

from ...protocol.actions import CreateModelServicePodUrl, RebuildModelServicePod
from ...protocol.errors import not_found
from ..runtime import ReplicaState, tail_logs
from .actions import Context, action
from .core import Core, new_id
from .views import iso

POD_URL_TTL = 300  # seconds


def _pod_of(ctx: Context, service_id: str, pod_name: str) -> tuple[str, ReplicaState]:
    service = ctx.core.service_in(ctx.workspace, service_id)
    state = ctx.core.runtime.state(pod_name)
    if state is None or state.service_id != service.id:
        raise not_found("pod", pod_name)
    return service.id, state


@action("wedata", RebuildModelServicePod)
async def rebuild_pod(ctx: Context, req: RebuildModelServicePod) -> dict:
    service_id, state = _pod_of(ctx, req.ServiceId, req.PodName)
    ctx.core.lifecycle.record(service_id, "Normal", "Rebuild", f"{state.pod_name} restart requested")
    await ctx.core.runtime.rebuild(state.pod_name)
    return {"Data": {"TiOneRebuildServiceRequestId": new_id("rebuild")}}


@action("wedata", CreateModelServicePodUrl)
async def create_pod_url(ctx: Context, req: CreateModelServicePodUrl) -> dict:
    _, state = _pod_of(ctx, req.ServiceId, req.PodName)
    expires = int(time.time()) + POD_URL_TTL
    token = pod_token(ctx.core, state.pod_name, expires)
    url = f"{ctx.core.settings.public_url}/pods/{state.pod_name}?token={token}"
    return {"Data": {"Url": url, "ExpireTime": iso(expires), "PodName": state.pod_name}}


def pod_token(core: Core, pod_name: str, expires: int) -> str:
    mac = hmac.new(core.secret, f"pod:{pod_name}:{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def pod_token_valid(core: Core, pod_name: str, token: str, now: float) -> bool:
    # A minted token is ASCII; anything else would make int() read other scripts' digits and
    # compare_digest raise. Epoch seconds fit in 12 digits; int() refuses very long ones loudly.
    if not token.isascii():
        return False
    expires, _, _mac = token.partition(".")
    if not expires.isdigit() or len(expires) > 12 or int(expires) < now:
        return False
    return hmac.compare_digest(pod_token(core, pod_name, int(expires)), token)


def pod_page(core: Core, state: ReplicaState) -> str:
    """A small self-contained HTML page: the replica's state and its last log lines."""
    tail = tail_logs(core.settings.data_dir, state.pod_name, 100)
    rows = "\n".join(
        f"<tr><td>{iso(line.ts)}</td><td>{html.escape(line.stream)}</td><td>{html.escape(line.msg)}</td></tr>"
        for line in tail
    )
    facts = {
        "Service": state.service_id, "Phase": state.phase, "Ready": state.ready,
        "Restarts": state.restart_count, "Started": iso(state.start_time),
        "Reason": state.reason or "-", "PID": state.pid or "-",
    }
    dl = "".join(f"<dt>{k}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts.items())
    name = html.escape(state.pod_name)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{name}</title></head><body>"
        f"<h1>Replica {name}</h1><dl>{dl}</dl><h2>Last log lines</h2>"
        f"<table><tr><th>time</th><th>stream</th><th>line</th></tr>{rows}</table></body></html>"
    )
