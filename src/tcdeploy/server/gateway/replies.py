"""What the gateway answers itself: JSON `{"error_code", "message"}` replies and request ids."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass

JSON = "application/json"
# A caller's X-Request-Id is passed on only if it is this plain; otherwise we make our own.
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@dataclass(slots=True)
class GatewayReply:
    status: int
    body: bytes
    headers: dict[str, str]  # lower-case names


class GatewayError(Exception):
    """A reply the gateway makes itself, with an HTTP status and an MLflow-style error code."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def reply(self, request_id: str) -> GatewayReply:
        body = json.dumps({"error_code": self.code, "message": self.message}).encode()
        headers = {"content-type": JSON, "x-request-id": request_id, **self.headers}
        return GatewayReply(self.status, body, headers)


def body_too_large(limit: int) -> GatewayError:
    return GatewayError(
        400, "BAD_REQUEST", f"request body is larger than the limit of {limit} bytes ({limit / 2**20:g} MiB)"
    )


def not_found(what: str) -> GatewayError:
    return GatewayError(404, "RESOURCE_DOES_NOT_EXIST", f"{what} does not exist")


def unauthenticated() -> GatewayError:
    return GatewayError(
        401,
        "UNAUTHENTICATED",
        "the group's token is required in the Authorization header "
        "(`tcdeploy token <group>` prints it; MLflow's get_endpoint shows it as auth_token)",
    )


def unavailable(reason: str) -> GatewayError:
    return GatewayError(503, "TEMPORARILY_UNAVAILABLE", reason)


def rate_limited(service_id: str, headers: dict[str, str] | None = None) -> GatewayError:
    message = f"service {service_id} is over its rate limit; retry later"
    return GatewayError(429, "REQUEST_LIMIT_EXCEEDED", message, {"retry-after": "1", **(headers or {})})


def over_concurrency(service_id: str, limit: int, headers: dict[str, str]) -> GatewayError:
    message = f"service {service_id} has {limit} requests in flight, its limit (InstanceReqLimit × ready replicas)"
    return GatewayError(429, "REQUEST_LIMIT_EXCEEDED", f"{message}; retry later", {"retry-after": "1", **headers})


def overloaded(service_id: str, bound: int) -> GatewayError:
    message = (
        f"service {service_id} has {bound} requests in flight, as many as its replicas queue; "
        "retry later (or add replicas)"
    )
    return GatewayError(503, "OVERLOADED", message, {"retry-after": "1"})


def held_too_many(count: int) -> GatewayError:
    message = f"{count} requests are already waiting for a replica to wake from zero; retry later"
    return GatewayError(429, "REQUEST_LIMIT_EXCEEDED", message, {"retry-after": "2"})


def new_request_id(given: str | None) -> str:
    """The caller's X-Request-Id when it is plain enough to pass on, else a fresh uuid4 hex."""
    if given is not None and _SAFE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex
