"""Schedules: `CronScaleJobs` (under `ScaleStrategy: CRON`) and `ScheduledAction`'s stop.

Cron expressions are 5 fields, read by `croniter`, in the server's timezone (`--timezone`, UTC
unless set; the server prints it at start). The decisions are pure functions of the jobs, the
last time the service's schedules were looked at, and now; `Schedules.tick` applies them. The
last look is kept in the store with the service, so after a restart a schedule that fell due
while the server was down is applied once — the latest one — and none is replayed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from croniter import croniter

from tcdeploy.protocol.errors import InvalidParameterValue

log = logging.getLogger("tcdeploy.server")

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# How far back a job's runs are walked looking for one not excluded (a minutely job with a
# long excluded stretch gives up there rather than walk for ever).
_MAX_STEPS_BACK = 1000


def check_cron(expr: Any, field: str, *, dates: bool = False) -> None:
    """A 5-field cron expression (`dates`: or a date, YYYY-MM-DD), else refused naming `field`."""
    if isinstance(expr, str) and dates and _DATE.fullmatch(expr):
        return
    if not isinstance(expr, str) or len(expr.split()) != 5 or not croniter.is_valid(expr):
        extra = " or a date like 2026-10-01" if dates else ""
        raise InvalidParameterValue(field, f"{expr!r} is not a 5-field cron expression like '0 9 * * 1-5'{extra}")


def excluded(when: datetime, excludes: Iterable[str]) -> bool:
    """Whether a run at `when` (in the server's timezone) falls on an excluded date: a cron
    expression matching that minute, or that calendar date."""
    for exclude in excludes:
        if _DATE.fullmatch(exclude):
            if when.date().isoformat() == exclude:
                return True
        elif croniter.match(exclude, when):
            return True
    return False


def latest_run(schedule: str, excludes: Iterable[str], after: float, now: float, zone: tzinfo) -> datetime | None:
    """The latest run of `schedule` in (after, now] not on an excluded date, or None."""
    excludes = list(excludes)
    # croniter steps back from strictly before its start: a run at `now` itself counts.
    runs = croniter(schedule, datetime.fromtimestamp(now + 1, zone))
    candidate = runs.get_prev(datetime)
    for _ in range(_MAX_STEPS_BACK):
        if candidate.timestamp() <= after:
            return None
        if not excluded(candidate, excludes):
            return candidate
        candidate = runs.get_prev(datetime)
    return None


@dataclass(frozen=True)
class CronRun:
    job: dict[str, Any]
    when: datetime

    @property
    def name(self) -> str:
        return self.job.get("Name") or self.job["Schedule"]


def due_run(jobs: Iterable[dict[str, Any]], after: float, now: float, zone: tzinfo) -> CronRun | None:
    """Of all the jobs, the one run due in (after, now] that is latest: the only one to apply
    (an earlier one would be overridden by it at once)."""
    best: CronRun | None = None
    for job in jobs:
        when = latest_run(job["Schedule"], job.get("ExcludeDates") or [], after, now, zone)
        if when is not None and (best is None or when > best.when):
            best = CronRun(job, when)
    return best


def apply_run(job: dict[str, Any], current: int, bounds: dict[str, int]) -> tuple[int, dict[str, int]]:
    """What a job's run does: the new replica count and autoscaling bounds (`MinReplicas`,
    `MaxReplicas`, those a job gave). `TargetReplicas` sets the count; `MinReplicas` and
    `MaxReplicas` move the bounds and pull the count inside them."""
    bounds = {**bounds, **{k: job[k] for k in ("MinReplicas", "MaxReplicas") if job.get(k) is not None}}
    replicas = job.get("TargetReplicas")
    replicas = current if replicas is None else replicas
    replicas = max(replicas, bounds.get("MinReplicas", replicas))
    replicas = min(replicas, bounds.get("MaxReplicas", replicas))
    return replicas, bounds


def stop_due(spec: dict[str, Any], now: float, stop_time) -> float | None:
    """The stop time of a `ScheduledAction` that has come and not yet been acted on, else None."""
    action = spec.get("ScheduledAction") or {}
    if not action.get("ScheduleStop") or not action.get("ScheduleStopTime"):
        return None
    when = stop_time(action["ScheduleStopTime"])
    if when > now or spec.get("_StoppedAt") == when:
        return None
    return when
