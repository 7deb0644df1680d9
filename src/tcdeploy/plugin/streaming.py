"""``predict_stream``: a chat reply streamed from an LLM service's OpenAI route, chunk by chunk.

The signed API answers whole replies only, so the stream goes to the group's (or the version's)
URL itself, with the group's token, and yields each server-sent event's chunk as it arrives —
MLflow's contract for ``predict_stream``: an iterator of the model's chunks (dicts).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from mlflow.exceptions import MlflowException

from tcdeploy.plugin.predict import error_message

CHAT_PATH = "/v1/chat/completions"
READ_TIMEOUT = 300.0


def chat_url(predict_url: str, group_id: str, service_id: str | None) -> str:
    """The chat route beside a group's predict URL; a version's is under /services/<id>."""
    base = predict_url.removesuffix("/predict")
    if service_id:
        base = base.replace(f"/groups/{group_id}", f"/services/{service_id}")
    return base + CHAT_PATH


def check_chat_inputs(inputs: Any) -> None:
    if not isinstance(inputs, dict) or "messages" not in inputs:
        raise MlflowException.invalid_parameter_value(
            "predict_stream takes a chat request: a dict with `messages` (and optional temperature, max_tokens, ...)"
        )


def stream_chat(url: str, token: str | None, inputs: Any) -> Iterator[dict]:
    """POST ``inputs`` (``{"messages": [...], ...}``) with ``stream: true``; yield each chunk."""
    import requests  # mlflow-skinny's own dependency

    headers = {"Authorization": token} if token else {}
    with requests.post(
        url, json={**inputs, "stream": True}, headers=headers, stream=True, timeout=(10, READ_TIMEOUT)
    ) as reply:
        if reply.status_code != 200:
            raise MlflowException(f"predict_stream failed with HTTP {reply.status_code}: {error_message(reply.text)}")
        for line in reply.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            if isinstance(chunk, dict) and "error" in chunk:
                raise MlflowException(f"the stream broke off: {(chunk['error'] or {}).get('message')}")
            yield chunk
