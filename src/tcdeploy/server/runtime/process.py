"""One supervised replica: start it, wait for it to be ready, restart it when it dies, stop it.

A single task (`_run`) owns the process for its whole life. `stop` and `rebuild` only leave a
command and wake that task, so there is never a second party signalling or respawning the same
replica. The memory watcher (in `LocalRuntime`) only SIGKILLs; the task sees that exit like any
other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tcdeploy.protocol.states import PodPhase
from tcdeploy.server.runtime import launch
from tcdeploy.server.runtime.logs import STDERR, STDOUT, PodLog, pump_lines
from tcdeploy.server.runtime.paths import RunPaths
from tcdeploy.server.runtime.spec import (
    CRASH_LOOP,
    ERROR,
    LIVENESS_FAILED,
    LOAD_FAILED,
    LOAD_FAILED_EXIT_CODE,
    NOT_READY,
    OOM_KILLED,
    READY_TIMEOUT,
    ReplicaSpec,
    ReplicaState,
)

log = logging.getLogger(__name__)

_STOP = "stop"
_REBUILD = "rebuild"
_LOG_LINES_IN_MESSAGE = 20
_PUMP_DRAIN_TIMEOUT = 2.0
_PING_TIMEOUT = 2.0


@dataclass(frozen=True)
class Settings:
    python: str
    ready_timeout: float
    backoff: tuple[float, ...]
    crash_loop_restarts: int
    crash_loop_window: float
    ready_poll_interval: float = 0.075
    backoff_reset_after: float = 60.0  # ready this long: the next crash starts the backoff afresh
    rebuild_grace: float = 10.0
    # How a replica process is started: cold (`launch.spawn`) or forked (`ForkServers.spawn`).
    spawn: Callable[[str, ReplicaSpec, Path], Awaitable[asyncio.subprocess.Process]] = launch.spawn


@dataclass(frozen=True)
class _Exit:
    returncode: int
    was_ready: bool
    ready_for: float
    oom_rss: int | None
    timed_out: bool
    unhealthy: str | None  # why the liveness probe failed, when that is why it was killed


class Supervisor:
    def __init__(
        self, spec: ReplicaSpec, paths: RunPaths, settings: Settings, report: Callable[[ReplicaState], None]
    ) -> None:
        self.spec = spec
        self.state = ReplicaState(spec.pod_name, spec.service_id, phase=PodPhase.PENDING)
        self.log = PodLog(paths.log_dir, spec.pod_name)
        self._paths = paths
        self._socket = paths.socket(spec.pod_name)
        self._settings = settings
        self._report = report
        self._proc: asyncio.subprocess.Process | None = None
        self._command: str | None = None
        self._grace = 0.0
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._exits: deque[float] = deque()
        self._backoff_index = 0
        self._oom_rss: int | None = None
        self._task: asyncio.Task | None = None
        self._stop_task: asyncio.Task | None = None

    # -- commands -------------------------------------------------------------------------------

    def start(self) -> None:
        self._publish()
        self._task = asyncio.create_task(self._run(), name=f"replica {self.spec.pod_name}")

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def stopping(self) -> bool:
        return self._stop_task is not None

    def stop(self, grace: float) -> asyncio.Future:
        """Stop for good (SIGTERM, `grace` seconds, SIGKILL); every caller awaits the same stop."""
        if self._stop_task is None:
            self._stop_task = asyncio.create_task(self._stop(grace))
        return asyncio.shield(self._stop_task)

    async def rebuild(self) -> None:
        """Kill the replica and start it again now; returns once the new process is starting."""
        if self.stopping:
            raise RuntimeError(f"pod {self.spec.pod_name} is stopping")
        before = self.state.restart_count
        if self._task is None or self._task.done():
            self._update(restart_count=before + 1)  # the supervisor itself had died (a bug, logged)
            self._task = asyncio.create_task(self._run(), name=f"replica {self.spec.pod_name}")
            return
        self.log.event("rebuild requested")
        self._send(_REBUILD)
        while self.state.restart_count == before and not self.stopping:
            await self.changed()

    def kill_for_memory(self, pid: int, rss: int) -> None:
        if self.pid != pid or self._oom_rss is not None:
            return
        self._oom_rss = rss
        self.log.event(f"OOMKilled at {rss / 2**20:.0f} MiB (limit {self.spec.memory_mb} MiB)")
        launch.signal_group(pid, signal.SIGKILL)

    async def changed(self) -> None:
        """Return at the next state change."""
        await self._changed.wait()

    # -- the supervising task -------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._lives()
        except Exception as exc:  # a bug here must not leave a replica unsupervised
            log.exception("supervisor of %s failed", self.spec.pod_name)
            self._update(
                phase=PodPhase.FAILED,
                ready=False,
                reason=ERROR,
                pid=None,
                address=None,
                message=f"supervisor error: {exc!r}",
            )
        finally:
            if self.pid is not None:
                launch.signal_group(self._proc.pid, signal.SIGKILL)

    async def _lives(self) -> None:
        first = True
        while True:
            if not first:
                self._update(restart_count=self.state.restart_count + 1)
            first = False
            ended = await self._live()
            if self._command == _STOP:
                return
            if self._take(_REBUILD):
                continue
            if ended is None:
                await self._wait_for_command()  # could not even spawn: stay Failed
            elif ended.returncode == LOAD_FAILED_EXIT_CODE and not ended.was_ready:
                self._fail_load()
                await self._wait_for_command()  # a model that cannot load never will: no restart
            else:
                await self._wait_for_command(self._crashed(ended))
            if self._command == _STOP:
                return
            self._take(_REBUILD)

    async def _live(self) -> _Exit | None:
        """Run one process from spawn to exit; None if it could not be spawned."""
        proc = await self._spawn()
        if proc is None:
            return None
        started = time.monotonic()
        pumps = [
            asyncio.create_task(pump_lines(stream, self._line_writer(name)))
            for stream, name in ((proc.stdout, STDOUT), (proc.stderr, STDERR))
        ]
        exited = asyncio.create_task(proc.wait())
        try:
            ready_at, timed_out, unhealthy = await self._serve(proc, exited, started)
        finally:
            if not exited.done():  # cancelled: never leave the process behind
                launch.signal_group(proc.pid, signal.SIGKILL)
            # Tell the router at once; the last log lines may take a moment more.
            self._update(ready=False, pid=None, address=None)
            await asyncio.wait(pumps, timeout=_PUMP_DRAIN_TIMEOUT)
            for pump in pumps:
                pump.cancel()
        # Anything the replica forked must not outlive it.
        launch.signal_group(proc.pid, signal.SIGKILL)
        self.log.event(launch.describe_exit(proc.returncode))
        ready_for = time.monotonic() - ready_at if ready_at is not None else 0.0
        return _Exit(proc.returncode, ready_at is not None, ready_for, self._oom_rss, timed_out, unhealthy)

    async def _spawn(self) -> asyncio.subprocess.Process | None:
        self._oom_rss = None
        self._socket.unlink(missing_ok=True)  # a stale socket would answer nothing, or confuse
        try:
            proc = await self._settings.spawn(self._settings.python, self.spec, self._socket)
        except OSError as exc:
            self.log.event(f"cannot start the replica: {exc}")
            self._update(phase=PodPhase.FAILED, reason=ERROR, message=f"cannot start the replica: {exc}")
            return None
        self._proc = proc
        self._paths.write_pid(self.spec.pod_name, proc.pid)
        self.log.event(f"started pid {proc.pid}")
        self._update(phase=PodPhase.PENDING, ready=False, pid=proc.pid, address=None, start_time=time.time())
        return proc

    async def _serve(
        self, proc: asyncio.subprocess.Process, exited: asyncio.Task, started: float
    ) -> tuple[float | None, bool, str | None]:
        """Wait for ready, then for an exit, a command or a failed liveness probe; end the
        process if it still runs.

        Returns when it became ready (monotonic, or None), whether readiness timed out, and why
        the liveness probe failed (None if it did not).
        """
        ready_at, timed_out, unhealthy = None, False, None
        if await self._become_ready(exited):
            ready_at = time.monotonic()
            self.log.event(f"ready after {ready_at - started:.1f} s")
            self._become_routable()
            unhealthy = await self._watch(exited)
            if unhealthy is not None:
                # Out of rotation at once: a hung replica would hold every request sent to it.
                self._update(ready=False, address=None, reason=LIVENESS_FAILED, message=unhealthy)
                self.log.event(f"{unhealthy}; killing it")
        elif not exited.done() and self._command is None:
            timed_out = True
            self.log.event(f"not ready after {self._ready_timeout():g} s; killing it")
        if not exited.done():
            await self._terminate(proc, exited)
        return ready_at, timed_out, unhealthy

    def _become_routable(self) -> None:
        self._update(
            phase=PodPhase.RUNNING,
            ready=True,
            address=str(self._socket),
            reason="",
            message="",
            crash_looping=False,
        )

    async def _watch(self, exited: asyncio.Task) -> str | None:
        """Probe a ready replica until it exits or a command comes; returns why the liveness
        probe failed, if it did. Readiness failures only take it out of rotation meanwhile."""
        transport = httpx.AsyncHTTPTransport(uds=str(self._socket))
        async with httpx.AsyncClient(transport=transport) as client:
            liveness = asyncio.create_task(self._liveness(client))
            readiness = asyncio.create_task(self._readiness(client))
            woken = asyncio.create_task(self._wake.wait())
            try:
                await asyncio.wait({exited, woken, liveness}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (woken, readiness, liveness):
                    task.cancel()
                await asyncio.gather(woken, readiness, liveness, return_exceptions=True)
        if liveness.cancelled() or exited.done() or self._command is not None:
            return None
        return liveness.result()

    async def _liveness(self, client: httpx.AsyncClient) -> str:
        """Returns once GET /live has failed `failure_threshold` times in a row: why."""
        probe, failures = self.spec.probes.liveness, 0
        await asyncio.sleep(probe.initial_delay + probe.period)
        while True:
            problem = await self._probe(client, "/live", probe.timeout)
            failures = 0 if problem is None else failures + 1
            if failures >= probe.failure_threshold:
                return f"liveness probe failed {failures} times: {problem}"
            await asyncio.sleep(probe.period)

    async def _readiness(self, client: httpx.AsyncClient) -> None:
        """Take the replica out of rotation after `failure_threshold` failed GET /ping in a
        row, and back after `success_threshold` good ones."""
        probe, failures, successes = self.spec.probes.readiness, 0, 0
        await asyncio.sleep(probe.initial_delay + probe.period)
        while True:
            problem = await self._probe(client, "/ping", probe.timeout)
            failures, successes = (0, successes + 1) if problem is None else (failures + 1, 0)
            if self.state.ready and failures >= probe.failure_threshold:
                self.log.event(f"readiness probe failed {failures} times: {problem}; out of rotation")
                self._update(ready=False, address=None, reason=NOT_READY, message=problem)
            elif not self.state.ready and successes >= probe.success_threshold:
                self.log.event("readiness probe passed; back in rotation")
                self._become_routable()
            await asyncio.sleep(probe.period)

    async def _probe(self, client: httpx.AsyncClient, path: str, timeout: float) -> str | None:
        """None if `path` answers 200 within `timeout`; else what went wrong."""
        try:
            reply = await client.get(f"http://replica{path}", timeout=timeout)
        except httpx.TimeoutException:
            return f"GET {path} did not answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            return f"GET {path} failed: {exc or type(exc).__name__}"
        if reply.status_code == 200:
            return None
        try:
            detail = reply.json().get("message") or reply.text
        except ValueError:
            detail = reply.text
        return f"GET {path} answered {reply.status_code}: {detail[:200]}"

    def _ready_timeout(self) -> float:
        startup = self.spec.probes.startup
        return startup.allowance if startup is not None else self._settings.ready_timeout

    async def _become_ready(self, exited: asyncio.Task) -> bool:
        """Poll GET /ping over the socket until 200; False on exit, command or timeout."""
        deadline = time.monotonic() + self._ready_timeout()
        transport = httpx.AsyncHTTPTransport(uds=str(self._socket))
        async with httpx.AsyncClient(transport=transport, timeout=_PING_TIMEOUT) as client:
            while not exited.done() and self._command is None:
                if await self._ping(client):
                    return not exited.done() and self._command is None
                if time.monotonic() >= deadline:
                    return False
                await asyncio.wait({exited}, timeout=self._settings.ready_poll_interval)
        return False

    async def _ping(self, client: httpx.AsyncClient) -> bool:
        if not self._socket.exists():
            return False
        try:
            return (await client.get("http://replica/ping")).status_code == 200
        except httpx.HTTPError:
            return False

    async def _terminate(self, proc: asyncio.subprocess.Process, exited: asyncio.Task) -> None:
        grace = {_STOP: self._grace, _REBUILD: self._settings.rebuild_grace}.get(self._command, 0.0)
        if self._command is not None:
            self._update(phase=PodPhase.TERMINATING, ready=False)
        if grace > 0:
            launch.signal_group(proc.pid, signal.SIGTERM)
            await asyncio.wait({exited}, timeout=grace)
        if not exited.done():
            launch.signal_group(proc.pid, signal.SIGKILL)
            await exited

    # -- after an exit --------------------------------------------------------------------------

    def _fail_load(self) -> None:
        self.log.event("the model cannot load; not restarting")
        self._update(
            phase=PodPhase.FAILED,
            ready=False,
            pid=None,
            address=None,
            reason=LOAD_FAILED,
            message=self._failure_message("the model failed to load"),
        )

    def _crashed(self, ended: _Exit) -> float:
        """Record an unexpected exit; return the delay before the next start."""
        now = time.monotonic()
        if ended.ready_for >= self._settings.backoff_reset_after:
            self._backoff_index = 0
        self._exits.append(now)
        while self._exits and now - self._exits[0] > self._settings.crash_loop_window:
            self._exits.popleft()
        looping = len(self._exits) >= self._settings.crash_loop_restarts
        backoff = self._settings.backoff
        delay = backoff[-1] if looping else backoff[min(self._backoff_index, len(backoff) - 1)]
        self._backoff_index += 1
        cause = _cause(ended)
        self.log.event(f"restarting in {delay:g} s (restart #{self.state.restart_count + 1})")
        summary = f"{cause[1]}; restarting in {delay:g} s"
        if looping:
            window = self._settings.crash_loop_window
            summary = f"crash loop: {len(self._exits)} exits in {window:g} s; {summary}"
        self._update(
            phase=PodPhase.PENDING,
            ready=False,
            pid=None,
            address=None,
            reason=CRASH_LOOP if looping else cause[0],
            crash_looping=looping,
            message=self._failure_message(summary),
        )
        return delay

    def _failure_message(self, summary: str) -> str:
        lines = self.log.tail(_LOG_LINES_IN_MESSAGE)
        return summary + ("\nlast log lines:\n" + "\n".join(lines) if lines else "")

    # -- plumbing -------------------------------------------------------------------------------

    def _line_writer(self, stream: str) -> Callable[[str], None]:
        return lambda line: self.log.write(stream, line)

    def _send(self, command: str) -> None:
        if self._command != _STOP:
            self._command = command
        self._wake.set()

    def _take(self, command: str) -> bool:
        if self._command != command:
            return False
        self._command = None
        self._wake.clear()
        return True

    async def _wait_for_command(self, timeout: float | None = None) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _stop(self, grace: float) -> None:
        self.log.event(f"stopping (grace {grace:g} s)")
        self._grace = grace
        self._update(phase=PodPhase.TERMINATING, ready=False)
        self._send(_STOP)
        if self._task is not None:
            await asyncio.wait({self._task})
        self._proc = None
        self._paths.forget(self.spec.pod_name)
        self.log.event("stopped")
        self.log.close()
        self._update(phase=PodPhase.STOPPED, ready=False, pid=None, address=None)

    def _update(self, **changes) -> None:
        before = self.state.copy()
        for name, value in changes.items():
            setattr(self.state, name, value)
        if self.state != before:
            self._publish()

    def _publish(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()  # waiters hold the old, now set, event
        self._report(self.state.copy())


def _cause(ended: _Exit) -> tuple[str, str]:
    """(reason, human text) of an unexpected exit."""
    if ended.oom_rss is not None:
        return OOM_KILLED, f"OOMKilled: memory use reached {ended.oom_rss / 2**20:.0f} MiB"
    if ended.unhealthy is not None:
        return LIVENESS_FAILED, f"{ended.unhealthy}; killed"
    if ended.timed_out:
        return READY_TIMEOUT, "not ready in time; killed"
    if ended.returncode == 0:
        return "Completed", "exited with code 0 while it should run"
    return ERROR, launch.describe_exit(ended.returncode)
