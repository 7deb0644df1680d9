"""LLM services end to end: a tiny chat model written here, deployed once for the module as an LLM
service with auth on, called through the gateway's OpenAI routes (whole and streamed), the official
`openai` client, the TI-ONE SDK and the MLflow plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.server.chat.chat_model import events, save_chat_model
from tests.support.cloudapi import call, common_client, create_service, error_of, tione_client, wait_for_status

WS = "default"


@pytest.fixture(scope="module")
def record(tmp_path_factory):
    return tmp_path_factory.mktemp("chat-record")


@pytest.fixture(scope="module")
def llm(tcdeploy_server, tmp_path_factory, record):
    """One LLM service (type read from the model), auth on, inference table on; its group's URL and token."""
    model = save_chat_model(tmp_path_factory.mktemp("chat-model"), record)
    wedata = common_client(tcdeploy_server, "wedata")
    created = create_service(
        wedata,
        {
            "WorkspaceId": WS,
            "ServiceName": "chatty",
            "AuthorizationEnable": True,
            "InferenceTablePushEnable": True,
            "Services": [{"InstanceType": "TI.S.SMALL.POST", "MlModelInfo": {"ModelPath": str(model)}}],
        },
    )
    detail = wait_for_status(wedata, created["ServiceId"], {"RUNNING"})
    group = created["ServiceGroupId"]
    info = call(wedata, "GetModelServiceCallInfo", {"WorkspaceId": WS, "ServiceGroupId": group})["Data"]
    token = info["ServiceCallInfo"]["AuthToken"]
    base = info["ServiceCallInfo"]["InternetEndpoint"].removesuffix("/predict")
    yield {
        "group": group,
        "service": created["ServiceId"],
        "detail": detail,
        "token": token,
        "base": base,
        "model": model,
    }
    call(wedata, "DeleteMLModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": group})


def chat(llm, content, **extra) -> httpx.Response:
    body = {"model": "chatty", "messages": [{"role": "user", "content": content}], **extra}
    headers = {"Authorization": f"Bearer {llm['token']}"}
    return httpx.post(f"{llm['base']}/v1/chat/completions", json=body, headers=headers, timeout=30)


def test_the_type_is_read_from_the_model(llm):
    assert llm["detail"]["ServiceType"] == "LLM"


def test_a_whole_reply_in_openais_shape(llm):
    reply = chat(llm, "whole reply please")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["object"] == "chat.completion" and body["id"] and body["created"] and body["model"]
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "whole reply please"}, "finish_reason": "stop"}
    ]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_a_stream_reaches_the_client_before_the_model_is_done(llm, record):
    words = ["early"] + [f"w{i}" for i in range(11)]
    body = {"model": "chatty", "stream": True, "messages": [{"role": "user", "content": " ".join(words)}]}
    arrivals, chunks = [], []
    headers = {"Authorization": llm["token"]}
    with httpx.stream("POST", f"{llm['base']}/v1/chat/completions", json=body, headers=headers, timeout=30) as reply:
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        for line in reply.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.time())
                chunks.append(line[6:])
    assert chunks[-1] == "[DONE]"
    parsed = [json.loads(c) for c in chunks[:-1]]
    assert {p["object"] for p in parsed} == {"chat.completion.chunk"} and len({p["id"] for p in parsed}) == 1
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in parsed if p["choices"])
    assert text == " ".join(words)
    assert parsed[-1]["choices"][0]["finish_reason"] == "stop" and parsed[-1]["usage"]["completion_tokens"] == 12
    last_produced = max(when for when, what in events(record) if what == f"produced early {len(words) - 1}")
    assert arrivals[0] < last_produced  # the first word came before the model made the last


