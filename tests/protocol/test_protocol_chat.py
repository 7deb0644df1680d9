"""Which models can chat, and the chat bodies the data plane refuses (naming the member)."""

from __future__ import annotations

import json

import pytest

from tcdeploy.protocol.chat import ChatBodyError, parse_chat, why_not_chat

PYFUNC = {"loader_module": "mlflow.pyfunc.model", "streamable": True}


@pytest.mark.parametrize(
    ("mlmodel", "chats"),
    [
        ({"flavors": {"python_function": PYFUNC}, "metadata": {"task": "agent/v1/chat"}}, True),
        ({"flavors": {"python_function": {**PYFUNC, "loader_module": "mlflow.pyfunc.loaders.chat_model"}}}, True),
        ({"flavors": {"python_function": PYFUNC}, "signature": {"inputs": json.dumps([{"name": "messages"}])}}, True),
        ({"flavors": {"python_function": PYFUNC}, "signature": {"inputs": json.dumps([{"name": "x"}])}}, False),
        (
            {"flavors": {"python_function": {**PYFUNC, "streamable": False}}, "metadata": {"task": "agent/v1/chat"}},
            False,
        ),
        ({"flavors": {"sklearn": {}}}, False),
    ],
)
def test_a_model_chats_when_it_is_a_chat_interface_that_streams(mlmodel, chats):
    assert (why_not_chat(mlmodel) is None) is chats


def test_a_good_body_passes():
    body = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "temperature": 0.2, "top_p": 1, "max_tokens": 64, "stop": ["\n"], "n": 1, "stream": True}  # fmt: skip
    assert parse_chat(json.dumps(body).encode()) == body


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"not json", "the body is not JSON"),
        (b"[1]", "the body must be a JSON object"),
        (b'{"messages": "hi"}', "messages:"),
        (b'{"messages": [1]}', "messages.0:"),
        (b'{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}', "messages.0.content:"),
        (b'{"messages": [{"role": "user", "content": "x"}], "top_p": 2}', "top_p:"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens:"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": true}', "max_tokens:"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 2}', "n:"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b", "c", "d", "e"]}', "stop:"),
        (b'{"messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream:"),
    ],
)
def test_bad_bodies_are_refused_naming_the_member(body, named):
    with pytest.raises(ChatBodyError) as refused:
        parse_chat(body)
    assert str(refused.value).startswith(named)
