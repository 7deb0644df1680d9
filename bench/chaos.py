"""Chaos under load: a steady stream of predictions while the service is changed and broken.

Starts `tcdeploy server` on its own temp data dir, deploys a group of two versions (auth and the
inference table on), and runs a steady load of concurrent `/predict` calls for `--duration`
seconds while it, in turn: rolls version 1 onto another model, shifts the weights, SIGKILLs a
replica, SIGSTOPs one (it hangs: its liveness probe must have it replaced), SIGKILLs the server
and starts it again on the same data dir, and fills the inference table's disk for a while (a
small tmpfs; as root only, else skipped), and sends a burst of 400 requests at once to another
group (one replica of a slow model), beside the steady load. Then it stops the server
cleanly and prints requests sent, succeeded and failed (by cause), inference-table rows against
acknowledged requests, and recovery times. The run is also written as JSON under bench/results/.

`--runtime ray` runs the same on the Ray runtime: a two-node cluster on this machine (dashboard
off, torn down by the processes it started), inside a network namespace with only loopback (the
script re-runs itself there with `unshare --net`; without the rights to, it stops and says so).
There the replicas outlive a killed server, which adopts them, and a clean stop leaves them
running for the next server: those two figures are the Ray runtime's, the rest are the same.

Targets: failed = 0 outside the window in which the server process itself is down, and no
answered request without its inference-table row (rows are journaled before the reply leaves,
so not even the killed server's last replies lose theirs); every request of the burst answered
(scored, a 503 with Retry-After, or a 504 at the deadline). Exit status: 0 when all hold, 1 otherwise, 130 on Ctrl-C. Every process it starts is stopped in
a `finally`, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
# The test suite's SDK clients, models and load driver (the `tests` package at the repo's top):
# the chaos run drives the service exactly as the resilience tests do, only for longer.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tcdeploy.server.gateway import read_inference_table  # noqa: E402
from tests.ray.ray_helpers import start_ray_server  # noqa: E402
from tests.resilience.resilience_helpers import (  # noqa: E402
    deploy,
    group_url,
    iris_body,
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
from tests.resilience.resilience_load import Call, Load  # noqa: E402
from tests.support.cloudapi import call, common_client, pod_facts  # noqa: E402
from tests.support.disks import fill  # noqa: E402
from tests.support.models import train_forest, train_logistic  # noqa: E402
from tests.support.server import BackgroundServer, start_server  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# When each disruption starts, as a share of the run (each waits for the one before to settle).
SCHEDULE = {
    "update": 0.10,
    "weights": 0.25,
    "replica_kill": 0.35,
    "replica_hang": 0.45,
    "server_kill": 0.60,
    "disk_full": 0.75,
    "overload": 0.85,
}
OVERLOAD_BURST = 400  # requests at once against a group of one replica, beside the steady load
DISK_FULL_FOR = 10.0  # s the inference table's filesystem stays full
DISK_SIZE = "256m"  # the tmpfs the data dir's inference folder is mounted on (root only)


@dataclass
class Timeline:
    """What happened when, in seconds since the load began (monotonic clock underneath)."""

    began: float
    events: list[dict] = field(default_factory=list)
    server_down: tuple[float, float] | None = None  # monotonic: killed .. healthy again
    killed_at: float | None = None
    flushed_before_kill: set[str] = field(default_factory=set)

    def at(self, share: float, duration: float) -> None:
        """Sleep until `share` of the run has passed (at once if it has)."""
        time.sleep(max(0.0, self.began + share * duration - time.monotonic()))

    def note(self, what: str, **figures) -> None:
        event = {"t": round(time.monotonic() - self.began, 1), "what": what, **figures}
        self.events.append(event)
        print(f"  {event['t']:7.1f} s  {what}  " + "  ".join(f"{k}={v}" for k, v in figures.items()), flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load (180)")
    parser.add_argument("--workers", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--pause", type=float, default=0.01, help="each client's pause between calls, s")
    parser.add_argument("--workdir", type=Path, help="keep models, data dir and logs here (default: temp)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--runtime", choices=("local", "ray"), default="local", help="where replicas run (local)")
    args = parser.parse_args(argv)
    if args.duration < 30 or args.workers < 1 or args.pause < 0:
        parser.error("--duration must be at least 30, --workers at least 1, --pause 0 or more")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.runtime == "ray" and not loopback_only():
        return rerun_in_loopback_namespace()
    signal.signal(signal.SIGTERM, _interrupt)  # a `finally` runs on SIGTERM as on Ctrl-C
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tcdeploy-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"chaos: {args.duration:g} s of load, {args.workers} clients; files in {workdir}", flush=True)
    server: BackgroundServer | None = None
    disk: Path | None = None
    cluster = None
    try:
        models = {
            "logistic": train_logistic(workdir / "logistic"),
            "forest": train_forest(workdir / "forest"),
            "sentinel": save_sentinel_model(workdir / "sentinel"),
        }
        disk = mount_small_disk(workdir / "data" / "inference")
        if args.runtime == "ray":
            cluster = start_cluster()
            server = start_ray_server(workdir / "data", cluster.address)
        else:
            server = start_server(workdir / "data")
        result = run(server, models, args, disk)
        result["runtime"] = args.runtime
        # A clean stop writes every row still buffered, and must leave no replica behind (on Ray:
        # every replica keeps running, for the next server to adopt).
        result["clean_stop_exit_code"] = server.stop(signal.SIGTERM)
        result["replicas_left_after_stop"] = len(replica_pids(replica_home(server)))
        result.update(table_figures(server, result.pop("calls"), result["group_id"], result.pop("timeline")))
    except KeyboardInterrupt:
        print(f"interrupted; files kept in {workdir}", file=sys.stderr)
        return 130
    finally:
        if server is not None:
            server.stop(signal.SIGKILL)
            kill_replicas(server.data_dir)
        if cluster is not None:
            cluster.shutdown()
        if disk is not None:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    result["pass"] = (
        result["pass"]
        and result["clean_stop_exit_code"] == 0
        and (result["replicas_left_after_stop"] == 0 or args.runtime == "ray")
        and result["overload"]["unanswered"] == 0
    )
    print_report(result)
    path = write_json(args.results_dir, result)
    print(f"\nwritten to {path}")
    if args.workdir is None and result["pass"]:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"models, data dir and server log kept in {workdir}")
    return 0 if result["pass"] else 1


def run(server: BackgroundServer, models: dict[str, Path], args: argparse.Namespace, disk: Path | None) -> dict:
    wedata, tione = common_client(server, "wedata"), common_client(server, "tione")
    v1 = deploy(
        wedata, "chaos-v1", models["logistic"], replicas=2, AuthorizationEnable=True, InferenceTablePushEnable=True
    )
    gid = v1["ServiceGroupId"]
    v2 = deploy(wedata, "chaos-v2", models["sentinel"], group_id=gid, InferenceTablePushEnable=True)
    ids = (v1["ServiceId"], v2["ServiceId"])
    set_weights(tione, gid, ids, (80, 20))
    other = deploy(wedata, "chaos-other", models["sentinel"])
    token = call(tione, "DescribeModelServiceCallInfo", {"ServiceGroupId": gid})["ServiceCallInfoV2"]["AuthToken"]
    load = Load(
        group_url(server, gid),
        varied_bodies,
        workers=args.workers,
        pause=args.pause,
        headers={"Authorization": token},
        timeout=60,
    )
    timeline = Timeline(began=time.monotonic())
    print("events (seconds since the load began):", flush=True)
    with load:
        roll_version(timeline, args.duration, wedata, ids[0], models["forest"])
        timeline.at(SCHEDULE["weights"], args.duration)
        set_weights(tione, gid, ids, (40, 60))
        timeline.note("weights 80/20 -> 40/60")
        kill_replica(timeline, args.duration, server, wedata, ids[0])
        hang_replica(timeline, args.duration, server, wedata, ids[0])
        kill_server(timeline, args.duration, server, wedata, ids, load)
        fill_disk(timeline, args.duration, disk)
        overload = overload_other(timeline, args.duration, group_url(server, other["ServiceGroupId"]))
        timeline.at(1.0, args.duration)
    timeline.note("load stopped")
    return {
        "group_id": gid,
        "duration_s": args.duration,
        "workers": args.workers,
        "events": timeline.events,
        "calls": load.calls,
        "timeline": timeline,
        "overload": overload,
    }


# ---- the Ray runtime -----------------------------------------------------------------------------


def loopback_only() -> bool:
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def rerun_in_loopback_namespace() -> int:
    """This script again, in a fresh network namespace with only loopback up (Ray binds every
    address it finds; there it finds only 127.0.0.1)."""
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        print("chaos --runtime ray: cannot create a network namespace here (needs root)", file=sys.stderr)
        return 2
    command = [sys.executable, *sys.argv]
    return subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]).returncode


def start_cluster():
    """A head and a worker on this machine, as the Ray tests run them."""
    from ray.cluster_utils import Cluster

    from tests.ray.ray_helpers import NODE

    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    return cluster


def on_ray(server: BackgroundServer) -> bool:
    return "ray" in server.extra_args


def replica_home(server: BackgroundServer) -> Path:
    """Where the server's replicas keep their pid files and sockets: its data dir, or on Ray the
    actors' directory of its namespace (the nodes are on this machine)."""
    if not on_ray(server):
        return server.data_dir
    from tcdeploy.server.runtime.ray_actor import actor_data_dir
    from tcdeploy.server.runtime.ray_runtime import RayOptions

    return actor_data_dir(RayOptions().namespace_for(server.data_dir))


