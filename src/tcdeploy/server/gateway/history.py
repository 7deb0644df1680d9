"""Monitoring history: per-minute rollups of each series (a group, a service, a replica) in SQLite
under the data dir, for the monitoring actions and the console's charts beyond the last hour the
gateway's ring holds.

Bounded by age: minute rows are kept `minute_days` (at least 7 days), then compacted into 5-minute
rows kept `five_minute_days`; older rows are dropped. Compaction adds counts, keeps the most in
flight, averages CPU, memory and replica counts, weights p50 by requests and keeps the worst p99
(a quantile of merged minutes cannot be had from their quantiles: the worst is the honest bound).

Each server process writes rows of its own (the `writer` column): the ring it reads starts empty,
so the minute a restart falls in holds what the process before it served and what the new one
serves. Reads merge one minute's writers first: counts add, replica counts keep the most (a
restarted server's replicas are still starting while the old ones had been ready).
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MINUTE = 60
FIVE_MINUTES = 300
MAX_STEPS = 10_000
FIGURES = (
    "requests", "errors", "limited", "inflight", "p50_latency_ms", "p99_latency_ms",
    "bytes_in", "bytes_out", "cpu_percent", "memory_percent", "replicas", "ready_replicas",
)  # fmt: skip
# What the gateway's ring measures of a group's or a service's requests (the rest: of replicas).
TRAFFIC_FIGURES = FIGURES[:8]
_SUMMED = ("requests", "errors", "limited", "bytes_in", "bytes_out")
_MEAN = ("cpu_percent", "memory_percent", "replicas", "ready_replicas")
_MOST_IN_A_MINUTE = ("replicas", "ready_replicas")  # over one minute's writers


def group_series(group_id: str) -> str:
    return f"grp:{group_id}"


def service_series(service_id: str) -> str:
    return f"svc:{service_id}"


def replica_count_series(service_id: str) -> str:
    """A service's instance count and ready count."""
    return f"svc:{service_id}:replicas"


def pod_series_prefix(service_id: str) -> str:
    """Followed by the pod's name: one replica's CPU and memory."""
    return f"pod:{service_id}:"


def whole_minutes(step: float) -> bool:
    """Whether the history can answer steps of `step` seconds."""
    return math.isfinite(step) and step >= MINUTE and step % MINUTE == 0


@dataclass(frozen=True)
class Rollup:
    """One series' figures over one period starting at `time` (epoch seconds); None: not measured."""

    series: str
    time: int
    figures: dict[str, float | None]


