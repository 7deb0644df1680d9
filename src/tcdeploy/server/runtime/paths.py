"""Where a replica's files live (socket, pid file, logs); reaping a previous run's replicas."""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import stat
import tempfile
from pathlib import Path

import psutil

from tcdeploy.server.runtime.spec import check_pod_name

log = logging.getLogger(__name__)

REPLICA_MODULE = "tcdeploy.server.replica"

# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


class RunPaths:
    """The files of a data dir's replicas.

    Sockets go to `<data_dir>/run/`. When a socket path there would be too long for a Unix socket
    (a deep data dir), that socket goes to a private 0700 directory under the system temp dir
    instead, named after a hash of the data dir so a restarted server finds the same one. Pid files
    always stay in `<data_dir>/run/`.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.run_dir = self.data_dir / "run"
        self.log_dir = self.data_dir / "logs"
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
        self.fallback_socket_dir = Path(tempfile.gettempdir()) / f"tcdeploy-{os.getuid()}-{digest}"

    def ensure(self) -> None:
        _private_dir(self.run_dir)
        _private_dir(self.log_dir)  # model errors in logs may quote request data

    def socket(self, pod_name: str) -> Path:
        name = f"{check_pod_name(pod_name)}.sock"
        path = self.run_dir / name
        if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
            return path
        _private_dir(self.fallback_socket_dir)
        return self.fallback_socket_dir / name

    def pid_file(self, pod_name: str) -> Path:
        return self.run_dir / f"{check_pod_name(pod_name)}.pid"

    def write_pid(self, pod_name: str, pid: int) -> None:
        path = self.pid_file(pod_name)
        tmp = path.with_suffix(".pid.tmp")
        tmp.write_text(f"{pid}\n")
        os.replace(tmp, path)  # a reader never sees a half-written pid

    def forget(self, pod_name: str) -> None:
        """Remove the pod's pid file and socket (not its logs: they outlive the pod)."""
        for path in (self.pid_file(pod_name), self.socket(pod_name)):
            path.unlink(missing_ok=True)


def _private_dir(path: Path) -> None:
    """Create `path` with mode 0700, or check that an existing one is ours and private.

    Sockets carry unauthenticated model traffic: another local user must not reach them, nor plant
    the directory in a shared temp dir before us. Logs may hold request data.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{path}: not a directory owned by this user; refusing to put sockets there")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)


def is_replica_of(proc: psutil.Process, pod_name: str) -> bool:
    """Whether `proc` is the replica process of `pod_name` (pids get reused: check the cmdline)."""
    try:
        cmdline = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    if REPLICA_MODULE not in cmdline:
        return False
    try:
        return cmdline[cmdline.index("--pod-name") + 1] == pod_name
    except (ValueError, IndexError):
        return False


def kill_tree(proc: psutil.Process, timeout: float = 5.0) -> None:
    """SIGKILL a process and all its descendants, and wait for them to go."""
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for member in family:
        try:
            member.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(family, timeout=timeout)


def reap_orphans(data_dir: Path) -> list[int]:
    """Kill the replicas a previous server run left behind; return their pids.

    Call it at server start, before starting replicas. A pid file whose process is gone, or is now
    some other program (pid reuse), is just removed.
    """
    paths = RunPaths(data_dir)
    if not paths.run_dir.is_dir():
        return []
    killed = []
    for pid_file in sorted(paths.run_dir.glob("*.pid")):
        pod_name = pid_file.stem
        pid = _read_pid(pid_file)
        if pid is not None and pid != os.getpid():
            try:
                proc = psutil.Process(pid)
            except psutil.NoSuchProcess:
                proc = None
            if proc is not None and is_replica_of(proc, pod_name):
                log.warning("killing replica %s (pid %d) left from a previous run", pod_name, pid)
                kill_tree(proc)
                killed.append(pid)
        pid_file.unlink(missing_ok=True)
        try:
            paths.socket(pod_name).unlink(missing_ok=True)
        except ValueError:
            pass  # not a pod name we would have written; nothing of ours to clean
    return killed


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
