"""One prediction through ``ModelServiceInterfaceCallTest``: auth token, call, reply parsing.

``Data.CurlResponseRaw`` is a JSON text: the upstream reply's headers plus ``status`` (as the
published example shows), and ``body``, the model's reply, which a ``tcdeploy server`` adds.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
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
_WARNING_TEXT = re.compile(r'^\d{3} \S+ "(.*)"')  # RFC 7234: code, agent, "text"
_logger = logging.getLogger(__name__)
# MLflow's scoring-server request forms (`mlflow models serve`), and what may sit beside them.
REQUEST_FORMS = frozenset({"dataframe_split", "dataframe_records", "instances", "inputs"})
_BESIDE_A_FORM = frozenset({"params"})

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


def request_from_cli_frame(inputs: Any) -> Any:
    """The request a frame that ``mlflow deployments predict`` read stands for, else ``inputs``.

    That CLI reads ``--input-path`` with ``pandas.read_json``: a file in a scoring-server form,
    ``{"dataframe_split": {...}}``, becomes a frame with a ``dataframe_split`` column (index
    ``columns``, ``data``). A frame whose columns are one such form (and ``params``) is turned
    back into the document the file held; any other frame is a frame of rows.
    """
    pandas = sys.modules.get("pandas")
    if pandas is None or not isinstance(inputs, pandas.DataFrame):
        return inputs
    columns = set(map(str, inputs.columns))
    if len(columns & REQUEST_FORMS) != 1 or not columns <= REQUEST_FORMS | _BESIDE_A_FORM:
        return inputs
    return {name: _as_read(inputs[name], pandas) for name in inputs.columns}


def _as_read(column: Any, pandas: Any) -> Any:
    """A column of a frame read from a JSON object, as the value the object held: a list when the
    index counts rows, else an object (NaN fills where another column had a key this lacks)."""
    present = [(k, _plain(v)) for k, v in column.items()]
    present = [(k, v) for k, v in present if not (isinstance(v, float) and math.isnan(v))]
    if len(present) < len(column):  # the fill made the column float: 3 was read as 3.0
        present = [(k, int(v) if isinstance(v, float) and v.is_integer() else v) for k, v in present]
    if isinstance(column.index, pandas.RangeIndex):
        return [v for _, v in present]
    return {str(k): v for k, v in present}


def _plain(value: Any) -> Any:
    """numpy scalars as Python values; lists and dicts as they are."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (list, dict)) else value


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
        status, text = int(reply["status"]), _as_text(reply.get("body", ""))
    except (TypeError, ValueError, KeyError) as exc:
        raise MlflowException(
            f"ModelServiceInterfaceCallTest: unreadable CurlResponseRaw ({exc}): {str(raw)[:200]!r}"
        ) from None
    _tell(reply.get("Warning"))
    return status, text


def _tell(warning: Any) -> None:
    """A reply's ``Warning`` header (columns the model left out) goes to the person: MLflow's
    serving only logs it on the server."""
    if isinstance(warning, str) and warning:
        match = _WARNING_TEXT.match(warning)
        _logger.warning("%s", match.group(1) if match else warning)


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
