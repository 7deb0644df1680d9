"""Soak: a steady moderate load for a long time, with a change every few minutes.

Starts `tcdeploy server` on its own temp data dir, deploys a group of two versions (auth and the
inference table on), and runs `--workers` clients for `--duration` seconds (30 minutes by
default). Every `--every` seconds it makes the next change in turn: a rolling update of version
1 onto the other model, a weight change, a SIGKILL of one replica. Every `--sample` seconds it
records the RSS and open file descriptors of the server and of each replica. At the end it stops
the server cleanly and prints the samples, failed requests by cause, and inference-table rows
against acknowledged requests.

Targets (issue 15): 0 failed requests, the server's RSS grows at most 10% from the end of the
warm-up (the first quarter of the run) to the end, its open file descriptors do not grow, and
every acknowledged request has its row. Exit status 0 when all hold, 1 otherwise, 130 on Ctrl-C.
The run is also written as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from chaos import set_weights  # noqa: E402  (a sibling script: bench/ is on sys.path)

from tcdeploy.server.gateway import read_inference_table  # noqa: E402
from tests.resilience.resilience_helpers import (  # noqa: E402
    deploy,
    group_url,
    kill_replicas,
    pod_pid,
    replica_pids,
    rows_lost,
    save_sentinel_model,
    service,
    update,
    varied_bodies,
    wait_replaced,
    wait_settled,
)
from tests.resilience.resilience_load import Load  # noqa: E402
from tests.support.cloudapi import call, common_client, pod_facts  # noqa: E402
from tests.support.models import train_forest, train_logistic  # noqa: E402
from tests.support.server import BackgroundServer, start_server  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MAX_RSS_GROWTH = 0.10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds of load (1800)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--pause", type=float, default=0.02, help="each client's pause between calls, s (0.02)")
    parser.add_argument("--every", type=float, default=180.0, help="seconds between changes (180)")
    parser.add_argument("--sample", type=float, default=30.0, help="seconds between samples (30)")
    parser.add_argument("--workdir", type=Path, help="keep models, data dir and logs here (default: temp)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.duration < 60 or args.workers < 1 or args.every < 20 or args.sample < 1:
        parser.error("--duration at least 60, --workers at least 1, --every at least 20, --sample at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tcdeploy-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"soak: {args.duration:g} s, {args.workers} clients, a change every {args.every:g} s; files in {workdir}")
    server: BackgroundServer | None = None
    try:
        models = {
            "logistic": train_logistic(workdir / "logistic"),
            "forest": train_forest(workdir / "forest"),
            "sentinel": save_sentinel_model(workdir / "sentinel"),
        }
        server = start_server(workdir / "data")
        result = run(server, models, args)
        result["clean_stop_exit_code"] = server.stop(signal.SIGTERM)
        result["replicas_left_after_stop"] = len(replica_pids(server.data_dir))
        result.update(outcome(server, result))
    except KeyboardInterrupt:
        print(f"interrupted; files kept in {workdir}", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop(signal.SIGKILL)
            kill_replicas(server.data_dir)
    print_report(result)
    path = write_json(args.results_dir, result)
    print(f"\nwritten to {path}")
    if args.workdir is None and result["pass"]:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"models, data dir and server log kept in {workdir}")
    return 0 if result["pass"] else 1


def run(server: BackgroundServer, models: dict[str, Path], args: argparse.Namespace) -> dict:
    wedata, tione = common_client(server, "wedata"), common_client(server, "tione")
    v1 = deploy(
        wedata, "soak-v1", models["logistic"], replicas=2, AuthorizationEnable=True, InferenceTablePushEnable=True
    )
    gid = v1["ServiceGroupId"]
    v2 = deploy(wedata, "soak-v2", models["sentinel"], group_id=gid, InferenceTablePushEnable=True)
    ids = (v1["ServiceId"], v2["ServiceId"])
    set_weights(tione, gid, ids, (80, 20))
    token = call(tione, "DescribeModelServiceCallInfo", {"ServiceGroupId": gid})["ServiceCallInfoV2"]["AuthToken"]
    load = Load(group_url(server, gid), varied_bodies, workers=args.workers, pause=args.pause,
                headers={"Authorization": token}, timeout=60)  # fmt: skip
    samples: list[dict] = []
    stop = threading.Event()
    began = time.monotonic()
    sampler = threading.Thread(target=_sample_every, args=(server, args.sample, began, samples, stop), daemon=True)
    changes = itertools.cycle([
        lambda: roll(wedata, ids[0], models, samples),
        lambda: shift(tione, gid, ids),
        lambda: kill_one(server, wedata, ids[0]),
    ])  # fmt: skip
    events = []
    with load:
        sampler.start()
        while time.monotonic() - began + args.every <= args.duration:
            time.sleep(max(0.0, began + (len(events) + 1) * args.every - time.monotonic()))
            what = next(changes)()
            events.append({"t": round(time.monotonic() - began, 1), "what": what})
            print(f"  {events[-1]['t']:7.1f} s  {what}  ({len(load.calls)} calls so far)", flush=True)
        time.sleep(max(0.0, began + args.duration - time.monotonic()))
    stop.set()
    sampler.join()
    return {"group_id": gid, "duration_s": args.duration, "workers": args.workers, "events": events,
            "samples": samples, "calls": load.calls}  # fmt: skip


_current_model = {"name": "logistic"}


def roll(wedata, service_id: str, models: dict[str, Path], samples: list[dict]) -> str:
    target = "forest" if _current_model["name"] == "logistic" else "logistic"
    started = time.monotonic()
    update(wedata, service_id, MlModelInfo={"ModelPath": str(models[target])})
    wait_settled(wedata, service_id, ready=2)
    _current_model["name"] = target
    return f"v1 rolled onto {target} in {time.monotonic() - started:.1f} s"


def shift(tione, group_id: str, ids: tuple[str, str]) -> str:
    weights = (40, 60) if shift.flip else (80, 20)
    shift.flip = not shift.flip
    set_weights(tione, group_id, ids, weights)
    return f"weights -> {weights[0]}/{weights[1]}"


shift.flip = True


def kill_one(server: BackgroundServer, wedata, service_id: str) -> str:
    victim = pod_facts(service(wedata, service_id))[0]
    os.kill(pod_pid(server.data_dir, victim["PodName"]), signal.SIGKILL)
    return f"SIGKILL replica {victim['PodName']}, ready again in {wait_replaced(wedata, service_id, victim):.1f} s"


def _sample_every(server: BackgroundServer, every: float, began: float, samples: list[dict], stop) -> None:
    while not stop.wait(every if samples else 0):
        samples.append(sample(server, round(time.monotonic() - began, 1)))


def sample(server: BackgroundServer, t: float) -> dict:
    """RSS (MiB) and open fds of the server and of each replica (by pod name)."""
    figures = {"t": t, "server": _figures(psutil.Process(server.process.pid)), "replicas": {}}
    for pid, pod in replica_pids(server.data_dir).items():
        try:
            figures["replicas"][pod] = _figures(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return figures


def _figures(process: psutil.Process) -> dict:
    with process.oneshot():
        return {"rss_mib": round(process.memory_info().rss / 2**20, 1), "fds": process.num_fds()}


def outcome(server: BackgroundServer, result: dict) -> dict:
    calls = result.pop("calls")
    failed = [c for c in calls if not c.ok]
    causes: dict[str, int] = {}
    for c in failed:
        key = f"{c.status}: {c.detail[:80]}"
        causes[key] = causes.get(key, 0) + 1
    rows = list(read_inference_table(server.data_dir, result["group_id"])["request_id"])
    samples = result["samples"]
    warm = samples[max(0, len(samples) // 4)]["server"] if samples else None
    last = samples[-1]["server"] if samples else None
    growth = (last["rss_mib"] - warm["rss_mib"]) / warm["rss_mib"] if warm else 0.0
    figures = {
        "sent": len(calls),
        "failed": len(failed),
        "failed_by_cause": causes,
        "table_rows": len(rows),
        "duplicate_rows": len(rows) - len(set(rows)),
        "answered_without_row": len(rows_lost(calls, set(rows))),
        "server_rss_growth_after_warmup": round(growth, 3),
        "server_fd_growth_after_warmup": (last["fds"] - warm["fds"]) if warm else 0,
    }
    figures["pass"] = (
        not failed
        and not figures["duplicate_rows"]
        and not figures["answered_without_row"]
        and growth <= MAX_RSS_GROWTH
        and figures["server_fd_growth_after_warmup"] <= 0
        and result["clean_stop_exit_code"] == 0
        and result["replicas_left_after_stop"] == 0
    )
    return figures


def print_report(result: dict) -> None:
    print("\nsamples (t s: server RSS MiB / fds | replicas RSS MiB / fds)")
    for s in result["samples"]:
        replicas = "  ".join(f"{r['rss_mib']:.0f}/{r['fds']}" for r in s["replicas"].values())
        print(f"  {s['t']:7.1f}: {s['server']['rss_mib']:6.1f} / {s['server']['fds']:3d} | {replicas}")
    print(
        f"\nrequests: {result['sent']} sent, {result['failed']} failed (target 0)"
        + "".join(f"\n  {n:6d}  {cause}" for cause, n in result["failed_by_cause"].items())
    )
    print(f"inference table: {result['table_rows']} rows, {result['duplicate_rows']} duplicated (target 0), "
          f"{result['answered_without_row']} answered without a row (target 0)")  # fmt: skip
    print(f"server after warm-up: RSS {result['server_rss_growth_after_warmup']:+.1%} (target <= +10%), "
          f"fds {result['server_fd_growth_after_warmup']:+d} (target <= 0)")  # fmt: skip
    print(f"clean stop: exit {result['clean_stop_exit_code']}, {result['replicas_left_after_stop']} replicas left")
    print("result: " + ("PASS" if result["pass"] else "FAIL"))


def write_json(directory: Path, result: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"soak-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
