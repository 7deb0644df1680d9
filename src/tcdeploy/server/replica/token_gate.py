"""The token check in front of a replica that also listens on TCP.

A unix socket sits in a 0700 directory of the server's user; a TCP port is reachable by anything
on the cluster network. So a request that came in over TCP (uvicorn gives it a `client` address; a
unix-socket request has none) must carry the replica token (`protocol.replica_hop`), the value its runtime gave
this replica (an HMAC of the server secret and the pod name), compared in constant time.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable

from tcdeploy.protocol.replica_hop import TOKEN_HEADER

_TOKEN_HEADER = TOKEN_HEADER.encode()

_REFUSED = json.dumps({"error_code": "PERMISSION_DENIED", "message": "missing or wrong replica token"}).encode()


class TokenGate:
    """ASGI middleware: TCP requests without the right token get a 403; the rest pass through."""

    def __init__(self, app: Callable, token: str) -> None:
        if not token:
            raise ValueError("token: a replica listening on TCP needs a non-empty token")
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and scope.get("client") is not None and not self._allowed(scope):
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(_REFUSED))],
                }
            )
            await send({"type": "http.response.body", "body": _REFUSED})
            return
        await self._app(scope, receive, send)

    def _allowed(self, scope: dict) -> bool:
        given = next((value for name, value in scope["headers"] if name == _TOKEN_HEADER), b"")
        return hmac.compare_digest(given, self._token)
