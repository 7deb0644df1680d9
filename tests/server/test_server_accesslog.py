"""`tcdeploy server --access-log`: one line per request, naming the cloud API action."""

from __future__ import annotations

import asyncio
import logging

import httpx

from tcdeploy.server.accesslog import AccessLog


async def _answer(scope, receive, send):
    await send({"type": "http.response.start", "status": 202, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _two_requests() -> None:
    transport = httpx.ASGITransport(app=AccessLog(_answer))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/", headers={"X-TC-Action": "CreateMLModelServices"})
        await client.post("/groups/g-1/predict")


def test_one_line_per_request_with_the_action(caplog):
    with caplog.at_level(logging.INFO, logger="tcdeploy.access"):
        asyncio.run(_two_requests())
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("POST / CreateMLModelServices 202 ") and lines[0].endswith("ms")
    assert lines[1].startswith("POST /groups/g-1/predict 202 ")
