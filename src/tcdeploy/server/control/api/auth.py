"""Group auth through wedata's actions: tokens (create, delete, rename or reset), auth on and off,
and the call info a client needs (the endpoint and, when auth is on, a token).

The token actions reply `ModelServiceAuthTokenResp` (a TI-ONE request id only): a new token's value
is read back from `GetModelServiceCallInfo` or the group's `AuthTokens`.
"""

from __future__ import annotations

from typing import Any

from tcdeploy.protocol.errors import MissingParameter, ResourceNotFound

from ..backend import GroupRecord
from .context import Context, required
from .times import wedata_time


def ml_auth_tokens(ctx: Context, group: GroupRecord) -> list[dict]:
    """A group's tokens as the schema's `MLAuthToken`s (`MLModelServiceGroup.AuthTokens`): where a
    client reads the value of a token it created, and the `Limits` it set."""
    limits = group.spec.get("AuthTokenLimits", {})
    return [
        {
            "Base": {
                "Name": token.record.name,
                "Value": token.value,
                "Description": token.record.description,
                "Status": "Normal",  # TI-ONE's word for a token in force; a deleted one is gone
                "CreateTime": wedata_time(token.record.created),
            },
            "Limits": limits.get(token.record.id, []),
        }
        for token in ctx.backend.tokens(group.id)
    ]


def _accepted(ctx: Context) -> dict:
    # The real service answers with the request id of the TI-ONE call it makes; this one is ours.
    return {"Data": {"TiOneRequestId": ctx.request_id}}


async def create_token(ctx: Context, req: Any) -> dict:
    ctx.backend.create_token(ctx.workspace, req.ServiceGroupId, req.Name or "default", req.Description or "")
    return _accepted(ctx)


async def delete_token(ctx: Context, req: Any) -> dict:
    ctx.backend.delete_token(ctx.workspace, req.ServiceGroupId, required(req.AuthTokenValue, "AuthTokenValue"))
    return _accepted(ctx)


async def update_token(ctx: Context, req: Any) -> dict:
    """The token is named by `AuthToken.Base.Value` (or, failing that, its `Name`); without
    `AuthToken`, it is the one `GetModelServiceCallInfo` hands out. `Name` and `Description`
    change it, `NeedReset` gives it a new value; `Limits` are kept, with no effect here."""
    backend = ctx.backend
    group = backend.group(ctx.workspace, req.ServiceGroupId)
    token = req.AuthToken
    base = token.Base if token is not None else None
    limits = token.Limits if token is not None else None
    backend.update_token(
        ctx.workspace,
        group.id,
        _named_token(ctx, group, base),
        name=(base.Name or None) if base else None,
        description=base.Description if base else None,
        reset=bool(req.NeedReset),
        limits=None if limits is None else [limit.model_dump() for limit in limits],
    )
    return _accepted(ctx)


def _named_token(ctx: Context, group: GroupRecord, base: Any) -> str:
    """The value of the token an update names."""
    tokens = ctx.backend.tokens(group.id)
    if base is None:
        if not tokens:
            raise ResourceNotFound("auth token", f"(any, of group {group.id})")
        return tokens[0].value
    if base.Value:
        return base.Value
    if not base.Name:
        raise MissingParameter("AuthToken.Base.Value", "names the token to update (or give its Name)")
    matches = [t.value for t in tokens if t.record.name == base.Name]
    if len(matches) != 1:
        raise ResourceNotFound("auth token", base.Name)
    return matches[0]


async def update_authorization(ctx: Context, req: Any) -> dict:
    ctx.backend.set_auth(ctx.workspace, req.ServiceGroupId, bool(req.AuthorizationEnable))
    return _accepted(ctx)


async def call_info(ctx: Context, req: Any) -> dict:
    """Where and how to call a group. The published example names the group by `ServiceId`, so
    either member may hold a group id (or name), and a service's id stands for its group."""
    group = _group_of(ctx, req.ServiceGroupId or required(req.ServiceId, "ServiceGroupId"))
    tokens = ctx.backend.tokens(group.id)
    url = ctx.group_url(group.id)
    return {
        "Data": {
            "IntranetCallInfo": {
                "IngressPrivateLinkInfo": None,
                "ServiceEIPInfo": None,
                "DefaultInnerCallInfos": [{"VpcIds": "", "InnerHttpAddr": url}],
                "PrivateLinkInfos": None,
                "PrivateLinkInfosV2": [],
            },
            "ServiceCallInfo": {
                "ServiceGroupId": group.id,
                "InternetEndpoint": url,
                "AuthorizationEnable": group.auth_enabled,
                "AuthToken": tokens[0].value if group.auth_enabled and tokens else "",
            },
        }
    }


def _group_of(ctx: Context, ref: str) -> GroupRecord:
    try:
        return ctx.backend.group(ctx.workspace, ref)
    except ResourceNotFound:
        service = ctx.backend.service(ctx.workspace, ref)
        return ctx.backend.group(ctx.workspace, service.group_id)
