"""The replica's parts in this process: scoring a mixed batch, and the socket options in use."""

from __future__ import annotations

import json
import socket
import threading
import time

import mlflow.pyfunc
import pytest
import uvicorn

from tcdeploy.server.replica import build_app, uvicorn_config
from tcdeploy.server.replica.inputs import RequestParser
from tcdeploy.server.replica.scoring import Scorer

from .replica_harness import free_port


@pytest.fixture(scope="module")
def magic_scorer(magic_model_dir):
    model = mlflow.pyfunc.load_model(str(magic_model_dir))
    parser = RequestParser(model.metadata.get_input_schema(), type_hint_signature=False, max_batch_rows=32)
    return Scorer(model, parser), parser


def request_for(parser, *xs: float, **extra):
    body = {"dataframe_split": {"columns": ["x"], "data": [[x] for x in xs]}, **extra}
    return parser.parse_json(json.dumps(body).encode())


def test_a_batch_is_split_back_per_request(magic_scorer):
    scorer, parser = magic_scorer
    requests = [request_for(parser, 1.0), request_for(parser, 2.0, 3.0, client_request_id="c")]
    assert requests[0].batch_key == requests[1].batch_key
    first, second = scorer.score(requests)
    assert json.loads(first.body) == {"predictions": [{"double": 2.0, "scaled": 1.0}]}
    assert json.loads(second.body) == {
        "predictions": [{"double": 4.0, "scaled": 2.0}, {"double": 6.0, "scaled": 3.0}],
        "client_request_id": "c",
    }


def test_a_failing_batch_is_retried_one_request_at_a_time(magic_scorer):
    scorer, parser = magic_scorer
    retried = scorer.batches_retried_alone
    outcomes = scorer.score([request_for(parser, x) for x in (1.0, 666.0, 4.0)])
    assert [outcome.status for outcome in outcomes] == [200, 500, 200]
    assert json.loads(outcomes[2].body)["predictions"] == [{"double": 8.0, "scaled": 4.0}]
    assert json.loads(outcomes[1].body)["error_code"] == "MODEL_ERROR"
    assert scorer.batches_retried_alone == retried + 1


def test_tcp_connections_have_nodelay(logistic_model_dir):
    app = build_app(mlflow.pyfunc.load_model(str(logistic_model_dir)))
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=free_port()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", server.config.port)) as client:
            client.sendall(b"GET /ping HTTP/1.1\r\nHost: replica\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
            (connection,) = server.server_state.connections
            server_socket = connection.transport.get_extra_info("socket")
            assert server_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.should_exit = True
        thread.join(30)