def set_weights(tione, group_id: str, ids: tuple[str, str], weights: tuple[int, int]) -> None:
    call(
        tione,
        "ModifyServiceGroupWeights",
        {
            "ServiceGroupId": group_id,
            "Weights": [{"ServiceId": sid, "Weight": weight} for sid, weight in zip(ids, weights)],
        },
    )


def roll_version(timeline: Timeline, duration: float, wedata, service_id: str, model_dir: Path) -> None:
    timeline.at(SCHEDULE["update"], duration)
    started = time.monotonic()
    update(wedata, service_id, MlModelInfo={"ModelPath": str(model_dir)})
    wait_settled(wedata, service_id, ready=2)
    timeline.note("v1 rolled onto another model (2 replicas)", rolled_in_s=round(time.monotonic() - started, 1))


def kill_replica(timeline: Timeline, duration: float, server: BackgroundServer, wedata, service_id: str) -> None:
    timeline.at(SCHEDULE["replica_kill"], duration)
    victim = pod_facts(service(wedata, service_id))[0]
    os.kill(pod_pid(replica_home(server), victim["PodName"]), signal.SIGKILL)
    back_in = wait_replaced(wedata, service_id, victim)
    timeline.note(f"SIGKILL replica {victim['PodName']}", back_in_s=round(back_in, 1))