class MetricsHistory:
    def __init__(
        self, path: Path, *, minute_days: float = 8, five_minute_days: float = 35, writer: int | None = None
    ) -> None:
        if minute_days < 7:
            raise ValueError(f"minute rollups must be kept at least 7 days, got {minute_days}")
        if five_minute_days < minute_days:
            raise ValueError("5-minute rollups must be kept at least as long as minute rollups")
        self.minute_days = minute_days
        self.five_minute_days = five_minute_days
        self.writer = time.time_ns() if writer is None else writer
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        columns = ", ".join(f"{name} REAL" for name in FIGURES)
        self._db.execute(
            f"CREATE TABLE IF NOT EXISTS rollups (series TEXT NOT NULL, period INTEGER NOT NULL, "
            f"time INTEGER NOT NULL, writer INTEGER NOT NULL, {columns}, PRIMARY KEY (series, period, time, writer))"
        )

    def close(self) -> None:
        self._db.close()

    def write(self, rollups: Iterable[Rollup]) -> None:
        """Store minute rollups (a minute this writer writes again replaces its first)."""
        names = ", ".join(FIGURES)
        marks = ", ".join("?" for _ in FIGURES)
        rows = [(r.series, MINUTE, r.time, self.writer, *(r.figures.get(name) for name in FIGURES)) for r in rollups]
        with self._db:
            self._db.executemany(
                f"INSERT OR REPLACE INTO rollups (series, period, time, writer, {names}) VALUES (?, ?, ?, ?, {marks})",
                rows,
            )

    def last_time(self) -> int | None:
        """The start of the newest minute stored, if any."""
        row = self._db.execute("SELECT MAX(time) FROM rollups WHERE period = ?", (MINUTE,)).fetchone()
        return row[0]

    def compact(self, now: float) -> None:
        """Fold minute rows past `minute_days` into 5-minute rows; drop rows past `five_minute_days`."""
        minute_cutoff = int(now - self.minute_days * 86400) // FIVE_MINUTES * FIVE_MINUTES
        aggregates = ", ".join(_aggregate(name) for name in FIGURES)
        with self._db:
            self._db.execute(
                f"INSERT OR REPLACE INTO rollups (series, period, time, writer, {', '.join(FIGURES)}) "
                f"SELECT series, ?, time - time % ?, 0, {aggregates} FROM ({_merged_writers('period = ? AND time < ?')}) "
                f"GROUP BY series, time - time % ?",
                (FIVE_MINUTES, FIVE_MINUTES, MINUTE, minute_cutoff, FIVE_MINUTES),
            )
            self._db.execute("DELETE FROM rollups WHERE period = ? AND time < ?", (MINUTE, minute_cutoff))
            self._db.execute("DELETE FROM rollups WHERE time < ?", (int(now - self.five_minute_days * 86400),))

    def steps(self, series: str, start: float, end: float, step: float) -> list[dict]:
        """The series over [start, end) in steps of `step` seconds on the epoch's grid (a step
        starts at a multiple of `step`): time plus every figure, only steps that hold a row."""
        if not (math.isfinite(start) and math.isfinite(end)) or end < start:
            raise ValueError(f"end ({end}) must not be before start ({start})")
        if not math.isfinite(step) or step < MINUTE or step % MINUTE:
            raise ValueError(f"step must be a whole number of minutes, got {step}")
        step = int(step)
        if (end - start) / step > MAX_STEPS:
            raise ValueError(f"the window holds over {MAX_STEPS} steps (raise the step)")
        aggregates = ", ".join(_aggregate(name) for name in FIGURES)
        rows = self._db.execute(
            f"SELECT time - time % ? AS bucket, {aggregates} "
            f"FROM ({_merged_writers('series = ? AND time >= ? AND time < ?')}) GROUP BY bucket ORDER BY bucket",
            (step, series, int(start) - int(start) % step, end),
        ).fetchall()
        return [{"time": float(row[0]), **dict(zip(FIGURES, row[1:]))} for row in rows]

    def series_like(self, prefix: str) -> list[str]:
        """The names of the series that start with `prefix` (a service's replicas)."""
        rows = self._db.execute(
            "SELECT DISTINCT series FROM rollups WHERE series >= ? AND series < ?", (prefix, prefix + "\uffff")
        )
        return [row[0] for row in rows]


def _merged_writers(where: str) -> str:
    """The rows that match `where`, one per series, period and time: its writers' rows merged (SQL)."""
    figures = ", ".join(f"{_aggregate(name, across_writers=True)} AS {name}" for name in FIGURES)
    return f"SELECT series, period, time, {figures} FROM rollups WHERE {where} GROUP BY series, period, time"


def _aggregate(name: str, *, across_writers: bool = False) -> str:
    """How rows of one figure merge into a longer period, or one period's writers (SQL)."""
    if across_writers and name in _MOST_IN_A_MINUTE:
        return f"MAX({name})"
    if name in _SUMMED:
        return f"SUM({name})"
    if name in _MEAN:
        return f"AVG({name})"
    if name == "p50_latency_ms":
        return (
            "SUM(p50_latency_ms * requests) / NULLIF(SUM(CASE WHEN p50_latency_ms IS NULL THEN 0 ELSE requests END), 0)"
        )
    return f"MAX({name})"  # inflight, p99
