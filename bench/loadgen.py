"""Drive an HTTP endpoint with wrk: fixed POST body, closed loop, figures read from a JSON line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).with_name("post.lua")
JSON_MARKER = "BENCH_JSON "


class LoadGenError(RuntimeError):
    """wrk is missing or its run could not be read."""


@dataclass(frozen=True)
class LoadResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    non_2xx: int
    socket_errors: int
    raw: str

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    def to_dict(self) -> dict:
        return asdict(self)


def ensure_wrk() -> str:
    """Path of `wrk`, installing the Debian package when missing and running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise LoadGenError("wrk is not installed: install it (Debian/Ubuntu: `apt-get install -y wrk`)")
    print("wrk not found: installing the Debian package", flush=True)
    install = ["apt-get", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)
        subprocess.run(install, capture_output=True, check=False)
    found = shutil.which("wrk")
    if not found:
        raise LoadGenError("could not install wrk with apt-get; install it and run again")
    return found


def run_wrk(
    wrk: str,
    url: str,
    body_file: Path,
    concurrency: int,
    duration_s: float,
    threads: int = 1,
    authorization: str = "",
    timeout_s: float = 10.0,
) -> LoadResult:
    """One closed-loop wrk run: `concurrency` connections, each sending the body back to back."""
    threads = max(1, min(threads, concurrency))
    command = [
        wrk,
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(duration_s))}s",
        f"--timeout={max(1, round(timeout_s))}s",
        "--latency",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        str(body_file),
        authorization,
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=duration_s + timeout_s + 30)
    if completed.returncode != 0:
        raise LoadGenError(f"wrk exited with {completed.returncode}: {completed.stderr.strip()[-500:]}")
    return parse_wrk_output(completed.stdout)


def parse_wrk_output(stdout: str) -> LoadResult:
    """Figures from the JSON line post.lua's `done` prints (latencies in microseconds)."""
    line = next((text for text in stdout.splitlines() if text.startswith(JSON_MARKER)), None)
    if line is None:
        raise LoadGenError(f"wrk printed no {JSON_MARKER.strip()} line:\n{stdout[-1000:]}")
    figures = json.loads(line[len(JSON_MARKER) :])
    latency, errors = figures["latency_us"], figures["errors"]
    duration_s = figures["duration_us"] / 1e6
    return LoadResult(
        requests=figures["requests"],
        duration_s=round(duration_s, 3),
        rps=round(figures["requests"] / duration_s, 1) if duration_s else 0.0,
        p50_ms=latency["p50"] / 1000,
        p75_ms=latency["p75"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        mean_ms=round(latency["mean"] / 1000, 3),
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        raw=stdout,
    )
