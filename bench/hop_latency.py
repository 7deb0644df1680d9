"""Where one request's time goes at concurrency 1: bare sklearn, pyfunc, the replica over its unix
socket, and the whole path through the gateway (auth and inference table on) — and, beside them,
`mlflow models serve` with the same model and body.

Each round sends one request down every path in turn (the order rotating), so background load on a
shared machine falls on all paths alike; the differences of the medians are the cost of each layer.
The HTTP client's own cost is in both HTTP paths and cancels in their difference.

    .venv/bin/python bench/hop_latency.py --rounds 300 --rows 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
from benchmodel import request_body, train_bench_model
from procs import process_tree
from servers import mlflow_serve, tcdeploy_server

MLFLOW = "mlflow models serve"


def replica_socket(server_pid: int) -> str:
    """The unix socket the server's replica listens on, read from its command line."""
    for proc in process_tree(server_pid)[1:]:
        try:
            argv = proc.cmdline()
        except psutil.NoSuchProcess:
            continue
        if "--uds" in argv:
            return argv[argv.index("--uds") + 1]
    raise RuntimeError("no replica with a --uds socket under the server")


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def measure(paths: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    names = list(paths)
    for call in paths.values():  # warm every path once
        call()
    times: dict[str, list[float]] = {name: [] for name in names}
    for turn in range(rounds):
        shift = turn % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(paths[name]))
    return times


def expect_200(reply: httpx.Response) -> httpx.Response:
    if reply.status_code != 200:
        raise RuntimeError(f"{reply.status_code}: {reply.text[:300]}")
    return reply


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--instance-type", default="TI.S.MEDIUM.POST")
    args = parser.parse_args(argv)

    import mlflow.pyfunc

    with tempfile.TemporaryDirectory(prefix="tcdeploy-hop-") as tmp:
        workdir = Path(tmp)
        model = train_bench_model(workdir / "model", row_counts=(args.rows,))
        body = request_body(model.frame, args.rows)
        frame = model.frame.iloc[: args.rows]
        pyfunc = mlflow.pyfunc.load_model(str(model.path))
        sklearn_model = pyfunc.get_raw_model()
        with (
            tcdeploy_server(model.path, workdir, args.instance_type) as target,
            mlflow_serve(model.path, workdir) as anchor,
        ):
            headers = {"Content-Type": "application/json", "Authorization": target.authorization}
            gateway = httpx.Client(timeout=30)
            replica = httpx.Client(transport=httpx.HTTPTransport(uds=replica_socket(target.pid)), timeout=30)
            paths = {
                "sklearn predict": lambda: sklearn_model.predict(frame),
                "pyfunc predict": lambda: pyfunc.predict(frame),
                "replica over its socket": lambda: expect_200(
                    replica.post(
                        "http://replica/invocations", content=body, headers={"Content-Type": "application/json"}
                    )
                ),
                "gateway (auth + table)": lambda: expect_200(
                    gateway.post(target.predict_url, content=body, headers=headers)
                ),
                MLFLOW: lambda: expect_200(
                    gateway.post(anchor.predict_url, content=body, headers={"Content-Type": "application/json"})
                ),
            }
            times = measure(paths, args.rounds)
    report(times, args.rows, args.rounds)
    return 0


def report(times: dict[str, list[float]], rows: int, rounds: int) -> None:
    # p10 as well as p50: on a busy machine the low quantile is the run that was not preempted.
    cuts = {name: statistics.quantiles(values, n=10) for name, values in times.items()}
    p10 = {name: c[0] for name, c in cuts.items()}
    p50 = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{rows}-row requests, {rounds} rounds, concurrency 1 (ms):")
    for name in times:
        print(f"  {name:<26} p10 {p10[name]:7.2f}   p50 {p50[name]:7.2f}   p90 {cuts[name][-1]:7.2f}")
    print("cost of each layer (difference of p10 / of p50):")
    layers = [name for name in times if name != MLFLOW]
    for inner, outer in zip(layers, layers[1:]):
        print(f"  {outer:<26} adds {p10[outer] - p10[inner]:6.2f} / {p50[outer] - p50[inner]:6.2f} ms over {inner}")
    ours = layers[-1]
    print(f"{ours} / {MLFLOW}: p10 {p10[ours] / p10[MLFLOW]:.3f}×, p50 {p50[ours] / p50[MLFLOW]:.3f}×")


if __name__ == "__main__":
    sys.exit(main())