def hang_replica(timeline: Timeline, duration: float, server: BackgroundServer, wedata, service_id: str) -> None:
    """SIGSTOP a replica: alive, answering nothing, until its liveness probe has it replaced."""
    timeline.at(SCHEDULE["replica_hang"], duration)
    victim = pod_facts(service(wedata, service_id))[0]
    os.kill(pod_pid(replica_home(server), victim["PodName"]), signal.SIGSTOP)
    replaced_in = wait_replaced(wedata, service_id, victim)
    timeline.note(f"SIGSTOP replica {victim['PodName']}", replaced_in_s=round(replaced_in, 1))


def mount_small_disk(path: Path) -> Path | None:
    """A small tmpfs on the data dir's inference folder, to fill later; None (the fault skipped)
    where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},mode=0700", "tmpfs", str(path)])
    if mounted.returncode != 0:
        print("  (no full-disk fault: a filesystem cannot be mounted here without root)", flush=True)
        return None
    return path


def fill_disk(timeline: Timeline, duration: float, disk: Path | None) -> None:
    """Fill the inference table's filesystem for a while, then free it."""
    if disk is None:
        return
    timeline.at(SCHEDULE["disk_full"], duration)
    ballast = fill(disk)
    time.sleep(DISK_FULL_FOR)
    ballast.unlink()
    timeline.note(f"inference table's disk full for {DISK_FULL_FOR:g} s, then freed")


