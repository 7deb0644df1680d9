"""Checks of the benchmark's own parts (run: .venv/bin/python -m pytest -q bench/test_bench.py).

Part of `make test`; wrk (installed by .ci/run) is needed for the load-generator check.
"""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from benchmodel import COLUMNS, predictions_in, request_body, synthetic_frame
from loadgen import LoadGenError, LoadResult, parse_wrk_output, run_wrk
from report import peer_table, peer_verdicts, table, verdicts

SAMPLE = (
    "Running 1s test @ http://127.0.0.1:1/\n  1 threads and 2 connections\n"
    'BENCH_JSON {"requests":200,"duration_us":2000000,"bytes":9000,'
    '"errors":{"connect":0,"read":1,"write":0,"status":3,"timeout":2},'
    '"latency_us":{"mean":1500.5,"p50":1200,"p75":1800,"p90":2500,"p99":9100,"max":12000}}\n'
)


def result(rps: float, p50: float = 10.0, p99: float = 20.0, non_2xx: int = 0) -> LoadResult:
    return LoadResult(
        requests=int(rps * 10),
        duration_s=10.0,
        rps=rps,
        p50_ms=p50,
        p75_ms=p50,
        p90_ms=p99,
        p99_ms=p99,
        max_ms=p99,
        mean_ms=p50,
        non_2xx=non_2xx,
        socket_errors=0,
        raw="",
    )


def test_wrk_figures_are_read_from_the_json_line():
    parsed = parse_wrk_output(SAMPLE)
    assert parsed.requests == 200 and parsed.rps == 100.0
    assert (parsed.p50_ms, parsed.p99_ms) == (1.2, 9.1)
    assert (parsed.non_2xx, parsed.socket_errors, parsed.errors) == (3, 3, 6)


def test_output_without_the_json_line_is_an_error_not_zeros():
    with pytest.raises(LoadGenError, match="BENCH_JSON"):
        parse_wrk_output("Running 1s test\n")


def test_targets_pass_fail_and_runs_with_errors_never_pass():
    results = {
        "mlflow": {(1, 32): result(100, p99=300), (1, 1): result(50, p50=13), (100, 8): result(60)},
        "tcdeploy": {(1, 32): result(350, p99=250), (1, 1): result(60, p50=14), (100, 8): result(200, non_2xx=5)},
    }
    found = {v.name: v.status for v in verdicts(results, {"mlflow": 500, "tcdeploy": 700})}
    assert found == {
        "1-row, c=32: throughput ≥ 3× mlflow": "PASS",
        "1-row, c=32: p99 ≤ mlflow's": "PASS",
        "1-row, c=1: p50 ≤ mlflow's": "FAIL",
        "100-row, c=8: throughput ≥ 1.5× mlflow": "INVALID",
        "peak PSS (server + 1 replica) ≤ 1.5× mlflow's": "PASS",
    }
    assert "tcdeploy: 5 non-2xx" in table(results, [(100, 8)])


def test_targets_not_measured_are_not_applicable():
    found = verdicts({"mlflow": {(1, 1): result(50)}}, {"mlflow": 500})
    assert {v.status for v in found} == {"N/A"}


def test_bodies_are_dataframe_split_with_the_signature_columns():
    frame, _ = synthetic_frame(20, seed=0)
    body = json.loads(request_body(frame, 3))
    assert body["dataframe_split"]["columns"] == COLUMNS
    assert len(body["dataframe_split"]["data"]) == 3
    with pytest.raises(ValueError, match="rows"):
        request_body(frame, 21)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        ok = self.rfile.read(length) == b'{"x": 1}' and self.headers.get("Authorization") == "tok"
        reply = b'{"predictions": [1]}'
        self.send_response(200 if ok and self.path == "/ok" else 500)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
@pytest.mark.parametrize("path, expect_errors", [("/ok", False), ("/fail", True)])
def test_wrk_sends_the_body_and_header_and_counts_error_replies(http_server, tmp_path: Path, path, expect_errors):
    body = tmp_path / "body.json"
    body.write_bytes(b'{"x": 1}')
    run = run_wrk(shutil.which("wrk"), http_server + path, body, concurrency=2, duration_s=1, authorization="tok")
    assert run.requests > 0
    assert (run.non_2xx == run.requests) if expect_errors else (run.errors == 0)


def test_bodies_of_every_form_hold_the_same_rows():
    frame, _ = synthetic_frame(10, 0)
    split = json.loads(request_body(frame, 3, "mlflow"))["dataframe_split"]
    v2 = json.loads(request_body(frame, 3, "v2"))
    bento = json.loads(request_body(frame, 3, "bentoml"))
    assert bento["data"] == split["data"]
    assert [item["name"] for item in v2["inputs"]] == COLUMNS == split["columns"]
    assert [list(row) for row in zip(*(item["data"] for item in v2["inputs"]))] == split["data"]
    assert predictions_in({"outputs": [{"data": [1, 0, 1]}]}, "v2") == [1, 0, 1]
    assert predictions_in([1, 0], "bentoml") == [1, 0]
    assert predictions_in({"predictions": [1]}, "mlflow") == [1]
    with pytest.raises(ValueError, match="form"):
        request_body(frame, 1, "xml")


def test_peer_verdicts_compare_ours_with_the_best_peer_of_each_case():
    cases = [(1, 1), (1, 32), (100, 32)]
    results = {
        "mlflow": {(1, 1): result(100, p50=10), (1, 32): result(60, p99=600), (100, 32): result(50)},
        "mlserver-batch": {(1, 1): result(70, p50=14), (1, 32): result(900, p99=120), (100, 32): result(800)},
        "tcdeploy": {(1, 1): result(130, p50=6.5), (1, 32): result(1400, p99=40), (100, 32): result(700)},
    }
    peak_pss = {"mlflow": 400 * 2**20, "tcdeploy": 500 * 2**20}
    startup = {"mlflow": {"launch_to_first_prediction": 5.0}, "tcdeploy": {"launch_to_first_prediction": 4.0}}
    notes = {"tcdeploy": {"pss_second_replica_bytes": 20 * 2**20}}
    found = {v.name: v for v in peer_verdicts(results, peak_pss, startup, notes, cases)}

    assert found["1 row(s), c=32: req/s ≥ every peer's"].status == "PASS"
    assert found["100 row(s), c=32: req/s ≥ every peer's"].status == "FAIL"
    assert "mlserver-batch" in found["100 row(s), c=32: req/s ≥ every peer's"].detail
    assert found["1-row, c=32: req/s ≥ 10× mlflow's"].status == "PASS"
    assert found["1-row, c=32: req/s ≥ 1.5× the best peer's"].status == "PASS"  # 1400 ≥ 1.5 × 900
    assert found["1-row, c=1: p50 ≤ 0.7× mlflow's"].status == "PASS"
    assert found["PSS, server + 1 replica ≤ 0.75× mlflow's"].status == "FAIL"
    assert found["PSS of a further replica ≤ 100 MiB"].status == "PASS"
    assert found["first replica: launch → first prediction ≤ 0.90× mlflow's"].status == "PASS"
    assert not any("within 1 s" in name for name in found)  # not measured: no verdict, not a made-up one
    lines = peer_table(results, cases, ["mlflow", "mlserver", "mlserver-batch", "tcdeploy"]).splitlines()
    assert "mlserver " not in lines[0] and "mlserver-batch" in lines[0]  # only servers measured
    assert lines[-2].split()[-2:] == ["(mlserver-batch)", "14.00×"]
