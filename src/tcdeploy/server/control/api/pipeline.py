"""One pipeline for every action: read → verify the signature → find the action → validate →
check the workspace → call → wrap in the envelope. Errors become Tencent error replies here only."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import JSONResponse

from tcdeploy.protocol.actions import parse_request
from tcdeploy.protocol.apis import API_VERSIONS
from tcdeploy.protocol.envelope import failure, success
from tcdeploy.protocol.errors import (
    ApiError,
    InternalError,
    InvalidAction,
    InvalidParameter,
    NoSuchVersion,
    RequestSizeLimitExceeded,
    UnauthorizedOperation,
)
from tcdeploy.protocol.signature import verify

from ...settings import AccessKey
from ..backend import Backend
from .context import Context
from .table import ACTIONS

log = logging.getLogger("tcdeploy.server")


class ControlApi:
    """The control plane's one endpoint, `POST /`: `handle` is its Starlette request handler."""

    def __init__(
        self,
        backend: Backend,
        keys: Mapping[str, AccessKey],
        *,
        public_url: str,
        max_body_bytes: int,
    ) -> None:
        self._backend = backend
        self._keys = keys
        self._public_url = public_url
        self._max_body_bytes = max_body_bytes

    async def handle(self, request: Request) -> JSONResponse:
        request_id = str(uuid.uuid4())
        try:
            payload = await self._answer(request, request_id)
            return JSONResponse(success(payload, request_id))
        except ApiError as exc:
            if isinstance(exc, InternalError):
                log.error("action failed (RequestId %s): %s", request_id, exc.message)
            return JSONResponse(failure(exc.code, exc.message, request_id))
        except Exception:
            log.exception("action failed (RequestId %s)", request_id)
            return JSONResponse(failure(InternalError.code, f"internal error; RequestId {request_id}", request_id))

    async def _answer(self, request: Request, request_id: str) -> dict:
        body = await _read_body(request, self._max_body_bytes)
        headers = {k.lower(): v for k, v in request.headers.items()}
        signed = verify(
            request.method,
            request.url.path,
            request.url.query,
            headers,
            body,
            self._secret_key,
            time.time(),
        )
        expected_version = API_VERSIONS.get(signed.service)
        if expected_version is None:
            raise InvalidAction(f"this server has no API service {signed.service!r}")
        if signed.version != expected_version:
            raise NoSuchVersion(f"{signed.service} answers version {expected_version}, not {signed.version!r}")
        found = ACTIONS.get((signed.service, signed.action))
        if found is None:
            raise InvalidAction(f"{signed.service} has no action {signed.action!r}")
        model, handler = found
        req = parse_request(model, _json_body(body))
        workspace = getattr(req, "WorkspaceId", None) or getattr(req, "TiProjectId", None) or "default"
        if not self._keys[signed.secret_id].allows(workspace):
            raise UnauthorizedOperation(f"this SecretId may not act in workspace {workspace!r}")
        ctx = Context(self._backend, workspace, signed.region, request_id, self._public_url)
        return await handler(ctx, req)

    def _secret_key(self, secret_id: str) -> str | None:
        key = self._keys.get(secret_id)
        return key.secret_key if key else None


def _json_body(body: bytes) -> object:
    try:
        return json.loads(body or b"{}")
    except ValueError as exc:  # bad JSON, bad UTF-8, or a number of more digits than Python reads
        raise InvalidParameter(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidParameter("the body is not valid JSON: it is nested too deeply") from None


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


def _too_large(limit: int) -> RequestSizeLimitExceeded:
    return RequestSizeLimitExceeded(f"the body is over {limit // 2**20} MiB")
