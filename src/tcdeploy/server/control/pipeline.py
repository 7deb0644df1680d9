"""One pipeline for every action: read → verify the signature → find the action → validate →
check the workspace → call → wrap in the envelope. Errors become Tencent error replies here only."""
from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse

from ...protocol import errors
from ...protocol.actions import API_VERSIONS, parse_request
from ...protocol.envelope import failure, success
from ...protocol.errors import ApiError
from ...protocol.signature import verify
from .actions import Context, handler_for
from .core import Core

log = logging.getLogger("tcdeploy.server")


async def handle(request: Request, core: Core) -> JSONResponse:
    request_id = str(uuid.uuid4())
    try:
        payload = await _answer(request, core, request_id)
        return JSONResponse(success(payload, request_id))
    except ApiError as exc:
        return JSONResponse(failure(exc.code, exc.message, request_id))
    except sqlite3.IntegrityError:
        # Two concurrent requests raced for one name; the store's unique constraint kept it whole.
        return JSONResponse(failure(errors.RESOURCE_IN_USE, "that name was just taken by another request", request_id))
    except Exception:
        log.exception("action failed (RequestId %s)", request_id)
        return JSONResponse(failure(errors.INTERNAL_ERROR, f"internal error; RequestId {request_id}", request_id))


async def _answer(request: Request, core: Core, request_id: str) -> dict:
    body = await _read_body(request, core.settings.max_body_bytes)
    headers = {k.lower(): v for k, v in request.headers.items()}
    signed = verify(
        request.method, request.url.path, request.url.query, headers, body,
        _secret_key_lookup(core), time.time(),
    )
    expected_version = API_VERSIONS.get(signed.service)
    if expected_version is None:
        raise ApiError(errors.INVALID_ACTION, f"this server has no API service {signed.service!r}")
    if signed.version != expected_version:
        raise ApiError(
            errors.NO_SUCH_VERSION,
            f"{signed.service} answers version {expected_version}, not {signed.version!r}",
        )
    found = handler_for(signed.service, signed.action)
    if found is None:
        raise ApiError(errors.INVALID_ACTION, f"{signed.service} has no action {signed.action!r}")
    model, handler = found
    req = parse_request(model, _json_body(body))
    workspace = getattr(req, "WorkspaceId", None) or getattr(req, "TiProjectId", None) or "default"
    if not core.keys[signed.secret_id].allows(workspace):
        raise ApiError(
            errors.UNAUTHORIZED_OPERATION, f"this SecretId may not act in workspace {workspace!r}"
        )
    ctx = Context(core, workspace, signed.region, request_id, headers.get("host", ""))
    return await handler(ctx, req)


def _json_body(body: bytes) -> object:
    try:
        return json.loads(body or b"{}")
    except ValueError as exc:  # bad JSON, bad UTF-8, or a number of more digits than Python reads
        raise ApiError(errors.INVALID_PARAMETER, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(errors.INVALID_PARAMETER, "the body is not valid JSON: it is nested too deeply") from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(errors.REQUEST_SIZE_LIMIT_EXCEEDED, f"the body is over {limit // 2**20} MiB")


def _secret_key_lookup(core: Core):
    def lookup(secret_id: str) -> str | None:
        key = core.keys.get(secret_id)
        return key.secret_key if key else None

    return lookup
