"""The process contract: startup lines, exit codes, graceful SIGTERM, TCP, body limit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from tcdeploy.server.replica import __main__ as replica_main

from .replica_harness import (
    Replica,
    free_port,
    launch,
    running_replica,
    short_socket_path,
    split_body,
    stop,
    wait_ready,
)

EXIT_MODEL_LOAD_FAILED = 3
EXIT_CANNOT_LISTEN = 4


def run_to_exit(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tcdeploy.server.replica", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("model", ["empty-dir", "no-such-path"])
def test_unloadable_model_exits_3_with_a_reason(tmp_path, model):
    model_path = tmp_path / model
    if model == "empty-dir":
        model_path.mkdir()
    result = run_to_exit("--model-uri", str(model_path), "--uds", short_socket_path())
    assert result.returncode == EXIT_MODEL_LOAD_FAILED, result.stderr
    assert f"cannot load model '{model_path}'" in result.stderr
    assert "Traceback" not in result.stderr
    assert "serving on" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--model-uri", "/m", "--uds", "/tmp/x.sock", "--port", "5000"],
        ["--model-uri", "/m", "--max-batch-size", "0"],
        ["--model-uri", "/m", "--max-batch-wait-ms", "-1"],
        ["--model-uri", "/m", "--port", "70000"],
    ],
)
def test_bad_arguments_exit_2(args, capsys):
    with pytest.raises(SystemExit) as exited:
        replica_main.main(args)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_bad_arguments_exit_2_from_the_command_line():
    result = run_to_exit("--model-uri", "/m", "--max-batch-size", "zero", timeout=60)
    assert result.returncode == 2
    assert "--max-batch-size" in result.stderr


def test_startup_lines_and_sigterm_finishes_in_flight_request(magic_model_dir, tmp_path):
    uds = short_socket_path()
    process = launch(magic_model_dir, tmp_path, "--uds", uds)
    replica = Replica(process, tmp_path, uds, None)
    try:
        wait_ready(replica)
        stdout = replica.stdout()
        assert "model loaded in " in stdout and f"serving on unix:{uds}" in stdout
        replies = []
        body = {"dataframe_split": {"columns": ["x"], "data": [[2.0]]}, "params": {"sleep_s": 1.5}}

        def slow_request():
            with replica.client() as client:
                replies.append(client.post("/predict", json=body))

        worker = threading.Thread(target=slow_request)
        worker.start()
        wait_for_in_flight(replica)
        process.send_signal(signal.SIGTERM)
        worker.join(30)
        assert process.wait(30) == 0, replica.stderr()
    finally:
        stop(process)
    assert replies and replies[0].status_code == 200, replies
    assert replies[0].json()["predictions"] == [{"double": 4.0, "scaled": 2.0}]
    assert not os.path.exists(uds)


def wait_for_in_flight(replica: Replica) -> None:
    deadline = time.monotonic() + 10
    with replica.client() as client:
        while client.get("/stats").json()["in_flight"] == 0:
            assert time.monotonic() < deadline, "the slow request never arrived"
            time.sleep(0.02)


def test_stale_socket_file_is_replaced_and_sigterm_when_idle_exits_0(forest_model_dir, tmp_path):
    uds = short_socket_path()
    with socket.socket(socket.AF_UNIX) as stale:  # what a killed replica leaves behind
        stale.bind(uds)
    process = launch(forest_model_dir, tmp_path, "--uds", uds)
    try:
        wait_ready(Replica(process, tmp_path, uds, None))
    finally:
        assert stop(process) == 0
    assert not os.path.exists(uds)


def test_tcp_serving_and_body_limit(forest_model_dir, iris, tmp_path):
    with running_replica(forest_model_dir, tmp_path, "--max-body-mb", "0.01", tcp=True) as replica:
        assert f"serving on http://127.0.0.1:{replica.port}" in replica.stdout()
        frame = pd.concat([iris[0]] * 5, ignore_index=True)
        with replica.client() as client:
            small = client.post("/predict", json=split_body(frame.head(3)))
            assert small.status_code == 200, small.text
            large = client.post("/predict", json=split_body(frame))  # ~ 17 KB > 10.24 KB
            assert large.status_code == 400
            assert "larger than the limit of 10485 bytes" in large.json()["message"]
            # The connection stays usable after a refused body.
            assert client.post("/predict", json=split_body(frame.head(3))).status_code == 200


def test_port_in_use_exits_4_with_a_reason(forest_model_dir, tmp_path):
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        process = launch(forest_model_dir, tmp_path, "--host", "127.0.0.1", "--port", str(port))
        try:
            code = process.wait(120)
        finally:
            stop(process)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert code == EXIT_CANNOT_LISTEN
    assert f"cannot listen on 127.0.0.1:{port}" in stderr and "Traceback" not in stderr