def overload_other(timeline: Timeline, duration: float, url: str) -> dict:
    """A burst of OVERLOAD_BURST requests at once against another group (one replica, a slow
    model): each must be answered (scored, a fast 503 with Retry-After, or a 504 at the
    deadline), and the steady load on the chaos group must not notice."""
    timeline.at(SCHEDULE["overload"], duration)

    async def burst() -> list[tuple[int | str, float]]:
        limits = httpx.Limits(max_connections=OVERLOAD_BURST, max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=120) as client:

            async def one() -> tuple[int | str, float]:
                began = time.monotonic()
                try:
                    reply = await client.post(url, content=iris_body(sleep_s=0.2))
                    ok = reply.status_code != 503 or reply.headers.get("retry-after")
                    return (reply.status_code if ok else "503 without Retry-After"), time.monotonic() - began
                except httpx.HTTPError as error:
                    return type(error).__name__, time.monotonic() - began

            return await asyncio.gather(*[one() for _ in range(OVERLOAD_BURST)])

    replies = asyncio.run(burst())
    counts = collections.Counter(str(status) for status, _ in replies)
    figures = {"by_status": dict(counts), "slowest_s": round(max(t for _, t in replies), 1)}
    timeline.note(f"burst of {OVERLOAD_BURST} at another group", **figures)
    figures["unanswered"] = sum(n for status, n in counts.items() if status not in ("200", "503", "504"))
    return figures


def kill_server(
    timeline: Timeline, duration: float, server: BackgroundServer, wedata, ids: tuple[str, str], load: Load
) -> None:
    timeline.at(SCHEDULE["server_kill"], duration)
    group_id = service(wedata, ids[0])["ServiceGroupId"]
    timeline.flushed_before_kill = set(read_inference_table(server.data_dir, group_id)["request_id"])
    old_replicas = set(replica_pids(replica_home(server)))
    killed = timeline.killed_at = time.monotonic()  # before the signal: clients see it at once
    server.stop(signal.SIGKILL)
    if on_ray(server):
        time.sleep(1.0)
        if set(replica_pids(replica_home(server))) != old_replicas:
            raise RuntimeError("replicas on Ray did not outlive their killed server")
    while not on_ray(server) and set(replica_pids(server.data_dir)) & old_replicas:
        if time.monotonic() - killed > 10:
            raise RuntimeError("replicas outlived their killed server")
        time.sleep(0.05)
    server.start()
    healthy = time.monotonic()
    timeline.server_down = (killed, healthy)
    for sid in ids:
        wait_settled(wedata, sid)
    ready = time.monotonic()
    first = first_answer_after(load, healthy)
    pods = sum(len(pod_facts(service(wedata, sid))) for sid in ids)
    timeline.note(
        "SIGKILL server, started again",
        flushed_rows_before=len(timeline.flushed_before_kill),
        healthy_in_s=round(healthy - killed, 1),
        all_ready_in_s=round(ready - killed, 1),
        serving_in_s=round(first - killed, 1) if first else None,
        replicas=f"{len(replica_pids(replica_home(server)))} running / {pods} pods",
        **({"adopted": len(old_replicas & set(replica_pids(replica_home(server))))} if on_ray(server) else {}),
    )


