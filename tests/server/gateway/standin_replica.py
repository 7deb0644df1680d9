"""A stand-in replica for the gateway's tests: the replica's HTTP contract (GET /ping, POST
/predict and /invocations with MLflow JSON bodies, 400 JSON errors) without a model, plus two
test hooks in the body: `"sleep": seconds` (a slow request), `"chunked": true` (a chunked reply),
and the request id it saw, echoed in the reply. Run: python standin_replica.py SOCKET_PATH
"""

import asyncio
import json
import os
import sys

import uvicorn


def _rows(document: dict) -> int:
    for key in ("dataframe_split", "dataframe_records", "instances", "inputs"):
        if key in document:
            payload = document[key]
            if key == "dataframe_split":
                payload = payload.get("data", [])
            return len(payload) if isinstance(payload, (list, dict)) else 1
    return 0


async def _reply(send, status: int, document: dict, extra: list | None = None) -> None:
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "GET" and scope["path"] == "/ping":
        return await _reply(send, 200, {"status": "ok"})
    if scope["path"] not in ("/predict", "/invocations"):
        return await _reply(send, 404, {"error_code": "NOT_FOUND", "message": scope["path"]})
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    try:
        document = json.loads(body)
    except ValueError as exc:
        return await _reply(send, 400, {"error_code": "BAD_REQUEST", "message": f"bad JSON: {exc}"})
    if not isinstance(document, dict):
        return await _reply(send, 400, {"error_code": "BAD_REQUEST", "message": "not an object"})
    if document.get("sleep"):
        await asyncio.sleep(float(document["sleep"]))
    if document.get("chunked"):  # no Content-Length: uvicorn sends it chunked
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"predictions": ', "more_body": True})
        await send({"type": "http.response.body", "body": b"[1, 2]}"})
        return
    rows = _rows(document)
    headers = dict(scope["headers"])
    await _reply(
        send,
        200,
        {
            "predictions": [0] * rows,
            "seen_request_id": headers.get(b"x-request-id", b"").decode(),
            "path": scope["path"],
            "pid": os.getpid(),
        },
        [(b"x-batch-rows", str(rows).encode())],
    )


if __name__ == "__main__":
    uvicorn.run(app, uds=sys.argv[1], log_level="warning", loop="uvloop", http="httptools")
