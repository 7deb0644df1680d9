"""Group auth tokens, as TI-ONE names them: create, delete, switch auth on and off, show call info."""

from __future__ import annotations

from tcdeploy.protocol.tione import (
    CreateModelServiceAuthToken,
    DeleteModelServiceAuthToken,
    DescribeModelServiceCallInfo,
    ModifyModelServiceAuthorization,
)

from .context import Context
from .times import iso


async def create_auth_token(ctx: Context, req: CreateModelServiceAuthToken) -> dict:
    ctx.backend.create_token(ctx.workspace, req.ServiceGroupId, req.Name, req.Description or "")
    return {}


async def delete_auth_token(ctx: Context, req: DeleteModelServiceAuthToken) -> dict:
    ctx.backend.delete_token(ctx.workspace, req.ServiceGroupId, req.AuthTokenValue)
    return {}


async def modify_authorization(ctx: Context, req: ModifyModelServiceAuthorization) -> dict:
    ctx.backend.set_auth(ctx.workspace, req.ServiceGroupId, bool(req.AuthorizationEnable))
    return {}


async def describe_call_info(ctx: Context, req: DescribeModelServiceCallInfo) -> dict:
    backend = ctx.backend
    group = backend.group(ctx.workspace, req.ServiceGroupId)
    tokens = [
        {
            "Base": {
                "Id": t.record.id,
                "Value": t.value,
                "Name": t.record.name,
                "Description": t.record.description,
                "CreateTime": iso(t.record.created),
                "Status": "Normal",
            },
            "Limits": [],
        }
        for t in backend.tokens(group.id)
    ]
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
