"""Endpoints end to end: a group with two versions, traffic split, auth, deletion."""

from __future__ import annotations

import uuid

import httpx
import pytest
from mlflow.exceptions import MlflowException

from .plugin_e2e import CONSTANT, unique, wait_until

ROWS = 160  # single-row predictions: each version's share is 0.5 +- 0.04 (1 sigma); 0.3-0.7 is 5 sigma


@pytest.fixture(scope="module")
def endpoint(client, registered_model):
    """An endpoint with two running versions: logistic (v1) and constant (v2)."""
    name = unique("ep")
    created = client.create_endpoint(name)
    try:
        logistic = client.create_deployment(
            unique("ep-logistic"), f"models:/{registered_model}/1", config={"wait": "false"}, endpoint=name
        )
        constant = client.create_deployment(
            unique("ep-constant"), f"models:/{registered_model}/2", endpoint=created["endpoint_id"]
        )
        for deployment in (logistic, constant):
            wait_until(lambda d=deployment: client.get_deployment(d["service_id"])["status"] == "RUNNING", timeout=240)
        yield {"created": created, "logistic": logistic, "constant": constant}
    finally:
        client.delete_endpoint(created["endpoint_id"])


def test_create_endpoint_returns_an_empty_group(endpoint):
    created = endpoint["created"]
    assert uuid.UUID(created["endpoint_id"]) and created["service_group_id"] == created["endpoint_id"]
    assert created["url"].endswith(f"/groups/{created['endpoint_id']}/predict")
    assert created["auth_enabled"] is False
    assert created["deployments"] == [] and created["traffic"] == {}


def test_get_and_list_endpoints(client, endpoint):
    name = endpoint["created"]["name"]
    by_name, by_id = client.get_endpoint(name), client.get_endpoint(endpoint["created"]["endpoint_id"])
    assert by_name == by_id
    assert sorted(d["service_id"] for d in by_name["deployments"]) == sorted(
        [endpoint["logistic"]["service_id"], endpoint["constant"]["service_id"]]
    )
    assert name in [e["name"] for e in client.list_endpoints()]
    listed = client.list_deployments(endpoint=name)
    assert {d["name"] for d in listed} == {endpoint["logistic"]["name"], endpoint["constant"]["name"]}
    assert all(d["service_group_id"] == by_id["endpoint_id"] for d in listed)


def test_a_taken_endpoint_name_is_refused(client, endpoint):
    with pytest.raises(MlflowException) as info:
        client.create_endpoint(endpoint["created"]["name"])
    assert info.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_a_third_version_is_refused(client, endpoint, registered_model):
    with pytest.raises(MlflowException) as info:
        client.create_deployment(unique("third"), f"models:/{registered_model}/1", endpoint=endpoint["created"]["name"])
    assert info.value.error_code in ("RESOURCE_LIMIT_EXCEEDED", "INVALID_STATE")
    assert "LimitExceeded" in str(info.value)


def _answers(client, target, X, rows=ROWS):
    """How many single-row predictions came from the constant model."""
    constant = 0
    for i in range(rows):
        prediction = client.predict(target, X.iloc[[i % len(X)]])["predictions"][0]
        constant += prediction == CONSTANT
    return constant


def test_fifty_fifty_traffic_reaches_both_versions(client, endpoint, iris):
    logistic, constant = endpoint["logistic"], endpoint["constant"]
    updated = client.update_endpoint(
        endpoint["created"]["name"], config={"traffic": {logistic["name"]: 50, constant["service_id"]: 50}}
    )
    assert updated["traffic"] == {logistic["name"]: 50, constant["name"]: 50}
    share = _answers(client, endpoint["created"]["name"], iris[0]) / ROWS
    assert 0.3 <= share <= 0.7, share


def test_all_traffic_to_one_version_and_predicting_a_version_directly(client, endpoint, iris, logistic_predictions):
    logistic, constant = endpoint["logistic"], endpoint["constant"]
    client.update_endpoint(
        endpoint["created"]["endpoint_id"], config={"traffic": f'{{"{logistic["service_id"]}": 100}}'}
    )
    assert client.get_endpoint(endpoint["created"]["name"])["traffic"][constant["name"]] == 0
    assert _answers(client, endpoint["created"]["name"], iris[0], rows=20) == 0
    assert client.predict(constant["name"], iris[0].head(3))["predictions"] == [CONSTANT] * 3
    assert client.predict(logistic["service_id"], iris[0].head(3))["predictions"] == logistic_predictions[:3]


