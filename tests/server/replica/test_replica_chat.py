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


AGENT = """
import uuid

import mlflow
from mlflow.pyfunc import ChatAgent
from mlflow.types.agent import ChatAgentChunk, ChatAgentMessage, ChatAgentResponse


class Echo(ChatAgent):
    def predict(self, messages, context=None, custom_inputs=None):
        reply = ChatAgentMessage(role="assistant", content=messages[-1].content, id=str(uuid.uuid4()))
        return ChatAgentResponse(messages=[reply])

    def predict_stream(self, messages, context=None, custom_inputs=None):
        for i, word in enumerate(messages[-1].content.split()):
            delta = ChatAgentMessage(role="assistant", content=(" " if i else "") + word, id=str(uuid.uuid4()))
            yield ChatAgentChunk(delta=delta)


mlflow.models.set_model(Echo())
"""


def test_a_chat_agent_answers_in_openais_shape(tmp_path):
    import mlflow

    from tcdeploy.protocol.chat import why_not_chat

    (tmp_path / "agent.py").write_text(AGENT)
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=str(tmp_path / "agent.py"))
    model = mlflow.pyfunc.load_model(str(tmp_path / "model"))
    assert why_not_chat(model.metadata.to_dict()) is None
    server = ChatServer(model, name="agent", threads=1)
    whole = json.dumps({"messages": [{"role": "user", "content": "agent here"}], "temperature": 0.5}).encode()
    streamed = json.dumps({"stream": True, "messages": [{"role": "user", "content": "agent streams"}]}).encode()

    async def answer(body):
        sent = []

        async def receive():
            await asyncio.Event().wait()

        async def send(message):
            sent.append(message)

        await server.serve({"headers": []}, receive, send, body)
        return sent

    try:
        reply = asyncio.run(answer(whole))
        events = asyncio.run(answer(streamed))
    finally:
        server.close()
    body = json.loads(reply[1]["body"])
    assert reply[0]["status"] == 200, body
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "agent here"}
    chunks = [json.loads(m["body"][6:]) for m in events[1:] if m["body"].startswith(b"data: {")]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "agent streams"
