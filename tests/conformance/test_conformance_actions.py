"""Every wedata action the server must serve, driven by the official SDK's CommonClient with
requests built from the real schema (and with each published example): accepted, and the reply's
`Data` has the schema's members and types (our documented extensions aside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tcdeploy.protocol.schema import reply_mismatches, wedata

from .conftest import Estate, send
from .schema_requests import (
    ACTIONS,
    CREATING,
    DESTRUCTIVE,
    EXAMPLES_DIR,
    EXTENSIONS,
    Ids,
    example_request,
    full_request,
    minimal_request,
)

pytestmark = pytest.mark.conformance

# Changed by the call in a way the estate must not be (replicas, model): a throwaway service instead.
# Creating calls too: they would add a version to the estate's group.
RESHAPING = {"UpdateMLModelService", *CREATING}


def ids_for(action: str, estate: Estate) -> Ids:
    """The estate's ids, or those of throwaway resources for a call that destroys or reshapes."""
    ids = estate.ids
    if action in DESTRUCTIVE | RESHAPING:
        group, service = estate.throwaway()
        token = estate.new_token(group) if action == "DeleteModelServiceAuthToken" else ids.token
        ids = Ids(**{**vars(ids), "group": group, "service": service, "token": token})
    return ids


def accepted(estate: Estate, action: str, request: dict) -> dict:
    reply = send(estate.client, action, request)
    if action in CREATING:
        estate.forget(reply.get("Data"))
    if action == "RebuildModelServicePod":
        estate.settle()
    if "Error" in reply:
        error = reply["Error"]
        pytest.fail(
            f"{action} refused: {error['Code']}: {error['Message'][:300]} (request {json.dumps(request)[:300]})"
        )
    return reply


def assert_matches_schema(action: str, reply: dict) -> None:
    assert set(reply) <= {"Data"}, f"{action}: members beside Data at the top of Response: {sorted(reply)}"
    if wedata().actions[action].data_struct is not None:
        assert "Data" in reply, f"{action}: the reply has no Data"
    problems = reply_mismatches(action, reply.get("Data"), extensions=EXTENSIONS)
    if problems:
        pytest.fail(f"{action}: {len(problems)} schema mismatches: " + "; ".join(problems[:12]))


@pytest.mark.parametrize("action", ACTIONS)
def test_the_minimal_request_is_accepted_and_answered_as_the_schema_says(estate, action):
    request = minimal_request(action, ids_for(action, estate))
    assert_matches_schema(action, accepted(estate, action, request))


@pytest.mark.parametrize("action", ACTIONS)
def test_a_request_with_every_member_is_accepted_and_answered_as_the_schema_says(estate, action):
    request = full_request(action, ids_for(action, estate))
    assert_matches_schema(action, accepted(estate, action, request))


def _examples() -> list[Path]:
    found = sorted(Path(EXAMPLES_DIR).glob("*.json"))
    assert found, f"no published examples in {EXAMPLES_DIR}"  # fail, never skip, without the reference
    return found


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.stem)
def test_each_published_example_is_accepted_and_answered_as_the_schema_says(estate, path):
    example = json.loads(path.read_text(encoding="utf-8"))
    action = example["action"]
    if action not in ACTIONS:
        pytest.skip(f"{action} is not among the actions this server serves (issue 9)")
    request = example_request(action, example["request"], ids_for(action, estate))
    reply = accepted(estate, action, request)
    assert_matches_schema(action, reply)
    missing = missing_members(example["response"]["Response"].get("Data"), reply.get("Data"), "Data")
    if missing:
        pytest.fail(f"{action}: the published reply has members ours lacks: {', '.join(missing[:20])}")


def missing_members(published, ours, path: str) -> list[str]:
    """Members the published reply carries with a value (at any depth; a list by its first item)
    that ours does not: the same shape, not the same values. (A member the real API sends as null
    may be absent: the schema check allows both.)"""
    if isinstance(published, dict):
        if not isinstance(ours, dict):
            return [] if ours is None else [f"{path} (not an object)"]
        found = [f"{path}.{k}" for k, v in published.items() if k not in ours and v is not None]
        for key, value in published.items():
            if key in ours:
                found += missing_members(value, ours[key], f"{path}.{key}")
        return found
    if isinstance(published, list) and published and isinstance(ours, list) and ours:
        return missing_members(published[0], ours[0], f"{path}.0")
    return []


def test_the_published_replies_themselves_match_the_schema():
    """The check itself, on the real cloud's replies: what it calls a mismatch is one."""
    for path in _examples():
        example = json.loads(path.read_text(encoding="utf-8"))
        data = example["response"]["Response"].get("Data")
        assert reply_mismatches(example["action"], data) == [], path.name
