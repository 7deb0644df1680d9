"""Requests generated from each action's schema types — right and wrong types, missing required
members, unknown members, huge strings, nested garbage — never get a non-envelope reply, a status
other than 200, an `InternalError` or a traceback; and a refused request changes no state.

Two kinds per action: *any* request (ids of a decoy: a throwaway group whose service has no
replicas, so an accepted call harms nothing the checks watch), and *refused* requests carrying the
estate's real ids, which must be refused and leave the estate as it was.
"""

from __future__ import annotations

import json
import os
import re
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from tcdeploy.protocol.schema import reply_mismatches

from .conftest import WS, Estate, created_ids, send
from .schema_requests import ACTIONS, CREATING, EXTENSIONS, Ids, any_request, refused_request

pytestmark = pytest.mark.conformance

# Modest: two cores, a few minutes for the whole suite.
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same requests every run: a failure is reproducible, the run time steady
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
    database=None,
)
REFUSALS = settings(EXAMPLES, max_examples=10)
_REQUEST_ID = re.compile(r"RequestId [0-9a-fA-F-]+")
TRACE_MARKS = ("Traceback", 'File "', "pydantic_core", "site-packages", "\n  at ")


# Whether the state may be moving on its own: after an accepted call (and a fresh decoy) it may.
_MOVING = {"since_accepted": True}


@pytest.fixture
def decoy(estate: Estate) -> Ids:
    """Per test: an accepted delete in one action's examples leaves the next action a decoy."""
    group, service = estate.throwaway()
    _MOVING["since_accepted"] = True
    return Ids(**{**vars(estate.ids), "group": group, "service": service, "pod": f"{service}-pod", "token": "decoy"})


def snapshot(estate: Estate, decoy: Ids) -> str:
    """The state a refused request must not change: the workspace's groups, both services, the
    groups' tokens and the registered version (aliases)."""
    ids = estate.ids
    version = {"CatalogName": ids.catalog, "SchemaName": ids.schema, "ModelName": ids.model}
    parts = [
        send(estate.client, "ListMLModelServiceGroups", {"WorkspaceId": WS}),
        send(estate.client, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": ids.service}),
        send(estate.client, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": decoy.service}),
        send(estate.client, "GetModelVersion", {**version, "WorkspaceId": WS, "ModelVersion": ids.version}),
        estate.token_values(ids.group),
        estate.token_values(decoy.group),
    ]
    # An error's message carries its RequestId: the same refusal twice reads the same here.
    return _REQUEST_ID.sub("RequestId …", json.dumps(_at_rest(parts), sort_keys=True, default=str))


# What moves on its own after an earlier accepted call (a service settling, its replicas starting,
# a group's status following): not the work of a refused one. What exists, its settings, weights,
# tokens and aliases are what a refusal must leave alone.
_MOVES_ON_ITS_OWN = frozenset({"Status", "WorkloadStatus", "PodInfos", "UpdateTime", "RunningServiceCount"})


def _at_rest(value):
    if isinstance(value, dict):
        return {k: _at_rest(v) for k, v in value.items() if k not in _MOVES_ON_ITS_OWN}
    if isinstance(value, list):
        return [_at_rest(v) for v in value]
    return value


def answer(estate: Estate, action: str, request: dict) -> dict:
    """The reply's `Response`: an envelope, HTTP 200, never an InternalError or a trace."""
    try:
        reply = estate.client.call_json(action, request)["Response"]
    except TencentCloudSDKException as exc:
        assert exc.code not in (None, "ServerNetworkError", "ClientNetworkError", "ClientParamsError"), (
            f"{action}: not a Tencent error reply ({exc.code}: {exc.message[:300]}) for {_short(request)}"
        )
        assert exc.code != "InternalError", f"{action}: InternalError {exc.message[:300]} for {_short(request)}"
        assert exc.message, f"{action}: {exc.code} with no message"
        assert not any(mark in exc.message for mark in TRACE_MARKS), f"{action}: a trace in {exc.message[:600]}"
        assert exc.requestId, f"{action}: an error reply without RequestId"
        return {"Error": {"Code": exc.code, "Message": exc.message}}
    assert reply.get("RequestId"), f"{action}: a reply without RequestId"
    problems = reply_mismatches(action, reply.get("Data"), extensions=EXTENSIONS)
    assert not problems, f"{action} accepted {_short(request)}; its reply: " + "; ".join(problems[:8])
    return reply


def _short(request: dict) -> str:
    return json.dumps(request, default=str)[:400]


def _remember(estate: Estate, action: str, reply: dict) -> None:
    if action in CREATING and "Error" not in reply:
        estate.forget(reply.get("Data"))
        group, _ = created_ids(reply.get("Data"))
        assert group, f"{action} accepted, but its reply names no group: {_short(reply)}"


@pytest.mark.parametrize("action", ACTIONS)
@EXAMPLES
@given(data=st.data())
def test_any_request_gets_an_envelope_and_a_refusal_changes_nothing(estate, decoy, action, data):
    request = data.draw(any_request(action, decoy), label="request")
    before = settled_snapshot(estate, decoy) if _MOVING["since_accepted"] else snapshot(estate, decoy)
    reply = answer(estate, action, request)
    event(reply["Error"]["Code"] if "Error" in reply else "accepted")  # --hypothesis-show-statistics
    _remember(estate, action, reply)
    _MOVING["since_accepted"] = "Error" not in reply
    if "Error" in reply:
        _unchanged(before, snapshot(estate, decoy), action, request)


def settled_snapshot(estate: Estate, decoy: Ids, timeout: float = 30) -> str:
    """A snapshot of a state at rest: what an earlier accepted call made (a service starting, a
    group's status following it) moves on its own for a while, and must not be taken for the
    work of a refused call."""
    deadline = time.monotonic() + timeout
    last = snapshot(estate, decoy)
    while time.monotonic() < deadline:
        time.sleep(0.15)
        now = snapshot(estate, decoy)
        if now == last:
            return now
        last = now
    return last


@pytest.mark.parametrize("action", ACTIONS)
@REFUSALS
@given(data=st.data())
def test_a_malformed_request_with_real_ids_is_refused_and_changes_nothing(estate, decoy, action, data):
    request = data.draw(refused_request(action, estate.ids), label="request")
    before = settled_snapshot(estate, decoy) if _MOVING["since_accepted"] else snapshot(estate, decoy)
    reply = answer(estate, action, request)
    _remember(estate, action, reply)
    _MOVING["since_accepted"] = "Error" not in reply
    assert "Error" in reply, f"{action} accepted a malformed request: {_short(request)}"
    _unchanged(before, snapshot(estate, decoy), action, request)


def _unchanged(before: str, after: str, action: str, request: dict) -> None:
    if before != after:
        at = len(os.path.commonprefix([before, after]))
        pytest.fail(
            f"{action} refused {_short(request)} but changed the state near …{before[max(0, at - 150) : at + 100]}… "
            f"→ …{after[max(0, at - 150) : at + 100]}…"
        )
