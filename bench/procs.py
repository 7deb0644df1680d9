"""Processes the benchmark starts: their own process groups, their trees' memory, a sure stop."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil

from tcdeploy.server.background import free_port  # noqa: F401  (re-exported for the bench scripts)


def start_process(command: list[str], env: dict[str, str], log_path: Path, cwd: Path | None = None) -> subprocess.Popen:
    """Start `command` in its own session, so Ctrl-C reaches only us and we stop it ourselves."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_rss(pid: int) -> int:
    """Resident memory of `pid` and all its descendants, in bytes."""
    total = 0
    for proc in process_tree(pid):
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def tree_pss(pid: int) -> int:
    """Proportional set size of `pid` and all its descendants, in bytes: each page shared by n
    processes counts 1/n in each, so the sum is what the tree really holds (unlike RSS sums)."""
    return sum(pss(proc.pid) for proc in process_tree(pid))


def pss(pid: int) -> int:
    """One process's proportional set size in bytes (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            return next(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Pss:"))
    except (OSError, StopIteration, ValueError):
        return 0


def stop_process(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """SIGTERM (a clean stop: servers flush and stop their replicas), then SIGKILL every survivor.

    Descendants are listed before the stop because a replica in its own session would otherwise
    be missed by a kill of the server's process group.
    """
    with _ctrl_c_deferred():
        _stop_tree(proc, grace_s)


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """A second Ctrl-C while stopping must not leave servers behind: hold it until the stop ends."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def _stop_tree(proc: subprocess.Popen, grace_s: float) -> None:
    descendants = process_tree(proc.pid)[1:]
    if proc.poll() is None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(10)
    _, alive = psutil.wait_procs(descendants, timeout=5)
    for child in alive:
        _signal_group(child.pid, signal.SIGKILL)
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def wait_until(check: Callable[[], bool], proc: subprocess.Popen, timeout_s: float, what: str, log_path: Path) -> float:
    """Poll `check` until true; seconds waited. Fails early if `proc` exits, naming its log."""
    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: process exited with {proc.returncode}; log:\n{tail(log_path)}")
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"{what}: not ready after {timeout_s:.0f}s; log:\n{tail(log_path)}")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


class PeakRssSampler:
    """Samples a process tree's RSS (every `interval_s`) and PSS (every `pss_every` samples: it
    costs more) on a thread; `peak` and `peak_pss` are the largest sums seen."""

    def __init__(self, pid: int, interval_s: float = 0.2, pss_every: int = 5) -> None:
        self.pid, self.interval_s, self.pss_every = pid, interval_s, pss_every
        self.peak = 0
        self.peak_pss = 0
        self._samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> PeakRssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> int:
        rss = tree_rss(self.pid)
        self.peak = max(self.peak, rss)
        if self._samples % self.pss_every == 0:
            self.sample_pss()
        self._samples += 1
        return rss

    def sample_pss(self) -> int:
        pss = tree_pss(self.pid)
        self.peak_pss = max(self.peak_pss, pss)
        return pss

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()