def first_answer_after(load: Load, since: float, wait: float = 30.0) -> float | None:
    """When the first call begun after `since` was answered (waiting up to `wait` s for one: on
    Ray the adopted replicas are ready as soon as the server is, before any such call has ended)."""
    deadline = time.monotonic() + wait
    while True:
        first = min((c.ended for c in load.calls if c.ok and c.started >= since), default=None)
        if first is not None or time.monotonic() > deadline:
            return first
        time.sleep(0.05)


def table_figures(server: BackgroundServer, calls: list[Call], group_id: str, timeline: Timeline) -> dict:
    """Requests by outcome, and the inference table against the requests that were answered."""
    down_start, down_end = timeline.server_down or (float("inf"), float("inf"))
    failed = [c for c in calls if not c.ok]
    while_down = [c for c in failed if c.status is None and c.ended >= down_start and c.started <= down_end]
    down_ids = {c.request_id for c in while_down}
    other = [c for c in failed if c.request_id not in down_ids]
    rows = list(read_inference_table(server.data_dir, group_id)["request_id"])
    on_disk = set(rows)
    acknowledged = [c for c in calls if c.ok]
    lost = rows_lost(calls, on_disk)
    lost_flushed = timeline.flushed_before_kill - on_disk
    figures = {
        "sent": len(calls),
        "succeeded": len(acknowledged),
        "failed": len(failed),
        "failed_server_down": len(while_down),
        "failed_other": len(other),
        "failed_other_examples": sorted({f"{c.status}: {c.detail[:120]}" for c in other})[:5],
        "server_down_s": round(down_end - down_start, 1) if timeline.server_down else None,
        "table_rows": len(rows),
        "duplicate_rows": len(rows) - len(on_disk),
        "acknowledged": len(acknowledged),
        "rows_lost_flushed": len(lost_flushed),
        "rows_lost": len(lost),
        "rows_without_reply": len(on_disk - {c.request_id for c in acknowledged}),
    }
    figures["pass"] = not other and not lost_flushed and not lost and figures["duplicate_rows"] == 0
    return figures


def print_report(result: dict) -> None:
    target_left = "all: Ray" if result.get("runtime") == "ray" else "0"
    lines = [
        "",
        "requests",
        f"  sent                                   {result['sent']:8d}",
        f"  succeeded                              {result['succeeded']:8d}",
        f"  failed                                 {result['failed']:8d}",
        f"    no connection, server down ({result['server_down_s']} s)   {result['failed_server_down']:8d}",
        f"    any other cause (target 0)           {result['failed_other']:8d}",
        *(f"      {example}" for example in result["failed_other_examples"]),
        "inference table",
        f"  acknowledged requests (200)            {result['acknowledged']:8d}",
        f"  rows                                   {result['table_rows']:8d}",
        f"  duplicate rows (target 0)              {result['duplicate_rows']:8d}",
        f"  rows lost that were flushed (target 0) {result['rows_lost_flushed']:8d}",
        f"  answered, no row (target 0)            {result['rows_lost']:8d}",
        f"  rows whose reply the client never saw  {result['rows_without_reply']:8d}  (answered as the server died)",
        f"burst of {OVERLOAD_BURST} at another group: {result['overload']['by_status']}, "
        f"slowest {result['overload']['slowest_s']} s, unanswered (target 0) {result['overload']['unanswered']}",
        "clean stop at the end",
        f"  server exit code                       {result['clean_stop_exit_code']:8d}",
        f"  replicas left running (target {target_left})       {result['replicas_left_after_stop']:8d}",
        "",
        "result: " + ("PASS" if result["pass"] else "FAIL"),
    ]
    print("\n".join(lines))


def write_json(directory: Path, result: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"chaos-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
