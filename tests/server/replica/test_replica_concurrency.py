"""Concurrent requests against real replicas: batching happens and changes no answer."""

from __future__ import annotations

import asyncio
import random

import httpx
import mlflow.pyfunc
import pandas as pd
import pytest

from .replica_harness import running_replica, split_body

MAGIC = 666.0


@pytest.fixture(scope="module")
def magic_replica(magic_model_dir, tmp_path_factory):
    with running_replica(magic_model_dir, tmp_path_factory.mktemp("magic-replica")) as replica:
        yield replica


@pytest.fixture(scope="module")
def magic_model(magic_model_dir):
    return mlflow.pyfunc.load_model(str(magic_model_dir))


def fire(replica, bodies: list[dict]) -> list[httpx.Response]:
    """POST every body at once over as many connections."""

    async def scenario():
        limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
        async with replica.async_client(limits=limits) as client:
            return await asyncio.gather(*(client.post("/predict", json=body) for body in bodies))

    return asyncio.run(scenario())


def stats(replica) -> dict:
    with replica.client() as client:
        return client.get("/stats").json()


def test_concurrent_requests_are_batched_and_answered_as_if_alone(forest_replica, forest_model, iris):
    features = iris[0]
    picker = random.Random(7)
    frames = []
    for _ in range(64):
        start = picker.randrange(len(features) - 3)
        frames.append(features.iloc[start : start + picker.randint(1, 3)].reset_index(drop=True))
    bodies = []
    for n, frame in enumerate(frames):
        # Two forms and two column orders: four batch keys that must never be mixed up.
        ordered = frame[list(reversed(frame.columns))] if n % 4 == 1 else frame
        if n % 2:
            bodies.append({"dataframe_records": ordered.to_dict(orient="records")})
        else:
            bodies.append(split_body(ordered, client_request_id=f"req-{n}"))
    before = stats(forest_replica)

    replies = fire(forest_replica, bodies)

    after = stats(forest_replica)
    for n, (frame, reply) in enumerate(zip(frames, replies)):
        assert reply.status_code == 200, reply.text
        assert reply.json()["predictions"] == forest_model.predict(frame).tolist()
        if n % 2 == 0:
            assert reply.json()["client_request_id"] == f"req-{n}"
    # Each reply says how many rows its predict call held: at least its own, and more when merged.
    batch_rows = [int(reply.headers["x-batch-rows"]) for reply in replies]
    assert all(rows >= len(frame) for rows, frame in zip(batch_rows, frames))
    assert max(batch_rows) > 3
    requests = after["requests"] - before["requests"]
    batches = after["batches"] - before["batches"]
    assert requests == 64
    assert batches < requests, after
    assert after["max_batch_requests"] > 1
    assert after["max_batch_rows"] <= 32


def test_model_error_is_a_500_with_the_models_message(magic_replica):
    with magic_replica.client() as client:
        body = {"dataframe_split": {"columns": ["x"], "data": [[MAGIC]]}}
        reply = client.post("/predict", json=body)
    assert reply.status_code == 500
    body = reply.json()
    assert body["error_code"] == "MODEL_ERROR"
    assert "the magic value 666 is not allowed" in body["message"]
    assert "Traceback" not in body["message"]


def test_dataframe_predictions_and_params(magic_replica, magic_model):
    frame = pd.DataFrame({"x": [1.5, -2.0, 4.0]})
    with magic_replica.client() as client:
        plain = client.post("/predict", json=split_body(frame))
        scaled = client.post("/predict", json={**split_body(frame), "params": {"scale": 3.0}})
    assert plain.json()["predictions"] == magic_model.predict(frame).to_dict(orient="records")
    assert scaled.json()["predictions"] == magic_model.predict(frame, params={"scale": 3.0}).to_dict(orient="records")


def test_a_bad_request_in_a_batch_does_not_fail_its_neighbours(magic_replica, magic_model):
    values = [float(n) for n in range(40)]
    magic_at = {5, 17, 33}
    bodies = []
    for n, value in enumerate(values):
        x = MAGIC if n in magic_at else value
        params = {"scale": 2.0} if n % 5 == 0 else None
        body = {"dataframe_split": {"columns": ["x"], "data": [[x]]}}
        bodies.append({**body, "params": params} if params else body)
    before = stats(magic_replica)

    replies = fire(magic_replica, bodies)

    for n, (body, reply) in enumerate(zip(bodies, replies)):
        if n in magic_at:
            assert reply.status_code == 500 and "magic value" in reply.json()["message"]
            continue
        assert reply.status_code == 200, reply.text
        frame = pd.DataFrame({"x": [values[n]]})
        expected = magic_model.predict(frame, params=body.get("params"))
        assert reply.json()["predictions"] == expected.to_dict(orient="records")
    after = stats(magic_replica)
    assert after["model_errors"] - before["model_errors"] == len(magic_at)
    assert after["batches"] - before["batches"] < len(bodies)
