"""Fork servers: replicas forked from a preloaded process of their model instead of started cold.

A cold replica spends seconds importing MLflow and its flavor's library and loading the model,
and holds its own copy of all of it. `ForkServers` keeps one zygote
(`tcdeploy.server.replica.zygote`) per model and environment, started on the first replica that
needs it and stopped with the last, and forks replicas from it: they share its pages
copy-on-write and serve within a fraction of a second.

A forked replica is not a child of the server, so `ForkedProcess` gives the supervisor the face of
an `asyncio.subprocess.Process` it uses (pid, returncode, wait, stdout, stderr): its stdout and
stderr are pipes made here and handed to the zygote with the request, and its exit code comes back
from the zygote (which reaps it) over the request's connection. The pid is the replica's own, in a
session of its own, so signals, memory sampling and OOM kills work on it exactly as on a cold one.

Whenever the zygote cannot serve — it failed to start, its model did not load there, it refused
or died — the replica starts cold, as without a fork server (a model that cannot load then fails
as it always did, with the cold replica's reason). A zygote that dies takes its replicas with it
(they ask for SIGKILL when it dies); their supervisors restart them, from a new zygote.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import socket
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from tcdeploy.server.runtime import launch
from tcdeploy.server.runtime.paths import RunPaths
from tcdeploy.server.runtime.spec import ReplicaSpec

log = logging.getLogger(__name__)

ZYGOTE_MODULE = "tcdeploy.server.replica.zygote"
READY_LINE = "zygote ready"  # the contract of `tcdeploy.server.replica.zygote`
_STOP_GRACE = 2.0
_TAIL_LINES = 20
# Bytes of the zygote's arguments each forked replica rewrites as its own command line.
_COMMAND_LINE_ROOM = 4096


class ForkRefused(Exception):
    """The zygote would not, or could not, fork this replica."""


@dataclass(frozen=True)
class ZygoteKey:
    """What a zygote is for: replicas of one model, one Python, one environment (the numeric
    libraries' thread counts aside: each replica applies its own after the fork)."""

    python: str
    model_uri: str
    env: tuple[tuple[str, str], ...]
    saved: int | None = None  # a local model's MLmodel mtime: a model saved again at its path is new

    @classmethod
    def of(cls, python: str, spec: ReplicaSpec) -> ZygoteKey:
        env = launch.replica_env(spec)
        kept = tuple(sorted((k, v) for k, v in env.items() if k not in launch.THREAD_HINTS))
        return cls(python, spec.model_uri, kept, _saved_at(spec.model_uri))

    @property
    def digest(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:16]

    def zygote_env(self) -> dict[str, str]:
        # One thread per numeric library until the fork: a thread pool does not survive one.
        env = {**dict(self.env), **{name: "1" for name in launch.THREAD_HINTS}}
        # pyarrow (pandas imports it) starts jemalloc's purging thread unless told not to.
        env.setdefault("JE_ARROW_MALLOC_CONF", "background_thread:false")
        return env


class ForkedProcess:
    """A replica forked by a zygote, as the supervisor sees a process."""

    def __init__(
        self,
        pid: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
    ) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdout = stdout
        self.stderr = stderr
        self._writer = writer
        self._exited = asyncio.create_task(self._exit_code(reader), name=f"forked replica {pid}")

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    async def _exit_code(self, reader: asyncio.StreamReader) -> int:
        try:
            code = int(json.loads(await reader.readline())["exit"])
        except (ValueError, KeyError, TypeError, OSError):
            # The zygote died, and with it this replica (PR_SET_PDEATHSIG); make sure of it.
            launch.signal_group(self.pid, signal.SIGKILL)
            code = -int(signal.SIGKILL)
        finally:
            self._writer.close()
        self.returncode = code
        return code


class Zygote:
    """One zygote process and its control socket."""

    def __init__(self, key: ZygoteKey, control: Path) -> None:
        self.key = key
        self.control = control
        self.proc: asyncio.subprocess.Process | None = None
        self.ready = False
        self._tail: deque[str] = deque(maxlen=_TAIL_LINES)
        self._pumps: list[asyncio.Task] = []

    @property
    def alive(self) -> bool:
        return self.ready and self.proc is not None and self.proc.returncode is None

    async def start(self, timeout: float) -> bool:
        """Spawn it and wait until it has loaded the model and listens; False (logged) if not."""
        self.control.unlink(missing_ok=True)
        argv = [self.key.python, "-m", ZYGOTE_MODULE, "--model-uri", self.key.model_uri, "--control", str(self.control)]
        argv.append("--room=" + "." * _COMMAND_LINE_ROOM)
        try:
            self.proc = await launch.spawn_tied(self.key.python, argv, self.key.zygote_env())
        except OSError as exc:
            log.warning("cannot start the fork server of %s: %s", self.key.model_uri, exc)
            return False
        ready = asyncio.get_running_loop().create_future()
        self._pumps = [
            asyncio.create_task(self._pump(self.proc.stdout, ready)),
            asyncio.create_task(self._pump(self.proc.stderr, None)),
        ]
        exited = asyncio.create_task(self.proc.wait())
        await asyncio.wait({ready, exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        self.ready = ready.done() and self.proc.returncode is None
        if not self.ready:
            why = (
                launch.describe_exit(self.proc.returncode) if self.proc.returncode is not None else "not ready in time"
            )
            log.warning(
                "fork server of %s (pid %d): %s; its replicas start cold. Last lines:\n%s",
                self.key.model_uri,
                self.proc.pid,
                why,
                "\n".join(self._tail),
            )
            await self.stop()
        else:
            log.info("fork server of %s ready (pid %d)", self.key.model_uri, self.proc.pid)
        return self.ready

    async def fork(self, argv: list[str], env: dict[str, str]) -> ForkedProcess:
        """Ask for one replica; its stdout and stderr are pipes read here."""
        pipes = [os.pipe(), os.pipe()]
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            await loop.sock_connect(sock, str(self.control))
            payload = json.dumps({"argv": argv, "env": env}).encode()
            sock.setblocking(True)  # one small message: sent at once
            socket.send_fds(sock, [payload], [pipes[0][1], pipes[1][1]])
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            _close_all(pipes)
            raise ForkRefused(f"cannot reach the fork server: {exc}") from exc
        for _, write_end in pipes:
            os.close(write_end)  # the replica holds them now; EOF comes when it exits
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        try:
            answer = json.loads(await reader.readline() or b"null")
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not isinstance(answer.get("pid"), int):
            writer.close()
            for read_end, _ in pipes:
                os.close(read_end)
            reason = answer.get("error") if isinstance(answer, dict) else "the fork server closed the connection"
            raise ForkRefused(str(reason))
        stdout, stderr = [await _stream(read_end) for read_end, _ in pipes]
        return ForkedProcess(answer["pid"], reader, writer, stdout, stderr)

    async def stop(self) -> None:
        proc = self.proc
        self.ready = False
        if proc is not None and proc.returncode is None:
            launch.signal_group(proc.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), _STOP_GRACE)
            except asyncio.TimeoutError:
                launch.signal_group(proc.pid, signal.SIGKILL)
                await proc.wait()
        await asyncio.wait(self._pumps, timeout=_STOP_GRACE) if self._pumps else None
        self.control.unlink(missing_ok=True)

    async def _pump(self, stream: asyncio.StreamReader, ready: asyncio.Future | None) -> None:
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip()
            self._tail.append(text)
            if ready is not None and text == READY_LINE and not ready.done():
                ready.set_result(True)
            else:
                log.debug("fork server of %s: %s", self.key.model_uri, text)


class ForkServers:
    """The zygotes of one runtime: one per `ZygoteKey`, while a replica of it runs.

    `spawn` has the signature of `launch.spawn`, so the supervisor starts a replica the same way
    with or without fork servers.
    """

    def __init__(self, paths: RunPaths, ready_timeout: float) -> None:
        self._paths = paths
        self._ready_timeout = ready_timeout
        self._zygotes: dict[ZygoteKey, Zygote] = {}
        self._starting: dict[ZygoteKey, asyncio.Task[Zygote | None]] = {}
        self._users: dict[ZygoteKey, set[str]] = {}
        self._cold: dict[ZygoteKey, str] = {}  # keys whose zygote could not start: why

    async def spawn(self, python: str, spec: ReplicaSpec, socket_path: Path) -> asyncio.subprocess.Process:
        key = ZygoteKey.of(python, spec)
        self._users.setdefault(key, set()).add(spec.pod_name)
        zygote = await self._zygote(key, spec)
        if zygote is not None:
            argv = launch.replica_argv(python, spec, socket_path)[3:]  # past `python -m module`
            try:
                return await zygote.fork(argv, launch.replica_env(spec))  # type: ignore[return-value]
            except ForkRefused as exc:
                log.warning("pod %s starts cold: %s", spec.pod_name, exc)
        return await launch.spawn(python, spec, socket_path)

    def zygote_pid(self, python: str, spec: ReplicaSpec) -> int | None:
        """The pid of the live zygote that forks `spec`'s replicas, if there is one."""
        zygote = self._zygotes.get(ZygoteKey.of(python, spec))
        return zygote.proc.pid if zygote is not None and zygote.alive and zygote.proc else None

    async def release(self, pod_name: str) -> None:
        """`pod_name` is stopped for good: stop the zygotes no replica needs any more."""
        for key, users in list(self._users.items()):
            users.discard(pod_name)
            if not users:
                del self._users[key]
                self._cold.pop(key, None)
                zygote = self._zygotes.pop(key, None)
                if zygote is not None:
                    await zygote.stop()

    async def close(self) -> None:
        for task in self._starting.values():
            task.cancel()
        await asyncio.gather(*self._starting.values(), return_exceptions=True)
        await asyncio.gather(*(zygote.stop() for zygote in self._zygotes.values()))
        self._zygotes.clear()
        self._users.clear()

    async def _zygote(self, key: ZygoteKey, spec: ReplicaSpec) -> Zygote | None:
        """The live zygote of `key`, started (once, however many replicas ask) if need be."""
        if key in self._cold:
            return None
        zygote = self._zygotes.get(key)
        if zygote is not None and zygote.alive:
            return zygote
        task = self._starting.get(key)
        if task is None:
            timeout = spec.probes.startup.allowance if spec.probes.startup is not None else self._ready_timeout
            task = self._starting[key] = asyncio.create_task(self._start(key, timeout))
        return await asyncio.shield(task)

    async def _start(self, key: ZygoteKey, timeout: float) -> Zygote | None:
        try:
            old = self._zygotes.pop(key, None)
            if old is not None:
                log.warning("fork server of %s had died (%s); starting a new one", key.model_uri, _exit_of(old))
                await old.stop()
            zygote = Zygote(key, self._paths.socket(f"zygote-{key.digest}"))
            if not await zygote.start(timeout):
                self._cold[key] = "the fork server did not start"
                return None
            if key not in self._users:  # every replica it was for stopped meanwhile
                await zygote.stop()
                return None
            self._zygotes[key] = zygote
            return zygote
        finally:
            self._starting.pop(key, None)


def _saved_at(model_uri: str) -> int | None:
    """When a model in a local directory was last saved (MLflow writes its MLmodel file last);
    None for other URIs (a registry version does not change)."""
    if model_uri.startswith("file://"):
        model_uri = model_uri.removeprefix("file://")
    elif ":" in model_uri.split("/", 1)[0]:
        return None  # models:/…, runs:/…, s3://… and the like
    try:
        return os.stat(Path(model_uri) / "MLmodel").st_mtime_ns
    except OSError:
        return None


def _exit_of(zygote: Zygote) -> str:
    code = zygote.proc.returncode if zygote.proc is not None else None
    return launch.describe_exit(code) if code is not None else "gone"


async def _stream(fd: int) -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", 0))
    return reader


def _close_all(pipes: list[tuple[int, int]]) -> None:
    for pair in pipes:
        for fd in pair:
            with contextlib.suppress(OSError):
                os.close(fd)
