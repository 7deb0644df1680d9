"""One prediction through ``ModelServiceInterfaceCallTest``: auth token, call, reply parsing.

``Data.CurlResponseRaw`` is a JSON text: the upstream reply's headers plus ``status`` (as the
published example shows), and ``body``, the model's reply, which a ``tcdeploy server`` adds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mlflow.exceptions import MlflowException

from tcdeploy.plugin.cloudapi import CloudApi, mlflow_code

_HTTP_ERROR_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "INVALID_PARAMETER_VALUE",
    422: "INVALID_PARAMETER_VALUE",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}
_MAX_MESSAGE = 2000

TokenSource = Callable[..., str]  # (group_id, refresh=False) -> token


def call_and_parse(api: CloudApi, body: dict[str, Any], auth: bool, token: TokenSource):
    """Send the call (with the group's token when ``auth``, the group's ``AuthorizationEnable``);
    a 401/403 is retried once with a fresh token (a cached one may have been rotated, or auth
    turned on since the group was read). Returns a ``PredictionsResponse``; an HTTP error from
    the model raises."""
    group_id = body["ServiceGroupId"]
    status, text = _send(api, {**body, **({"AuthTokenValue": token(group_id)} if auth else {})})
    if status in (401, 403):
        fresh = _fresh_token(token, group_id, required=auth)
        if fresh:
            status, text = _send(api, {**body, "AuthTokenValue": fresh})
    return _predictions(status, text, body["RelativeUrl"])


def _fresh_token(token: TokenSource, group_id: str, required: bool) -> str | None:
    """A token asked for anew; where auth was off as far as we knew, having none is no error of
    its own (the 401/403 is what gets reported)."""
    try:
        return token(group_id, refresh=True)
    except MlflowException:
        if required:
            raise
        return None


def _send(api: CloudApi, body: dict[str, Any]) -> tuple[int, str]:
    data = api.wedata("ModelServiceInterfaceCallTest", body)
    raw = data.get("CurlResponseRaw")
    try:
        reply = json.loads(raw) if isinstance(raw, str) else raw
        # The published reply is the upstream's headers plus `status`; the body, when the
        # server passes one on, is `body`.
        return int(reply["status"]), _as_text(reply.get("body", ""))
    except (TypeError, ValueError, KeyError) as exc:
        raise MlflowException(
            f"ModelServiceInterfaceCallTest: unreadable CurlResponseRaw ({exc}): {str(raw)[:200]!r}"
        ) from None


def _as_text(body: Any) -> str:
    return body if isinstance(body, str) else json.dumps(body)


def _predictions(status: int, text: str, relative_url: str):
    from mlflow.deployments import PredictionsResponse

    if status >= 400:
        raise MlflowException(
            f"prediction failed with HTTP {status} at {relative_url}: {error_message(text)}",
            error_code=mlflow_code(_HTTP_ERROR_CODES.get(status, "INTERNAL_ERROR")),
        )
    try:
        document = json.loads(text)
    except ValueError:
        raise MlflowException(f"the model replied HTTP {status} with a body that is not JSON: {text[:200]!r}") from None
    if not isinstance(document, dict):
        document = {"predictions": document}
    return PredictionsResponse(document)


def error_message(text: str) -> str:
    """The message of an error body: ``message``/``error``/``detail`` of JSON, else the text."""
    try:
        document = json.loads(text)
    except ValueError:
        return text.strip()[:_MAX_MESSAGE] or "(empty body)"
    if isinstance(document, dict):
        for key in ("message", "error", "detail", "Message"):
            value = document.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("Message") or json.dumps(value)
            if value:
                return str(value)[:_MAX_MESSAGE]
    return text[:_MAX_MESSAGE]
