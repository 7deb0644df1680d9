"""One line per HTTP request, for `tcdeploy server --access-log`: method, path, the cloud API
action (the control API takes every action on `POST /`, so the path alone says nothing), status
and time taken. A plain ASGI layer, off unless asked for."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("tcdeploy.access")


class AccessLog:
    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0

        async def send_noting_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            elapsed_ms = (time.monotonic() - started) * 1000
            log.info("%s %s%s %s %.0fms", scope["method"], scope["path"], _action(scope), status or "-", elapsed_ms)


def _action(scope: dict) -> str:
    for name, value in scope.get("headers") or ():
        if name == b"x-tc-action":
            return " " + value.decode("latin-1")[:64]
    return ""
