"""Autoscaling under a tidal load: does the replica count follow the load, with no failed request?

    .venv/bin/python bench/autoscale.py                       # 120 s up, 30 s hold, 120 s down
    .venv/bin/python bench/autoscale.py --ramp-up 60 --hold 20 --ramp-down 60   # shorter

One `tcdeploy server` (loopback, its own data dir), one model that sleeps `--delay-ms` per call
(an MLflow pyfunc, `BatchConfig.MaxBatchSize` 1: a replica answers one request at a time, so a
replica's capacity is 1000/delay requests a second). Two runs of the same closed-loop load, from
1 to `--max-clients` concurrent clients (linearly over `--ramp-up` s), held, and back to 1 (over
`--ramp-down` s):

1. AUTO, `HorizontalPodAutoscaler` 1–4 replicas on `concurrency-util` `--target` (scale up at
   once, down after `--down-window` s), then 1 client until it is back to 1 replica;
2. the same ramp against a fixed single replica (MANUAL, `Replicas` 1).

Prints per 10 s: clients, requests/s, ready/desired replicas, p50/p99 latency, errors; then the
time to scale up (first 2nd replica ready; all 4 ready), the time to scale down (from the end of
the ramp to 1 replica), failed requests (target 0) and p99 during the ramp, AUTO against fixed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo: tests.support's model

from tcdeploy.server.background import BackgroundServer, free_port  # noqa: E402
from tests.support.cloudapi import call, common_client  # noqa: E402
from tests.support.slow_model import create_slow_service, save_slow_model, slow_body  # noqa: E402

WS = "default"
SECRET_ID = "AKIDtcdeploybench000000000000000"
SECRET_KEY = "tcdeploy-bench-secret-key-0123456789"


@dataclass
class Run:
    name: str
    started: float = 0.0
    requests: list[tuple[float, float, int]] = field(default_factory=list)  # (t, latency s, status)
    replicas: list[tuple[float, int, int]] = field(default_factory=list)  # (t, ready, desired)
    clients: list[tuple[float, int]] = field(default_factory=list)


def clients_at(t: float, args) -> int:
    """The offered load: 1 → max over the ramp up, held, max → 1 over the ramp down, then 1."""
    top = args.max_clients
    if t < args.ramp_up:
        return 1 + round((top - 1) * t / args.ramp_up)
    t -= args.ramp_up
    if t < args.hold:
        return top
    t -= args.hold
    if t < args.ramp_down:
        return top - round((top - 1) * t / args.ramp_down)
    return 1


async def drive(url: str, run: Run, args, until) -> None:
    """Closed-loop clients: worker i posts while i < clients_at(now); `until(t)` ends the run."""
    run.started = time.monotonic()

    async def worker(index: int, client: httpx.AsyncClient) -> None:
        while True:
            t = time.monotonic() - run.started
            if until(t):
                return
            if index >= clients_at(t, args):
                await asyncio.sleep(0.05)
                continue
            began = time.monotonic()
            try:
                status = (await client.post(url, json=slow_body())).status_code
            except httpx.HTTPError:
                status = 599  # no reply at all: counted as failed
            run.requests.append((began - run.started, time.monotonic() - began, status))

    limits = httpx.Limits(max_connections=args.max_clients + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        await asyncio.gather(*(worker(i, client) for i in range(args.max_clients)))


async def watch(wedata, service_id: str, run: Run, args, stop: asyncio.Event) -> None:
    while not stop.is_set():
        detail = await asyncio.to_thread(
            call, wedata, "GetMLModelService", {"WorkspaceId": WS, "ServiceId": service_id}
        )
        workload = detail["Data"]["WorkloadStatus"]
        t = time.monotonic() - run.started
        run.replicas.append((t, workload["ReadyReplicas"], workload["Replicas"]))
        run.clients.append((t, clients_at(t, args)))
        await asyncio.sleep(1.0)


async def one_run(server, wedata, model: Path, name: str, scaling: dict, args) -> Run:
    created = create_slow_service(wedata, name, model, WS, Replicas=1, **scaling)
    url = f"{server.url}/groups/{created['ServiceGroupId']}/predict"
    run = Run(name)
    ramp_end = args.ramp_up + args.hold + args.ramp_down
    auto = scaling.get("ScaleMode") == "AUTO"

    def until(t: float) -> bool:
        if t < ramp_end:
            return False
        if not auto:
            return True
        settled = run.replicas and run.replicas[-1][0] > ramp_end and run.replicas[-1][1:] == (1, 1)
        return bool(settled) or t > ramp_end + args.down_window + 90

    stop = asyncio.Event()
    watcher = asyncio.create_task(watch(wedata, created["ServiceId"], run, args, stop))
    run.started = time.monotonic()
    await drive(url, run, args, until)
    stop.set()
    await watcher
    call(wedata, "DeleteMLModelService", {"WorkspaceId": WS, "ServiceId": created["ServiceId"]})
    return run


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def table(run: Run, step: float) -> None:
    print(f"\n{run.name}: per {step:g} s")
    print(f"{'t (s)':>7} {'clients':>8} {'req/s':>7} {'ready/desired':>14} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7}")
    end = max((r[0] for r in run.requests), default=0.0)
    for start in range(0, int(end) + 1, int(step)):
        window = [r for r in run.requests if start <= r[0] < start + step]
        reps = [r for r in run.replicas if start <= r[0] < start + step]
        offered = max((c for t, c in run.clients if start <= t < start + step), default=0)
        counts = f"{max((r[1] for r in reps), default=0)}/{max((r[2] for r in reps), default=0)}"
        latencies = [r[1] for r in window]
        errors = sum(1 for r in window if r[2] != 200)
        print(
            f"{start:>7} {offered:>8} {len(window) / step:>7.1f} {counts:>14} "
            f"{ms(quantile(latencies, 0.5)):>7} {ms(quantile(latencies, 0.99)):>7} {errors:>7}"
        )


def first(points: list[tuple[float, int, int]], test, after: float = 0.0) -> float | None:
    return next((t for t, ready, desired in points if t >= after and test(ready, desired)), None)


def summary(auto: Run, fixed: Run, args) -> None:
    ramp_end = args.ramp_up + args.hold + args.ramp_down
    up_first = first(auto.replicas, lambda ready, _: ready >= 2)
    up_all = first(auto.replicas, lambda ready, _: ready >= 4)
    down = first(auto.replicas, lambda ready, desired: ready == 1 and desired == 1, after=ramp_end)
    in_ramp = [r[1] for r in auto.requests if r[0] < ramp_end]
    fixed_ramp = [r[1] for r in fixed.requests if r[0] < ramp_end]
    failed = {run.name: sum(1 for r in run.requests if r[2] != 200) for run in (auto, fixed)}
    print("\nsummary")
    print(f"  time to scale up: 2nd replica ready at {_s(up_first)}, all 4 ready at {_s(up_all)} after the ramp began")
    print(f"  time to scale down: back to 1 replica {_s(down and down - ramp_end)} after the ramp ended")
    print(f"  requests: AUTO {len(auto.requests)}, fixed {len(fixed.requests)}")
    print(f"  failed requests: AUTO {failed[auto.name]}, fixed {failed[fixed.name]} (target 0)")
    print(
        f"  p50 during the ramp: AUTO {ms(quantile(in_ramp, 0.5))} ms, fixed 1 replica {ms(quantile(fixed_ramp, 0.5))} ms"
    )
    print(
        f"  p99 during the ramp: AUTO {ms(quantile(in_ramp, 0.99))} ms, fixed 1 replica {ms(quantile(fixed_ramp, 0.99))} ms"
    )


def _s(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ramp-up", type=float, default=120.0, help="seconds from 1 to max clients")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds at max clients")
    parser.add_argument("--ramp-down", type=float, default=120.0, help="seconds from max back to 1 client")
    parser.add_argument("--max-clients", type=int, default=32)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="the model's time per call")
    parser.add_argument("--target", type=int, default=4, help="concurrency-util target (in flight per replica)")
    parser.add_argument("--down-window", type=int, default=30, help="ScaleDownStabilizationWindowSeconds")
    parser.add_argument("--step", type=float, default=10.0, help="seconds per table row")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tcdeploy-autoscale-"))
    model = save_slow_model(workdir / "model", delay_s=args.delay_ms / 1000)
    server = BackgroundServer(
        port=free_port(),
        data_dir=workdir / "data",
        tracking_uri=f"sqlite:///{workdir}/mlflow.db",
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
    ).start()
    hpa = {
        "ScaleMode": "AUTO",
        "ScaleStrategy": "HPA",
        "HorizontalPodAutoscaler": {
            "MinReplicas": 1,
            "MaxReplicas": 4,
            "HpaMetrics": [{"Name": "concurrency-util", "Value": args.target}],
            "ScaleUpStabilizationWindowSeconds": 0,
            "ScaleDownStabilizationWindowSeconds": args.down_window,
        },
    }
    try:
        wedata = common_client(server, "wedata")
        print(f"autoscale bench: {vars(args)}; server log {server.log_path}")
        auto = asyncio.run(one_run(server, wedata, model, "tidal-auto", hpa, args))
        table(auto, args.step)
        fixed = asyncio.run(one_run(server, wedata, model, "tidal-fixed", {}, args))
        table(fixed, args.step)
        summary(auto, fixed, args)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
