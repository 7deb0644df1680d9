"""Where the CPU went during one measured run: the server's processes by role, wrk, and the rest
of the machine (other people's work on a shared box, which makes a run noisy)."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

import psutil
from procs import process_tree, pss


def role_of(proc: psutil.Process, root_pid: int) -> str:
    """A short name for a process of a server's tree: what a profile of the run would talk about."""
    if proc.pid == root_pid:
        return "server"
    try:
        cmdline = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "gone"
    if "tcdeploy.server.replica.zygote" in cmdline:
        return "zygote"
    if "tcdeploy.server.replica" in cmdline:
        return "replica"
    if "uvicorn" in cmdline:
        return "uvicorn"
    return proc.name()


@dataclass(frozen=True)
class Snapshot:
    at: float
    machine_busy_s: float
    reaped_children_s: float  # our finished children: the wrk runs
    by_pid: dict[int, tuple[str, float]]


def snapshot(root_pid: int) -> Snapshot:
    times = psutil.cpu_times()
    busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    by_pid = {}
    for proc in process_tree(root_pid):
        try:
            cpu = proc.cpu_times()
            by_pid[proc.pid] = (role_of(proc, root_pid), cpu.user + cpu.system)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return Snapshot(time.monotonic(), busy, usage.ru_utime + usage.ru_stime, by_pid)


class CpuMeter:
    """CPU seconds by role between enter and exit; `result` holds them once the block ends."""

    def __init__(self, root_pid: int) -> None:
        self.root_pid = root_pid
        self.result: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._start = snapshot(self.root_pid)
        return self

    def __exit__(self, *exc) -> None:
        end = snapshot(self.root_pid)
        by_role: dict[str, float] = {}
        for pid, (role, cpu_s) in end.by_pid.items():
            before = self._start.by_pid.get(pid, (role, 0.0))[1]
            by_role[role] = by_role.get(role, 0.0) + max(0.0, cpu_s - before)
        wrk_s = end.reaped_children_s - self._start.reaped_children_s
        busy_s = end.machine_busy_s - self._start.machine_busy_s
        ours_s = sum(by_role.values()) + wrk_s
        self.result = {
            "wall_s": round(end.at - self._start.at, 3),
            **{f"{role}_cpu_s": round(value, 3) for role, value in sorted(by_role.items())},
            "wrk_cpu_s": round(wrk_s, 3),
            # The bench driver itself (sampler thread, this meter) shows up here too; it is small.
            "other_cpu_s": round(max(0.0, busy_s - ours_s), 3),
        }


def tree_cpu_s(root_pid: int) -> float:
    total = 0.0
    for proc in process_tree(root_pid):
        try:
            cpu = proc.cpu_times()
            total += cpu.user + cpu.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def wait_until_idle(root_pid: int, max_share: float = 0.15, window_s: float = 0.5, timeout_s: float = 60.0) -> float:
    """Wait until the server's tree uses under `max_share` of a core; seconds waited.

    wrk abandons its in-flight requests when a run ends, but the server still computes them: a
    backlog left by one run would otherwise eat into the next run's measured window.
    """
    started = time.monotonic()
    before = tree_cpu_s(root_pid)
    while time.monotonic() - started < timeout_s:
        time.sleep(window_s)
        after = tree_cpu_s(root_pid)
        if after - before < max_share * window_s:
            break
        before = after
    return time.monotonic() - started


def rss_by_role(root_pid: int) -> dict[str, int]:
    """Resident bytes of a server's tree, by process role (where the memory sits)."""
    return _by_role(root_pid, lambda proc: proc.memory_info().rss)


def pss_by_role(root_pid: int) -> dict[str, int]:
    """Proportional set size of a server's tree, by process role: pages shared by a zygote and
    its replicas count once in all, split between them."""
    return _by_role(root_pid, lambda proc: pss(proc.pid))


def _by_role(root_pid: int, measure) -> dict[str, int]:
    usage: dict[str, int] = {}
    for proc in process_tree(root_pid):
        try:
            role = role_of(proc, root_pid)
            usage[role] = usage.get(role, 0) + measure(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return usage