def test_the_openai_client_works_unmodified(llm):
    client = openai.OpenAI(base_url=f"{llm['base']}/v1", api_key=llm["token"])
    whole = client.chat.completions.create(model="chatty", messages=[{"role": "user", "content": "hi there"}])
    assert whole.choices[0].message.content == "hi there" and whole.usage.total_tokens == 4
    streamed = client.chat.completions.create(
        model="chatty", messages=[{"role": "user", "content": "one two three"}], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "one two three"
    assert [m.id for m in client.models.list()] == ["chatty"]
    assert client.models.retrieve("chatty").id == "chatty"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_a_client_that_disconnects_cancels_the_generation(llm, record):
    body = {"stream": True, "messages": [{"role": "user", "content": "gone " + " ".join(["x"] * 200)}]}
    headers = {"Authorization": llm["token"]}
    with httpx.stream("POST", f"{llm['base']}/v1/chat/completions", json=body, headers=headers, timeout=30) as reply:
        next(reply.iter_lines())  # the first event, then hang up
    deadline = time.monotonic() + 15
    while not any(what == "cancelled gone" for _, what in events(record)):
        assert time.monotonic() < deadline, "the model was never told the client went"
        time.sleep(0.2)
    assert not any(what == "finished gone" for _, what in events(record))


def test_chat_routes_need_the_groups_token(llm):
    body = {"messages": [{"role": "user", "content": "no key"}]}
    assert httpx.post(f"{llm['base']}/v1/chat/completions", json=body, timeout=10).status_code == 401
    assert (
        httpx.post(f"{llm['base']}/v1/chat/completions", json={**body, "stream": True}, timeout=10).status_code == 401
    )
    assert httpx.get(f"{llm['base']}/v1/models", timeout=10).status_code == 401


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 3}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10**9}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 9}, "temperature"),
    ],
)
def test_bad_chat_bodies_are_400s_naming_the_member(llm, body, named):
    reply = httpx.post(
        f"{llm['base']}/v1/chat/completions", json=body, headers={"Authorization": llm["token"]}, timeout=10
    )
    assert reply.status_code == 400 and reply.json()["message"].startswith(named + ":"), reply.text


def test_predict_takes_mlflows_chat_form(llm):
    body = {"messages": [{"role": "user", "content": "via predict"}]}
    reply = httpx.post(f"{llm['base']}/predict", json=body, headers={"Authorization": llm["token"]}, timeout=10)
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["content"] == "via predict"


def test_metrics_gain_time_to_first_token_and_tokens_per_second(tcdeploy_server, llm):
    chat(llm, "count me", stream=True)
    text = httpx.get(f"{tcdeploy_server.url}/metrics", timeout=10).text
    assert f'tcdeploy_time_to_first_token_seconds_count{{group="{llm["group"]}"' in text
    assert f'tcdeploy_completion_tokens_per_second_count{{group="{llm["group"]}"' in text


def test_the_inference_table_has_one_row_per_chat_with_the_whole_reply(tcdeploy_server, llm):
    chat(llm, "tabled whole")
    chat(llm, "tabled streamed reply", stream=True)
    rows = table_rows(tcdeploy_server, llm, {"tabled whole", "tabled streamed reply"})
    for content in ("tabled whole", "tabled streamed reply"):
        response = json.loads(rows[content]["response"])
        assert rows[content]["status_code"] == 200
        assert response["choices"][0]["message"]["content"] == content
        assert response["usage"]["completion_tokens"] == len(content.split())


def test_without_the_token_a_group_does_not_say_whether_it_is_an_llm_service(tcdeploy_server, logistic_model_dir):
    wedata = common_client(tcdeploy_server, "wedata")
    params = {
        "WorkspaceId": WS,
        "ServiceName": "tabular-with-auth",
        "AuthorizationEnable": True,
        "Services": [
            {"InstanceType": "TI.S.SMALL.POST", "Replicas": 0, "MlModelInfo": {"ModelPath": str(logistic_model_dir)}}
        ],
    }
    group_id = create_service(wedata, params)["ServiceGroupId"]
    try:
        base = f"{tcdeploy_server.url}/groups/{group_id}"
        body = {"messages": [{"role": "user", "content": "is it?"}]}
        assert httpx.post(f"{base}/v1/chat/completions", json=body, timeout=10).status_code == 401
        assert httpx.post(f"{base}/v1/chat/completions", json={}, timeout=10).status_code == 401
        assert httpx.get(f"{base}/v1/models", timeout=10).status_code == 401
    finally:
        call(wedata, "DeleteMLModelServiceGroup", {"WorkspaceId": WS, "ServiceGroupId": group_id})


