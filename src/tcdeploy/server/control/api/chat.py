"""TI-ONE `ChatCompletion`: a chat with an LLM service group through the signed API, as the SDK
models it (`Model` = the group, `Messages`, `Temperature`, `TopP`, `MaxTokens` → `Choices`,
`Usage`, `Id`). It goes through the group's data plane like any chat request (weights, limits,
the inference table); the signed call is its authentication, so the group's token is added here."""

from __future__ import annotations

import json
from typing import Any

from tcdeploy.protocol.chat import CHAT_PATH
from tcdeploy.protocol.errors import ApiError, FailedOperation, InvalidParameterValue, LimitExceeded, ResourceNotFound

from .context import Context, required

# The OpenAI member a data-plane refusal names → the TI-ONE member the request had.
_MEMBERS = {"messages": "Messages", "role": "Role", "content": "Content", "temperature": "Temperature",
            "top_p": "TopP", "max_tokens": "MaxTokens"}  # fmt: skip


async def chat_completion(ctx: Context, req: Any) -> dict:
    group = ctx.backend.group(ctx.workspace, required(req.Model, "Model"))
    messages = required(req.Messages, "Messages")
    for i, message in enumerate(messages):
        if message.MultiModalContents:
            raise InvalidParameterValue(
                f"Messages.{i}.MultiModalContents", "only text chat is served here: use Content"
            )
    body: dict[str, Any] = {"messages": [{"role": m.Role, "content": m.Content} for m in messages]}
    for name, value in (("temperature", req.Temperature), ("top_p", req.TopP), ("max_tokens", req.MaxTokens)):
        if value is not None:
            body[name] = value
    tokens = ctx.backend.tokens(group.id) if group.auth_enabled else []
    reply = await ctx.backend.call(
        ctx.workspace, group.id, None, body=json.dumps(body).encode(), token=tokens[0].value if tokens else None,
        path=CHAT_PATH,
    )  # fmt: skip
    document = _json(reply.body)
    if reply.status != 200:
        raise _refusal(reply.status, str(document.get("message") or reply.body[:300]), group.id)
    return {
        "Model": group.id,
        "Id": document.get("id"),
        "Choices": [_choice(c) for c in document.get("choices") or ()],
        "Usage": _usage(document.get("usage") or {}),
    }


def _choice(choice: dict) -> dict:
    message = choice.get("message") or {}
    return {
        "Message": {"Role": message.get("role"), "Content": message.get("content")},
        "FinishReason": choice.get("finish_reason"),
        "Index": choice.get("index"),
    }


def _usage(usage: dict) -> dict:
    return {
        "CompletionTokens": usage.get("completion_tokens"),
        "PromptTokens": usage.get("prompt_tokens"),
        "TotalTokens": usage.get("total_tokens"),
    }


def _refusal(status: int, message: str, group_id: str) -> ApiError:
    if status == 400:
        field, _, problem = message.partition(": ")
        return InvalidParameterValue(".".join(_MEMBERS.get(p, p) for p in field.split(".")), problem or message)
    if status == 404:
        return ResourceNotFound("LLM service group", group_id)
    if status == 429:
        return LimitExceeded(message)
    return FailedOperation(f"the chat failed ({status}): {message}")


def _json(body: bytes) -> dict:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    return document if isinstance(document, dict) else {}
