"""Group auth tokens, as TI-ONE names them: create, delete, switch auth on and off, show call info."""
from __future__ import annotations

import hmac
import time

from ...protocol.actions import (
    CreateModelServiceAuthToken,
    DeleteModelServiceAuthToken,
    DescribeModelServiceCallInfo,
    ModifyModelServiceAuthorization,
)
from ...protocol.errors import not_found
from ..store import TokenRecord
from .actions import Context, action
from .core import Core, digest, new_id
from .views import group_url, iso


def create_token(core: Core, group_id: str, name: str = "default", description: str = "") -> TokenRecord:
    token_id = new_id("tok")
    token = TokenRecord(token_id, group_id, name, description, digest(core.token_value(token_id)), time.time())
    core.store.insert_token(token)
    return token


def enable_auth(core: Core, group_id: str) -> None:
    """Switch auth on; a group with auth on and no token would lock everyone out, so make one."""
    with core.store.transaction():
        core.store.set_group_auth(group_id, True)
        if not core.store.tokens(group_id):
            create_token(core, group_id)
    core.lifecycle.publish_group(group_id)


@action("tione", CreateModelServiceAuthToken)
async def create_auth_token(ctx: Context, req: CreateModelServiceAuthToken) -> dict:
    group = ctx.core.group_in(ctx.workspace, req.ServiceGroupId)
    create_token(ctx.core, group.id, req.Name, req.Description or "")
    ctx.core.lifecycle.publish_group(group.id)
    return {}


@action("tione", DeleteModelServiceAuthToken)
async def delete_auth_token(ctx: Context, req: DeleteModelServiceAuthToken) -> dict:
    core = ctx.core
    group = core.group_in(ctx.workspace, req.ServiceGroupId)
    wanted = digest(req.AuthTokenValue)
    match = next(
        (t for t in core.store.tokens(group.id) if hmac.compare_digest(t.digest, wanted)), None
    )
    if match is None:
        raise not_found("auth token", "(the given value)")
    core.store.delete_token(match.id)
    core.lifecycle.publish_group(group.id)
    return {}


@action("tione", ModifyModelServiceAuthorization)
async def modify_authorization(ctx: Context, req: ModifyModelServiceAuthorization) -> dict:
    core = ctx.core
    group = core.group_in(ctx.workspace, req.ServiceGroupId)
    if req.AuthorizationEnable:
        enable_auth(core, group.id)
    else:
        core.store.set_group_auth(group.id, False)
        core.lifecycle.publish_group(group.id)
    return {}


@action("tione", DescribeModelServiceCallInfo)
async def describe_call_info(ctx: Context, req: DescribeModelServiceCallInfo) -> dict:
    core = ctx.core
    group = core.group_in(ctx.workspace, req.ServiceGroupId)
    tokens = [
        {"Base": {
            "Id": t.id, "Value": core.token_value(t.id), "Name": t.name,
            "Description": t.description, "CreateTime": iso(t.created), "Status": "Normal",
        }, "Limits": []}
        for t in core.store.tokens(group.id)
    ]
    url = group_url(core, group.id)
    limited = any((s.spec.get("ServiceLimit") or {}).get("EnableInstanceRpsLimit")
                  for s in core.store.services(group.id))
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
