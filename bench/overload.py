"""Overload: 1,000 concurrent connections against one replica.

Starts `tcdeploy server` on its own temp data dir (request timeout `--timeout`), deploys one
replica of a model that takes `--predict-ms` per call, then opens `--connections` connections at
once, each sending one request, and measures: replies by status, the slowest reply, and the
server's RSS before, at its peak during the burst, and after. Then it checks the server still
serves.

Targets (issue 15): every request answered (a success or a fast refusal, 503 with Retry-After,
or a 504 at the deadline), none later than the request timeout plus a margin, none dropped; the
server's memory bounded (its peak RSS within `--max-rss-growth` of before). Exit status 0 when
they hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.resilience.resilience_helpers import (  # noqa: E402
    deploy,
    group_url,
    iris_body,
    kill_replicas,
    save_sentinel_model,  # noqa: E402
)
from tests.support.cloudapi import common_client  # noqa: E402
from tests.support.server import start_server  # noqa: E402

MARGIN_S = 10.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000, help="connections at once (1000)")
    parser.add_argument("--predict-ms", type=float, default=20.0, help="the model's time per call, ms (20)")
    parser.add_argument("--timeout", type=float, default=10.0, help="the server's request timeout, s (10)")
    parser.add_argument("--max-rss-growth", type=float, default=1.0, help="allowed peak RSS growth, ratio (1.0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="tcdeploy-overload-"))
    model = save_sentinel_model(workdir / "sentinel")
    env = {"TCDEPLOY_REQUEST_TIMEOUT": str(args.timeout)}
    server = start_server(workdir / "data", extra_env=env)
    try:
        svc = deploy(common_client(server, "wedata"), "overload", model)
        url = group_url(server, svc["ServiceGroupId"])
        process = psutil.Process(server.process.pid)
        httpx.post(url, content=iris_body(), timeout=30).raise_for_status()  # warm
        before = process.memory_info().rss
        peak = [before]
        stop = threading.Event()
        watcher = threading.Thread(target=_watch_rss, args=(process, peak, stop), daemon=True)
        watcher.start()
        started = time.monotonic()
        replies = asyncio.run(burst(url, args))
        took = time.monotonic() - started
        stop.set()
        watcher.join()
        after = process.memory_info().rss
        serving = httpx.post(url, content=iris_body(), timeout=30).status_code == 200
    finally:
        server.stop(signal.SIGTERM)
        kill_replicas(server.data_dir)
        shutil.rmtree(workdir, ignore_errors=True)
    return report(replies, took, before, max(peak), after, serving, args)


async def burst(url: str, args: argparse.Namespace) -> list[tuple[str, float]]:
    limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=0)
    body = iris_body(sleep_s=args.predict_ms / 1000)
    async with httpx.AsyncClient(limits=limits, timeout=args.timeout + 60) as client:

        async def one() -> tuple[str, float]:
            began = time.monotonic()
            try:
                reply = await client.post(url, content=body)
                status = str(reply.status_code)
                if reply.status_code == 503 and "retry-after" not in reply.headers:
                    status = "503 without Retry-After"
            except httpx.HTTPError as error:
                status = type(error).__name__
            return status, time.monotonic() - began

        return await asyncio.gather(*[one() for _ in range(args.connections)])


def _watch_rss(process: psutil.Process, peak: list[int], stop: threading.Event) -> None:
    while not stop.wait(0.05):
        peak[0] = max(peak[0], process.memory_info().rss)


def report(replies, took, before, peak, after, serving, args) -> int:
    counts = collections.Counter(status for status, _ in replies)
    slowest = collections.defaultdict(float)
    for status, seconds in replies:
        slowest[status] = max(slowest[status], seconds)
    mib = 2**20
    print(f"{args.connections} connections at once, one replica, {args.predict_ms:g} ms a predict, "
          f"request timeout {args.timeout:g} s; burst over in {took:.1f} s")  # fmt: skip
    for status, n in sorted(counts.items()):
        print(f"  {status:>24}: {n:5d}  slowest {slowest[status]:.2f} s")
    print(f"server RSS: {before / mib:.0f} MiB before, {peak / mib:.0f} MiB at peak, {after / mib:.0f} MiB after")
    print(f"serving after the burst: {serving}")
    answered = sum(n for status, n in counts.items() if status in ("200", "503", "504"))
    ok = (
        answered == len(replies)
        and max(s for _, s in replies) <= args.timeout + MARGIN_S
        and peak <= before * (1 + args.max_rss_growth)
        and serving
    )
    print("result: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
