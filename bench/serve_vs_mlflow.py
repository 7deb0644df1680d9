"""Our model service beside its peers: same model, same load, one run, ratios.

Trains a RandomForest on 11 numeric features, serves it with `mlflow models serve` (default
workers), MLServer with mlserver-mlflow (defaults, and adaptive batching on its V2 endpoint),
BentoML (a batchable API) and `tcdeploy server` (one replica, auth and inference table on), drives
each with wrk at every (rows, concurrency) case, and prints req/s, p50 and p99 of all, the ratios,
memory (peak RSS and PSS of each tree), start-up times, and the targets of issues 4 and 14 with
PASS/FAIL. The run is also written as JSON under bench/results/. Exit status: 0 when every target
that was measured passes, 1 otherwise, 130 on Ctrl-C. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import os
import platform
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchmodel import BenchModel, request_body, train_bench_model
from cpumeter import CpuMeter, wait_until_idle
from loadgen import ensure_wrk, run_wrk
from peers import bentoml_serve, mlserver_serve
from profiling import find_py_spy, profiled
from report import (
    Case,
    Results,
    cpu_table,
    memory_lines,
    peer_table,
    peer_verdicts,
    pss_lines,
    results_record,
    table,
    verdict_lines,
    verdicts,
    write_json,
)
from servers import Target, check_replies, mlflow_serve, tcdeploy_server

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SERVERS = ("mlflow", "mlserver", "mlserver-batch", "bentoml", "tcdeploy")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=_positive_int, default=10, help="measured seconds per case (10)")
    parser.add_argument("--warmup", type=_non_negative_int, default=2, help="discarded seconds before each case (2)")
    parser.add_argument(
        "--only",
        type=_server_list,
        default=list(SERVERS),
        help=f"comma list of {', '.join(SERVERS)} ('both': mlflow,tcdeploy; default: all)",
    )
    parser.add_argument(
        "--lock-file",
        type=Path,
        help="hold an exclusive flock on this file while each server runs (a machine shared with other heavy jobs)",
    )
    parser.add_argument("--concurrency", type=_int_list, default=[1, 8, 32], help="comma list (1,8,32)")
    parser.add_argument("--rows", type=_int_list, default=[1, 100], help="rows per request, comma list (1,100)")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="run both servers at once and alternate case by case (steadier on a busy machine)",
    )
    parser.add_argument(
        "--wrk-threads",
        type=_positive_int,
        default=1,
        help="wrk threads (1: leaves the most CPU to the servers on a small machine)",
    )
    parser.add_argument("--timeout", type=_positive_int, default=10, help="wrk per-request timeout, s (10)")
    parser.add_argument("--n-estimators", type=_positive_int, default=100, help="trees in the forest (100)")
    parser.add_argument(
        "--instance-type",
        default="TI.S.MEDIUM.POST",
        help="tcdeploy instance type of the replica (TI.S.MEDIUM.POST: 2 CPU, 4 GiB)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=_positive_int,
        help="tcdeploy BatchConfig.MaxBatchSize (default: the service's own default)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="py-spy every server process during each measured run (needs py-spy)"
    )
    parser.add_argument("--workdir", type=Path, help="keep the model, logs and data here (default: a temp dir)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


def _server_list(text: str) -> list[str]:
    if text == "both":
        return ["mlflow", "tcdeploy"]
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown server(s) {unknown or text!r}: choose from {', '.join(SERVERS)}")
    return [name for name in SERVERS if name in names]


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}")
    return value


@contextlib.contextmanager
def working_dir(kept: Path | None) -> Iterator[Path]:
    if kept is not None:
        kept.mkdir(parents=True, exist_ok=True)
        yield kept.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="tcdeploy-bench-") as tmp:
        yield Path(tmp)


def _interrupt_on_sigterm(signum, frame) -> None:
    # A SIGTERM must unwind like Ctrl-C, so every `finally` stops the servers it started.
    raise KeyboardInterrupt


class Bench:
    """One run: the model, the bodies, and what each server measured."""

    def __init__(self, args: argparse.Namespace, wrk: str, model: BenchModel, workdir: Path, stamp: str) -> None:
        self.args, self.wrk, self.model, self.workdir = args, wrk, model, workdir
        self.py_spy = find_py_spy() if args.profile else None
        self.profile_dir = args.results_dir / f"profiles-{stamp}"
        self.cases: list[Case] = [(rows, conc) for rows in args.rows for conc in args.concurrency]
        self.bodies: dict[tuple[str, int], Path] = {}
        self.results: Results = {}
        self.cpu: dict[str, dict[Case, dict]] = {}
        self.warmup_requests: dict[str, int] = {}
        self.targets: dict[str, Target] = {}
        self.failures: dict[str, str] = {}

    def _body(self, form: str, rows: int) -> Path:
        """The same rows in each server's form, written once."""
        if (form, rows) not in self.bodies:
            path = self.bodies[form, rows] = self.workdir / f"body-{form}-{rows}.json"
            path.write_bytes(request_body(self.model.frame, rows, form))
        return self.bodies[form, rows]

    def _start(self, name: str) -> contextlib.AbstractContextManager[Target]:
        print(f"\n== {name}: starting", flush=True)
        if name == "mlflow":
            return mlflow_serve(self.model.path, self.workdir)
        if name in ("mlserver", "mlserver-batch"):
            return mlserver_serve(self.model.path, self.workdir, batching=name == "mlserver-batch")
        if name == "bentoml":
            return bentoml_serve(self.model.path, self.workdir)
        return tcdeploy_server(self.model.path, self.workdir, self.args.instance_type, self.args.max_batch_size)

    def run_one_after_the_other(self, names: tuple[str, ...]) -> None:
        """Each server alone on the machine: start, every case, stop; then the next."""
        for name in names:
            with self._guard(name), self._machine_lock():
                with self._start(name) as target:
                    self._ready(name, target)
                    for rows, conc in self.cases:
                        self._drive(name, target, rows, conc)
                    if target.after_load is not None:
                        target.after_load()
                        print(f"   after the load: {target.startup_s}", flush=True)

    @contextlib.contextmanager
    def _machine_lock(self) -> Iterator[None]:
        if self.args.lock_file is None:
            yield
            return
        with open(self.args.lock_file, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def run_interleaved(self, names: tuple[str, ...]) -> None:
        """Both servers up at once, taking turns case by case (A B, B A, ...), so background load
        that comes and goes on a shared machine falls on both alike. The idle one stays loaded in
        memory but takes next to no CPU; its peak RSS is still its own tree's."""
        with contextlib.ExitStack() as stack:
            targets: dict[str, Target] = {}
            for name in names:
                with self._guard(name):
                    targets[name] = stack.enter_context(self._start(name))
                    self._ready(name, targets[name])
            for turn, (rows, conc) in enumerate(self.cases):
                order = list(targets) if turn % 2 == 0 else list(reversed(targets))
                for name in order:
                    if name not in self.failures:
                        with self._guard(name):
                            print(f"   [{name}]", end="", flush=True)
                            self._drive(name, targets[name], rows, conc)

    def _ready(self, name: str, target: Target) -> None:
        print(f"   ready: {target.startup_s}", flush=True)
        self.results[name], self.cpu[name], self.warmup_requests[name] = {}, {}, 0
        self.targets[name] = target

    # Read from the targets when asked: the peak and the notes (table rows) grow until the stop.
    @property
    def peaks(self) -> dict[str, int]:
        return {name: target.memory.peak for name, target in self.targets.items()}

    @property
    def peaks_pss(self) -> dict[str, int]:
        return {name: target.memory.peak_pss for name, target in self.targets.items()}

    @property
    def startup(self) -> dict[str, dict]:
        return {name: target.startup_s for name, target in self.targets.items()}

    @property
    def notes(self) -> dict[str, dict]:
        return {name: target.notes for name, target in self.targets.items()}

    @contextlib.contextmanager
    def _guard(self, name: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - one server failing must not hide the other's figures
            self.failures[name] = f"{type(exc).__name__}: {exc}"
            print(f"   {name} failed: {exc}", file=sys.stderr, flush=True)

    def _drive(self, name: str, target: Target, rows: int, conc: int) -> None:
        body = self._body(target.form, rows)
        check_replies(target, body.read_bytes(), rows)
        self.warmup_requests[name] += 1
        common = dict(
            wrk=self.wrk,
            url=target.predict_url,
            body_file=body,
            concurrency=conc,
            threads=self.args.wrk_threads,
            authorization=target.authorization,
            timeout_s=self.args.timeout,
        )
        if self.args.warmup:
            wait_until_idle(target.pid)
            self.warmup_requests[name] += run_wrk(duration_s=self.args.warmup, **common).requests
        wait_until_idle(target.pid)
        with self._profiler(name, target, rows, conc), CpuMeter(target.pid) as meter:
            result = run_wrk(duration_s=self.args.duration, **common)
        self.results[name][(rows, conc)], self.cpu[name][(rows, conc)] = result, meter.result
        flag = f"  !! {result.non_2xx} non-2xx, {result.socket_errors} socket errors" if result.errors else ""
        other = 100 * meter.result["other_cpu_s"] / meter.result["wall_s"]
        print(
            f"   rows={rows:<4} c={conc:<3} {result.rps:8.1f} req/s  p50 {result.p50_ms:7.2f} ms"
            f"  p99 {result.p99_ms:7.2f} ms  (other load {other:.0f}% of a core){flag}",
            flush=True,
        )

    def _profiler(self, name: str, target: Target, rows: int, conc: int) -> contextlib.AbstractContextManager:
        if not self.py_spy:
            return contextlib.nullcontext()
        return profiled(self.py_spy, target.pid, self.args.duration, self.profile_dir, f"{name}-rows{rows}-c{conc}")

    def peer_verdicts(self) -> list:
        return peer_verdicts(self.results, self.peaks_pss, self.startup, self.notes, self.cases)

    def record(self, found: list, interrupted: bool) -> dict:
        return {
            "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "interrupted": interrupted,
            "machine": machine_info(self.wrk),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(self.args).items()},
            "model": self.model.describe(),
            "startup_s": self.startup,
            "peak_rss_bytes": self.peaks,
            "peak_pss_bytes": self.peaks_pss,
            "notes": self.notes,
            "failures": self.failures,
            "results": results_record(self.results),
            "cpu": results_record(self.cpu),
            "requests_outside_measured_runs": self.warmup_requests,
            "targets": [vars(v) for v in found],
            "peer_targets": [vars(v) for v in self.peer_verdicts()],
        }


def machine_info(wrk: str) -> dict:
    import mlflow
    import numpy
    import sklearn

    wrk_version = subprocess.run([wrk, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "mlflow": mlflow.__version__,
        "sklearn": sklearn.__version__,
        "numpy": numpy.__version__,
        "wrk": wrk_version.strip(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
    }


def print_report(bench: Bench, found: list) -> None:
    args, model = bench.args, bench.model
    mode = "interleaved case by case" if args.interleave else "one server after the other"
    print(
        f"\n== results ({mode}): {args.duration} s per case after {args.warmup} s warm-up, wrk -t{args.wrk_threads}; "
        f"RandomForest {model.n_estimators} trees, 11 features; in-process sklearn predict "
        + ", ".join(f"{rows} row(s) {ms} ms" for rows, ms in model.predict_ms.items())
    )
    print(table(bench.results, bench.cases))
    print("\nevery server (issue 14):")
    print(peer_table(bench.results, bench.cases, list(SERVERS)))
    print(cpu_table(bench.results, bench.cpu, bench.cases))
    if bench.peaks:
        print(memory_lines(bench.peaks))
        print(pss_lines(bench.peaks_pss, bench.notes))
    for name, notes in bench.notes.items():
        by_role = notes.get("ready_rss_by_role", {})
        shares = ", ".join(f"{role} {rss / 2**20:.0f} MiB" for role, rss in by_role.items())
        print(f"  {name} when ready, by process: {shares}")
        by_role = notes.get("ready_pss_by_role", {})
        print(
            f"  {name} PSS when ready, by process: " + ", ".join(f"{r} {b / 2**20:.0f} MiB" for r, b in by_role.items())
        )
    for name, timings in bench.startup.items():
        print(f"startup {name}: " + ", ".join(f"{k} {v} s" for k, v in timings.items()))
    rows = bench.notes.get("tcdeploy", {}).get("inference_table_rows")
    if rows is not None:
        sent = sum(r.requests for r in bench.results.get("tcdeploy", {}).values())
        sent += bench.warmup_requests.get("tcdeploy", 0)
        print(
            f"tcdeploy inference table rows after the clean stop: {rows} "
            f"(requests wrk saw answered, warm-ups included: {sent}; in-flight ones at each run's end add a few)"
        )
    for name, message in bench.failures.items():
        print(f"FAILED {name}: {message.splitlines()[0]}")
    print("targets (issue 4, ratios to mlflow models serve in this run):")
    print(verdict_lines(found))
    print("targets (issue 14, ratios to the peers in this run):")
    print(verdict_lines(bench.peer_verdicts()))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    if args.profile and not find_py_spy():
        print("--profile needs py-spy: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    wrk = ensure_wrk()
    servers = tuple(args.only)
    interrupted = False
    with working_dir(args.workdir) as workdir:
        print(f"training the benchmark model ({args.n_estimators} trees) in {workdir}", flush=True)
        model = train_bench_model(workdir / "model", n_estimators=args.n_estimators, row_counts=tuple(args.rows))
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        bench = Bench(args, wrk, model, workdir, stamp)
        try:
            if args.interleave:
                bench.run_interleaved(servers)
            else:
                bench.run_one_after_the_other(servers)
        except KeyboardInterrupt:
            interrupted = True
            print("\ninterrupted: every server started was stopped", file=sys.stderr)
        found = verdicts(bench.results, bench.peaks_pss)
        print_report(bench, found)
        if bench.py_spy:
            print(f"profiles (collapsed stacks and summaries) in {bench.profile_dir}")
        path = write_json(args.results_dir / f"serve_vs_mlflow-{stamp}.json", bench.record(found, interrupted))
        print(f"results written to {path}")
    if interrupted:
        return 130
    measured = [v for v in found + bench.peer_verdicts() if v.status != "N/A"]
    return 0 if not bench.failures and all(v.passed for v in measured) else 1


if __name__ == "__main__":
    sys.exit(main())