def test_a_model_that_cannot_chat_is_refused_as_llm(tcdeploy_server, logistic_model_dir):
    wedata = common_client(tcdeploy_server, "wedata")
    params = {
        "WorkspaceId": WS,
        "ServiceName": "not-chatty",
        "ServiceType": "LLM",
        "Services": [{"InstanceType": "TI.S.SMALL.POST", "MlModelInfo": {"ModelPath": str(logistic_model_dir)}}],
    }
    error = error_of(wedata, "CreateMLModelServices", params)
    assert error.code == "InvalidParameterValue" and "ServiceType" in error.message and "chat" in error.message


def test_tione_chat_completion_through_the_official_sdk(tcdeploy_server, llm):
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
    from tencentcloud.tione.v20211111 import models

    request = models.ChatCompletionRequest()
    request.from_json_string(
        json.dumps({"Model": llm["group"], "Messages": [{"Role": "user", "Content": "from tione"}], "MaxTokens": 16})
    )
    reply = tione_client(tcdeploy_server).ChatCompletion(request)
    assert reply.Model == llm["group"] and reply.Id
    assert [(c.Message.Role, c.Message.Content, c.FinishReason) for c in reply.Choices] == [
        ("assistant", "from tione", "stop")
    ]
    assert (reply.Usage.PromptTokens, reply.Usage.CompletionTokens, reply.Usage.TotalTokens) == (2, 2, 4)
    request.from_json_string(json.dumps({"Model": llm["group"], "Messages": [{"Role": "wizard", "Content": "x"}]}))
    with pytest.raises(TencentCloudSDKException) as refused:
        tione_client(tcdeploy_server).ChatCompletion(request)
    assert refused.value.code == "InvalidParameterValue" and refused.value.message.startswith("Messages.0.Role:")


def test_the_plugins_predict_stream_yields_the_chunks(tcdeploy_server, llm):
    from mlflow.deployments import get_deploy_client

    with pytest.MonkeyPatch.context() as patch:
        for name, value in tcdeploy_server.client_env().items():
            patch.setenv(name, value)
        client = get_deploy_client(tcdeploy_server.target)
        chunks = list(client.predict_stream("chatty", {"messages": [{"role": "user", "content": "plug in streaming"}]}))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "plug in streaming"


def test_the_replica_serves_streams_side_by_side(llm, record):
    def stream(tag):
        body = {"stream": True, "messages": [{"role": "user", "content": f"{tag} " + " ".join(["y"] * 8)}]}
        with httpx.stream("POST", f"{llm['base']}/v1/chat/completions", json=body,
                          headers={"Authorization": llm["token"]}, timeout=30) as reply:  # fmt: skip
            return "".join(reply.iter_text())

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(stream, ["left", "right"]))
    assert all(r.rstrip().endswith("data: [DONE]") for r in replies)
    seen = {what: when for when, what in events(record)}
    # Each began before the other finished: neither waited for the other's whole reply.
    assert seen["produced left 0"] < seen["finished right"] and seen["produced right 0"] < seen["finished left"]


def test_a_version_of_another_type_is_refused_in_an_llm_group(tcdeploy_server, llm, logistic_model_dir):
    wedata = common_client(tcdeploy_server, "wedata")
    params = {
        "WorkspaceId": WS,
        "ServiceName": "tabular-in-chat",
        "ServiceGroupId": llm["group"],
        "Services": [{"InstanceType": "TI.S.SMALL.POST", "MlModelInfo": {"ModelPath": str(logistic_model_dir)}}],
    }
    error = error_of(wedata, "CreateMLModelServices", params)
    assert error.code == "InvalidParameterValue" and error.message.startswith("ServiceType:")


