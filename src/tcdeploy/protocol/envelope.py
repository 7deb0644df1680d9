"""The reply envelope: `{"Response": {..., "RequestId"}}`, errors under `Response.Error`."""

from __future__ import annotations

from typing import Any


def success(payload: dict[str, Any], request_id: str) -> dict[str, Any]:
    return {"Response": {**payload, "RequestId": request_id}}


def failure(code: str, message: str, request_id: str) -> dict[str, Any]:
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id}}