@pytest.mark.parametrize(
    "traffic, problem",
    [
        ({"a": 50}, "is not a deployment of endpoint"),
        ("not json", "not valid JSON"),
        ("[50, 50]", "must be a JSON object"),
        ({}, "must be a JSON object"),
    ],
)
def test_bad_traffic_is_refused(client, endpoint, traffic, problem):
    with pytest.raises(MlflowException) as info:
        client.update_endpoint(endpoint["created"]["name"], config={"traffic": traffic})
    assert problem in str(info.value) and info.value.error_code == "INVALID_PARAMETER_VALUE"


def test_weights_are_whole_shares_the_server_bounds(client, endpoint):
    logistic, constant = endpoint["logistic"]["name"], endpoint["constant"]["name"]
    before = client.get_endpoint(endpoint["created"]["name"])["traffic"]
    # Shares of the traffic, as the real API takes them: 60 and 30 need not sum to 100.
    updated = client.update_endpoint(endpoint["created"]["name"], config={"traffic": {logistic: 60, constant: 30}})
    assert updated["traffic"] == {logistic: 60, constant: 30}
    client.update_endpoint(endpoint["created"]["name"], config={"traffic": before})
    for traffic, problem in (
        ({logistic: 150, constant: -50}, "WeightEntries"),  # the server's bound, naming its field
        ({logistic: 0, constant: 0}, "above 0"),
        ({logistic: 50.5, constant: 49.5}, "whole number"),
        ({logistic: "50", constant: 50}, "whole number"),
    ):
        with pytest.raises(MlflowException, match=problem):
            client.update_endpoint(endpoint["created"]["name"], config={"traffic": traffic})
    with pytest.raises(MlflowException, match="unknown config key 'weights'"):
        client.update_endpoint(endpoint["created"]["name"], config={"weights": {logistic: 100}})


def test_auth_on_still_predicts_and_the_url_needs_the_token(client, endpoint, iris):
    name, url = endpoint["created"]["name"], endpoint["created"]["url"]
    updated = client.update_endpoint(name, config={"authorization_enable": "true"})
    assert updated["auth_enabled"] is True
    try:
        assert len(client.predict(name, iris[0].head(2))["predictions"]) == 2
        assert len(client.predict(endpoint["constant"]["name"], iris[0].head(2))["predictions"]) == 2
        body = {"dataframe_split": {"columns": list(iris[0].columns), "data": iris[0].head(1).values.tolist()}}
        assert httpx.post(url, json=body, timeout=30).status_code == 401
        # The token the URL takes is the endpoint's to show (what `tcdeploy token` prints).
        token = client.get_endpoint(name)["auth_token"]
        assert httpx.post(url, json=body, headers={"Authorization": token}, timeout=30).status_code == 200
    finally:
        assert client.update_endpoint(name, config={"authorization_enable": False})["auth_enabled"] is False
    assert len(client.predict(name, iris[0].head(2))["predictions"]) == 2


def test_delete_endpoint_removes_its_deployments_and_is_idempotent(client, registered_model):
    name = unique("ep-gone")
    client.create_endpoint(name, config={"authorization_enable": "1"})
    deployment = client.create_deployment(
        unique("ep-gone-v1"), f"models:/{registered_model}/2", endpoint=name, config={"wait": False}
    )
    client.delete_endpoint(name)
    client.delete_endpoint(name)
    for call in (lambda: client.get_endpoint(name), lambda: client.get_deployment(deployment["service_id"])):
        with pytest.raises(MlflowException) as info:
            call()
        assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_endpoint_metrics_count_what_was_served(client, endpoint, iris):
    name = endpoint["created"]["name"]
    before = sum(p["requests"] for p in client.get_endpoint_metrics(name))
    for _ in range(3):
        client.predict(name, iris[0].head(1))
    points = client.get_endpoint_metrics(name, step=60)
    assert sum(p["requests"] for p in points) == before + 3
    assert {"time", "requests", "errors", "limited", "p50_latency_ms", "p99_latency_ms"} <= set(points[-1])
