"""The replica's chat server in process: streams held by generation threads, and the fast 503
once every thread is busy and as many requests again are waiting."""

from __future__ import annotations

import asyncio
import json
import threading

from tcdeploy.server.replica.chat import REQUESTS_PER_THREAD, ChatServer

BODY = json.dumps({"stream": True, "messages": [{"role": "user", "content": "hold on"}]}).encode()


class HeldModel:
    """Streams one chunk once `release` is set (a stand-in for a slow generation)."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def predict_stream(self, data):
        self.release.wait(10)
        yield {"choices": [{"index": 0, "delta": {"content": "done"}}]}


async def _answer(server: ChatServer) -> list[dict]:
    sent: list[dict] = []

    async def receive():
        await asyncio.Event().wait()  # the client never goes

    async def send(message):
        sent.append(message)

    await server.serve({"headers": []}, receive, send, BODY)
    return sent


def test_beyond_its_threads_and_as_many_waiting_a_replica_answers_503_at_once():
    model = HeldModel()
    server = ChatServer(model, name="held", threads=1)  # type: ignore[arg-type]

    async def scenario():
        held = [asyncio.create_task(_answer(server)) for _ in range(REQUESTS_PER_THREAD)]
        await asyncio.sleep(0.2)
        refused = await asyncio.wait_for(_answer(server), 5)  # answered while the others are held
        model.release.set()
        return refused, await asyncio.gather(*held)

    try:
        refused, held = asyncio.run(scenario())
    finally:
        server.close()
    assert refused[0]["status"] == 503 and b"its most" in refused[1]["body"]
    assert [messages[0]["status"] for messages in held] == [200] * REQUESTS_PER_THREAD
    assert all(messages[-1]["body"] == b"data: [DONE]\n\n" for messages in held)
    assert server.stats()["chat_overloaded"] == 1