@pytest.fixture(scope="module")
def second(tcdeploy_server, llm):
    """A second version of the LLM group, limited to 1 request a second per replica."""
    wedata = common_client(tcdeploy_server, "wedata")
    created = create_service(
        wedata,
        {
            "WorkspaceId": WS,
            "ServiceName": "chatty-v2",
            "ServiceGroupId": llm["group"],
            "InferenceTablePushEnable": True,
            "Services": [
                {
                    "InstanceType": "TI.S.SMALL.POST",
                    "MlModelInfo": {"ModelPath": str(llm["model"])},
                    "ServiceLimit": {
                        "EnableInstanceRpsLimit": True,
                        "InstanceRpsLimit": 1,
                        "EnableInstanceReqLimit": False,
                        "InstanceReqLimit": 0,
                    },
                }
            ],
        },
    )
    wait_for_status(wedata, created["ServiceId"], {"RUNNING"})
    return created["ServiceId"]


def test_weights_route_chat_requests(tcdeploy_server, llm, second):
    wedata = common_client(tcdeploy_server, "wedata")
    entries = [{"ServiceId": llm["service"], "Weight": 0}, {"ServiceId": second, "Weight": 100}]
    call(
        wedata,
        "UpdateServiceGroupWeights",
        {"WorkspaceId": WS, "ServiceGroupId": llm["group"], "WeightEntries": entries},
    )
    assert chat(llm, "weighted whole").status_code == 200
    time.sleep(1.1)  # the second version's rate limit
    assert chat(llm, "weighted streamed", stream=True).status_code == 200
    rows = table_rows(tcdeploy_server, llm, {"weighted whole", "weighted streamed"})
    assert {rows[c]["service_id"] for c in ("weighted whole", "weighted streamed")} == {second}


def test_the_rate_limit_applies_to_chat_streams(llm, second):
    url = f"{llm['base'].replace('/groups/' + llm['group'], '/services/' + second)}/v1/chat/completions"
    body = {"stream": True, "messages": [{"role": "user", "content": "limited"}]}

    def send(_=None) -> int:
        return httpx.post(url, json=body, headers={"Authorization": llm["token"]}, timeout=30).status_code

    # 1 request a second: after a second of quiet the bucket holds one (the weights test before
    # this one may have just emptied it); of three more at once, at most one finds a new token.
    time.sleep(1.2)
    assert send() == 200
    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(send, range(3))).count(429) >= 2


def table_rows(tcdeploy_server, llm, contents: set[str]) -> dict[str, dict]:
    """The inference-table rows of the group by the first message's content, once all of `contents` are in."""
    deadline = time.monotonic() + 10
    while True:
        out = subprocess.run(
            [sys.executable, "-m", "tcdeploy", "inference-table", llm["group"], "--data-dir",
             str(tcdeploy_server.data_dir), "--format", "json"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        rows = {json.loads(r["request"])["messages"][0]["content"]: r for r in json.loads(out)}
        if contents <= rows.keys() or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_the_consoles_call_test_reaches_the_chat_route(tcdeploy_server, llm):
    wedata = common_client(tcdeploy_server, "wedata")
    body = {"messages": [{"role": "user", "content": "console says hi"}]}
    raw = call(
        wedata,
        "ModelServiceInterfaceCallTest",
        {"WorkspaceId": WS, "ServiceGroupId": llm["group"], "ServiceId": llm["service"], "RelativeUrl": "/v1/chat/completions",
         "CurlData": json.dumps(body), "AuthTokenValue": llm["token"]},
    )["Data"]["CurlResponseRaw"]  # fmt: skip
    reply = json.loads(raw)
    assert reply["status"] == 200 and json.loads(reply["body"])["choices"][0]["message"]["content"] == "console says hi"


def test_a_model_that_fails_mid_stream_ends_it_with_an_error_event(llm):
    client = openai.OpenAI(base_url=f"{llm['base']}/v1", api_key=llm["token"])
    stream = client.chat.completions.create(
        model="chatty", messages=[{"role": "user", "content": "boom goes the model"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError, match="the model broke mid-reply"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content)
    assert received == ["boom", " goes"]  # what came before the failure still came
