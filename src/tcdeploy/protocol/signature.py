"""TC3-HMAC-SHA256 verification: recompute the signature the Tencent Cloud SDK made, compare in constant time.

The signing key chain is the SDK's own (`Sign.sign_tc3`), so client and server cannot drift apart.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from tencentcloud.common.sign import Sign

from .errors import (
    INVALID_AUTHORIZATION,
    SECRET_ID_NOT_FOUND,
    SIGNATURE_EXPIRE,
    SIGNATURE_FAILURE,
    AuthFailure,
)

ALGORITHM = "TC3-HMAC-SHA256"
MAX_CLOCK_SKEW = 300  # seconds, as Tencent Cloud allows
REQUIRED_HEADERS = ("x-tc-action", "x-tc-version", "x-tc-timestamp")

_AUTHORIZATION = re.compile(
    r"^TC3-HMAC-SHA256 Credential=(?P<secret_id>[^/,\s]+)/(?P<date>\d{4}-\d{2}-\d{2})/"
    r"(?P<service>[a-z0-9-]+)/tc3_request,\s*SignedHeaders=(?P<signed>[a-z0-9;-]+),\s*"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class SignedRequest:
    """Who signed, and for which API service, once the signature holds."""

    secret_id: str
    service: str
    action: str
    version: str
    region: str
    timestamp: int


def verify(
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_key_for: Callable[[str], str | None],
    now: float,
) -> SignedRequest:
    """Check a request's TC3 signature; raise `ApiError` with Tencent's code when it does not hold.

    `headers` must be keyed in lower case. `secret_key_for(secret_id)` returns None for unknown keys.
    """
    auth = _parse_authorization(headers.get("authorization", ""))
    for name in REQUIRED_HEADERS:
        if not headers.get(name):
            raise AuthFailure(INVALID_AUTHORIZATION, f"header {name} is required")
    timestamp = _parse_timestamp(headers["x-tc-timestamp"])
    if abs(now - timestamp) > MAX_CLOCK_SKEW:
        raise AuthFailure(
            SIGNATURE_EXPIRE,
            f"X-TC-Timestamp is {int(now - timestamp)} s from the server's clock (at most {MAX_CLOCK_SKEW} s allowed)",
        )
    if datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d") != auth["date"]:
        raise AuthFailure(SIGNATURE_FAILURE, "the credential date does not match X-TC-Timestamp")
    if headers.get("x-tc-content-sha256") == "UNSIGNED-PAYLOAD":
        raise AuthFailure(INVALID_AUTHORIZATION, "unsigned payloads are not accepted")

    secret_key = secret_key_for(auth["secret_id"])
    if secret_key is None:
        raise AuthFailure(SECRET_ID_NOT_FOUND, "the SecretId is not known to this server")

    signed_names = auth["signed"].split(";")
    if "host" not in signed_names or "content-type" not in signed_names:
        raise AuthFailure(INVALID_AUTHORIZATION, "SignedHeaders must include content-type and host")
    canonical_headers = "".join(f"{n}:{headers.get(n, '').strip().lower()}\n" for n in signed_names)
    canonical_request = "\n".join(
        [method, path, query, canonical_headers, auth["signed"], hashlib.sha256(body).hexdigest()]
    )
    scope = f"{auth['date']}/{auth['service']}/tc3_request"
    string_to_sign = "\n".join(
        [ALGORITHM, headers["x-tc-timestamp"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    expected = Sign.sign_tc3(secret_key, auth["date"], auth["service"], string_to_sign)
    if not hmac.compare_digest(expected, auth["signature"]):
        raise AuthFailure(SIGNATURE_FAILURE, "the request signature does not match")
    return SignedRequest(
        secret_id=auth["secret_id"],
        service=auth["service"],
        action=headers["x-tc-action"],
        version=headers["x-tc-version"],
        region=headers.get("x-tc-region", ""),
        timestamp=timestamp,
    )


def _parse_authorization(value: str) -> dict[str, str]:
    if not value:
        raise AuthFailure(INVALID_AUTHORIZATION, "the Authorization header is missing")
    match = _AUTHORIZATION.match(value.strip())
    if match is None:
        raise AuthFailure(
            INVALID_AUTHORIZATION,
            "the Authorization header is not of the form 'TC3-HMAC-SHA256 Credential=..., "
            "SignedHeaders=..., Signature=...'",
        )
    return match.groupdict()


def _parse_timestamp(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise AuthFailure(INVALID_AUTHORIZATION, "X-TC-Timestamp must be an integer of seconds") from None
