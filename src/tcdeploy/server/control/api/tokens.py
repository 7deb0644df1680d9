"""Group auth tokens, as TI-ONE names them: create, delete, change, switch auth on and off, and
the call info (where to call a group and with which tokens)."""

from __future__ import annotations

from typing import Any

from . import auth
from .context import Context, required
from .tione_views import tione_token


async def create_auth_token(ctx: Context, req: Any) -> dict:
    group = required(req.ServiceGroupId, "ServiceGroupId")
    ctx.backend.create_token(ctx.workspace, group, req.Name or "default", req.Description or "")
    return {}


async def delete_auth_token(ctx: Context, req: Any) -> dict:
    group = required(req.ServiceGroupId, "ServiceGroupId")
    ctx.backend.delete_token(ctx.workspace, group, required(req.AuthTokenValue, "AuthTokenValue"))
    return {}


async def modify_auth_token(ctx: Context, req: Any) -> dict:
    # The same request as wedata's UpdateModelServiceAuthToken, and the same rules.
    required(req.ServiceGroupId, "ServiceGroupId")
    await auth.update_token(ctx, req)
    return {}


async def modify_authorization(ctx: Context, req: Any) -> dict:
    group = required(req.ServiceGroupId, "ServiceGroupId")
    ctx.backend.set_auth(ctx.workspace, group, bool(required(req.AuthorizationEnable, "AuthorizationEnable")))
    return {}


async def describe_call_info(ctx: Context, req: Any) -> dict:
    backend = ctx.backend
    group = backend.group(ctx.workspace, required(req.ServiceGroupId, "ServiceGroupId"))
    tokens = [tione_token(t) for t in backend.tokens(group.id)]
    url = ctx.group_url(group.id)
    limited = any((s.spec.get("ServiceLimit") or {}).get("EnableInstanceRpsLimit") for s in backend.services(group.id))
    return {
        "ServiceCallInfoV2": {
            "ServiceGroupId": group.id,
            "InternetEndpoint": url,
            "AuthorizationEnable": group.auth_enabled,
            "AuthToken": tokens[0]["Base"]["Value"] if group.auth_enabled and tokens else "",
            "AuthTokens": tokens,
            "EnableLimit": limited,
        },
        "ServiceCallInfo": {
            "ServiceGroupId": group.id,
            "InnerHttpAddr": url,
            "OuterHttpAddr": url,
            "AuthorizationEnable": group.auth_enabled,
        },
    }
