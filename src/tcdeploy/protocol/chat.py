"""LLM services on the wire: the service types, which models can chat, and the OpenAI chat request
as the data plane accepts it.

Shared by the control plane (a service's `ServiceType`, inferred from its model), the gateway
(refusing a bad chat body before it reaches a replica) and the replica (turning the body into
the model's input). Token counts here are words (whitespace-separated): the models served know
no tokenizer the server could use, and a count that is the same everywhere beats none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MACHINE_LEARNING = "MACHINE_LEARNING"
LLM = "LLM"
# As the list request may name them (the published example filters with `ML`) → the reply's word.
SERVICE_TYPES = {"ML": MACHINE_LEARNING, MACHINE_LEARNING: MACHINE_LEARNING, LLM: LLM}

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
ROLES = ("system", "user", "assistant", "tool", "developer")
# Larger than any context the models served here have: a value above it is a mistake.
MAX_TOKENS_LIMIT = 32_768
MAX_STOP_SEQUENCES = 4
# The members passed to the model (MLflow's ChatParams); any other OpenAI member (`model`, `user`,
# `stream_options`, ...) is read by the server or not at all, never handed to the model.
MODEL_PARAMS = ("temperature", "top_p", "max_tokens", "stop", "n")

# MLflow's pyfunc chat interfaces: ChatModel, ChatAgent, ResponsesAgent (the `task` they log).
CHAT_TASKS = frozenset({"agent/v1/chat", "agent/v2/chat", "llm/v1/chat"})
CHAT_LOADERS = frozenset({"mlflow.pyfunc.loaders.chat_model", "mlflow.pyfunc.loaders.chat_agent"})


def is_llm(spec: Mapping[str, Any]) -> bool:
    """Whether a service (its stored spec) is an LLM service."""
    return spec.get("ServiceType") == LLM


class ChatBodyError(ValueError):
    """A chat body the server refuses (400); the message names the member at fault."""


def why_not_chat(mlmodel: Mapping[str, Any]) -> str | None:
    """None if a model (its MLmodel file as a dict) can serve the chat API, else why not.

    A model chats when it is one of MLflow's chat interfaces (its `task` metadata or loader says
    so) or its signature takes `messages`, and it streams (`predict_stream`)."""
    pyfunc = (mlmodel.get("flavors") or {}).get("python_function")
    if not isinstance(pyfunc, dict):
        return "it has no python_function flavor"
    task = (mlmodel.get("metadata") or {}).get("task")
    if task not in CHAT_TASKS and pyfunc.get("loader_module") not in CHAT_LOADERS and not _takes_messages(mlmodel):
        return "it is not a chat model (log an mlflow.pyfunc.ChatModel, or give it a signature with `messages`)"
    if not pyfunc.get("streamable"):
        return "it has no predict_stream (chat streams its reply)"
    return None


def _takes_messages(mlmodel: Mapping[str, Any]) -> bool:
    inputs = (mlmodel.get("signature") or {}).get("inputs")
    try:
        columns = json.loads(inputs) if isinstance(inputs, str) else inputs
    except ValueError:
        return False
    return isinstance(columns, list) and any(isinstance(c, dict) and c.get("name") == "messages" for c in columns)


def parse_chat(body: bytes) -> dict[str, Any]:
    """The chat request in `body` (OpenAI's `/v1/chat/completions` form), checked; raises
    ChatBodyError naming the member at fault."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ChatBodyError(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ChatBodyError("the body must be a JSON object with `messages`")
    check_chat(document)
    return document


def check_chat(request: Mapping[str, Any]) -> None:
    """Raise ChatBodyError unless `request` is a chat request the models here can answer."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatBodyError("messages: is required, a non-empty list of {role, content}")
    for i, message in enumerate(messages):
        _check_message(message, f"messages.{i}")
    _check_number(request, "temperature", 0.0, 2.0)
    _check_number(request, "top_p", 0.0, 1.0)
    max_tokens = request.get("max_tokens")
    if max_tokens is not None and (not _is_int(max_tokens) or not 1 <= max_tokens <= MAX_TOKENS_LIMIT):
        raise ChatBodyError(f"max_tokens: must be an integer from 1 to {MAX_TOKENS_LIMIT}, got {max_tokens!r:.40}")
    n = request.get("n")
    if n is not None and n != 1:
        raise ChatBodyError(f"n: only 1 choice is served, got {n!r:.40}")
    _check_stop(request.get("stop"))
    if not isinstance(request.get("stream", False), bool):
        raise ChatBodyError("stream: must be true or false")


def _check_message(message: Any, where: str) -> None:
    if not isinstance(message, dict):
        raise ChatBodyError(f"{where}: must be an object with role and content")
    role = message.get("role")
    if role not in ROLES:
        raise ChatBodyError(f"{where}.role: must be one of {', '.join(ROLES)}, got {role!r:.40}")
    content = message.get("content")
    if isinstance(content, list):
        if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            raise ChatBodyError(f"{where}.content: only text parts are served")
    elif not isinstance(content, str) and not (content is None and role == "assistant"):
        raise ChatBodyError(f"{where}.content: must be a string")


def _check_number(request: Mapping[str, Any], name: str, low: float, high: float) -> None:
    value = request.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ChatBodyError(f"{name}: must be a number from {low:g} to {high:g}, got {value!r:.40}")


def _check_stop(stop: Any) -> None:
    if stop is None or isinstance(stop, str):
        return
    if not isinstance(stop, list) or len(stop) > MAX_STOP_SEQUENCES or not all(isinstance(s, str) for s in stop):
        raise ChatBodyError(f"stop: must be a string or a list of at most {MAX_STOP_SEQUENCES} strings")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def text_of(content: Any) -> str:
    """A message's content as text (OpenAI allows a list of text parts)."""
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def count_tokens(text: str) -> int:
    """Tokens as this server counts them: words."""
    return len(text.split())


def prompt_tokens(messages: list[Mapping[str, Any]]) -> int:
    return sum(count_tokens(text_of(m.get("content"))) for m in messages)
