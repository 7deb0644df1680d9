"""Group tokens: one group's token opens no other group, a deleted one stops at once, and the store
keeps only their digests."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from tests.support.cloudapi import call

from .security_estate import PREDICT_BODY, Estate, store_rows, token_values


def predict_status(estate: Estate, url: str, authorization: str | None) -> int:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return httpx.post(url, content=PREDICT_BODY, headers=headers, timeout=30).status_code


def call_test_status(estate: Estate, token: str) -> int:
    b = estate.b
    data = call(
        estate.client(b.key),
        "ModelServiceInterfaceCallTest",
        {
            "WorkspaceId": b.workspace,
            "ServiceGroupId": b.group_id,
            "ServiceId": b.group_id,
            "RelativeUrl": "/predict",
            "CurlData": PREDICT_BODY,
            "AuthTokenValue": token,
        },
    )["Data"]
    return json.loads(data["CurlResponseRaw"])["status"]


@pytest.mark.parametrize("by", ["groups", "services"])
def test_the_token_of_group_a_does_not_open_group_b(estate, by):
    url = estate.predict_url(estate.b, by)
    assert predict_status(estate, url, estate.b.token) == 200, "B's own token must open B"
    for wrong in (estate.a.token, f"Bearer {estate.a.token}", None, "", estate.b.token[:-1]):
        assert predict_status(estate, url, wrong) == 401, wrong
    # ...and A's token does open A (its service runs no replica, so past auth it is a 503).
    assert predict_status(estate, estate.predict_url(estate.a, by), estate.a.token) == 503


def test_a_deleted_token_stops_working_at_once(estate):
    b = estate.b
    tione = estate.client(b.key, "tione")
    call(
        tione,
        "CreateModelServiceAuthToken",
        {"TiProjectId": b.workspace, "ServiceGroupId": b.group_id, "Name": "brief"},
    )
    (fresh,) = set(token_values(tione, b.workspace, b.group_id)) - {b.token}
    url = estate.predict_url(b)
    assert predict_status(estate, url, fresh) == 200
    assert call_test_status(estate, fresh) == 200
    call(
        tione,
        "DeleteModelServiceAuthToken",
        {"TiProjectId": b.workspace, "ServiceGroupId": b.group_id, "AuthTokenValue": fresh},
    )
    assert predict_status(estate, url, fresh) == 401
    assert call_test_status(estate, fresh) == 401
    assert predict_status(estate, url, b.token) == 200, "the other token must still work"


def test_tokens_are_stored_only_as_digests(estate):
    b = estate.b
    tione = estate.client(b.key, "tione")
    call(
        tione, "CreateModelServiceAuthToken", {"TiProjectId": b.workspace, "ServiceGroupId": b.group_id, "Name": "kept"}
    )
    values = {estate.a.token, *token_values(tione, b.workspace, b.group_id)}
    try:
        digests = {row[4] for row in store_rows(estate.data_dir)["tokens"]}
        assert {hashlib.sha256(v.encode()).hexdigest() for v in values} <= digests
        # Not in the database, its journal, or any other file of the data dir (logs included).
        for path in estate.data_dir.rglob("*"):
            if path.is_file() and path.suffix not in (".sock",):
                content = path.read_bytes()
                leaked = [v for v in values if v.encode() in content]
                assert not leaked, f"a token value is in {path}"
    finally:
        for value in set(token_values(tione, b.workspace, b.group_id)) - {b.token}:
            call(
                tione,
                "DeleteModelServiceAuthToken",
                {"TiProjectId": b.workspace, "ServiceGroupId": b.group_id, "AuthTokenValue": value},
            )
